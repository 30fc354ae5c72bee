//! ftfy's mojibake detectors: `badness.is_bad` and `chardata.UTF8_DETECTOR_RE`.

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

use super::fixes::in_ranges;
use super::patterns::{BADNESS, UTF8_CONTINUATION_STRICT, UTF8_DETECTOR};

/// Compiles one of the generated patterns (constants, all compiled by the tests).
pub(super) fn compile(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .size_limit(1 << 26)
        .build()
        .expect("generated ftfy pattern")
}

/// [`compile`] for a bytes pattern.
pub(super) fn compile_bytes(pattern: &str) -> regex::bytes::Regex {
    regex::bytes::RegexBuilder::new(pattern)
        .build()
        .expect("generated ftfy pattern")
}

static BADNESS_RE: LazyLock<Regex> = LazyLock::new(|| compile(BADNESS));
static UTF8_DETECTOR_RE: LazyLock<Regex> = LazyLock::new(|| compile(UTF8_DETECTOR));

/// ftfy's `is_bad`: whether `text` contains a character sequence typical of mojibake.
pub(super) fn is_bad(text: &str) -> bool {
    BADNESS_RE.is_match(text)
}

fn continuation_strict(c: char) -> bool {
    in_ranges(UTF8_CONTINUATION_STRICT, c)
}

/// The matches of `UTF8_DETECTOR_RE` (UTF-8 sequences read as single-byte text, not preceded
/// by a strict continuation character), as Python's `finditer` reports them.
fn utf8_mojibake(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while let Some(m) = UTF8_DETECTOR_RE.find_at(text, pos) {
            let before = text[..m.start()].chars().next_back();
            if before.is_some_and(continuation_strict) {
                // The look-behind fails here; Python tries the next position.
                pos = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            pos = m.end();
            return Some((m.start(), m.end()));
        }
        None
    })
}

/// Whether `UTF8_DETECTOR_RE.search(text)` finds something.
pub(super) fn has_utf8_mojibake(text: &str) -> bool {
    utf8_mojibake(text).next().is_some()
}

/// `UTF8_DETECTOR_RE.sub(fix, text)`.
pub(super) fn replace_utf8_mojibake(text: &str, fix: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in utf8_mojibake(text) {
        out.push_str(&text[last..start]);
        out.push_str(&fix(&text[start..end]));
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badness() {
        // ftfy 6.3.1 `is_bad`.
        for bad in ["Ã©", "â€œ", "\u{80}", "ÐºÐ¾", "Ã ", "×²", "вЂ"] {
            assert!(is_bad(bad), "{bad:?}");
        }
        for good in ["naïve café", "Привет", "∑ ≤ ∞", "日本語", "plain", "Ã"] {
            assert!(!is_bad(good), "{good:?}");
        }
    }

    #[test]
    fn detector() {
        let m: Vec<_> = utf8_mojibake("x Ã© â€œ").collect();
        assert_eq!(m, [(2, 6), (7, 14)]);
        assert!(!has_utf8_mojibake("plain text"));
        // A strict continuation character just before blocks the match there.
        assert!(!has_utf8_mojibake("\u{2122}Ã©"));
    }
}
