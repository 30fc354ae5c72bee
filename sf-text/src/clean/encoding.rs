//! ftfy's `fix_encoding`: mojibake repair by re-encoding text in the single-byte codec it was
//! wrongly decoded with and decoding the bytes as UTF-8, plus its transcoders
//! (`restore_byte_a0`, `replace_lossy_sequences`, `decode_inconsistent_utf8`, C1 controls).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::bytes::{Captures, NoExpand, Regex};

use super::badness::{compile_bytes, has_utf8_mojibake, is_bad, replace_utf8_mojibake};
use super::codecs::{decode_utf8, decode_utf8_variants, encode, latin1_to_windows_1252};
use super::patterns::{ALTERED_UTF8, LOSSY_UTF8};
use super::tables::CHARMAPS;
use crate::html::windows_1252_c1;

static ALTERED_UTF8_RE: LazyLock<Regex> = LazyLock::new(|| compile_bytes(ALTERED_UTF8));
static LOSSY_UTF8_RE: LazyLock<Regex> = LazyLock::new(|| compile_bytes(LOSSY_UTF8));

/// ftfy's `fix_encoding` (default configuration): one repair step at a time until stable.
pub(super) fn fix_encoding(text: &str) -> String {
    let mut text = text.to_string();
    while let Some(fixed) = fix_encoding_step(&text) {
        if fixed == text {
            break;
        }
        text = fixed;
    }
    text
}

/// ftfy's `_fix_encoding_one_step_and_explain`; `None` where it leaves the text alone.
fn fix_encoding_step(text: &str) -> Option<String> {
    if text.is_ascii() || !is_bad(text) {
        return None;
    }
    let mut possible: Vec<&str> = Vec::new();
    for (index, charmap) in CHARMAPS.iter().enumerate() {
        let Some(mut bytes) = encode(index, text) else {
            continue;
        };
        possible.push(charmap.name);
        if charmap.name != "macroman" && ALTERED_UTF8_RE.is_match(&bytes) {
            bytes = restore_byte_a0(&bytes);
        }
        if charmap.is_sloppy() {
            bytes = LOSSY_UTF8_RE
                .replace_all(&bytes, NoExpand("\u{FFFD}".as_bytes()))
                .into_owned();
        }
        let fixed = if bytes.contains(&0xED) || bytes.contains(&0xC0) {
            decode_utf8_variants(&bytes)
        } else {
            decode_utf8(bytes)
        };
        if fixed.is_some() {
            return fixed;
        }
    }
    if has_utf8_mojibake(text) {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return Some(fixed);
        }
    }
    if possible.contains(&"latin-1") {
        // ftfy's list holds `sloppy-windows-1252`, never `windows-1252`, so this test of ftfy's
        // ("Latin-1 and Windows-1252 text is probably legit") never passes.
        if possible.contains(&"windows-1252") {
            return None;
        }
        if let Some(fixed) = latin1_to_windows_1252(text).filter(|fixed| fixed != text) {
            return Some(fixed);
        }
    }
    if text.chars().any(is_c1) {
        return Some(fix_c1_controls(text));
    }
    None
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9F}').contains(&c)
}

/// ftfy's `fix_c1_controls`: C1 controls read as (sloppy) Windows-1252.
pub(super) fn fix_c1_controls(text: &str) -> String {
    text.chars()
        .map(|c| windows_1252_c1(u32::from(c)).unwrap_or(c))
        .collect()
}

/// ftfy's `restore_byte_a0`: puts back the `A0` bytes of UTF-8 sequences that became spaces.
fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    let bytes = a_grave_words(bytes);
    ALTERED_UTF8_RE
        .replace_all(&bytes, |caps: &Captures| {
            caps[0]
                .iter()
                .map(|&b| if b == b' ' { 0xA0 } else { b })
                .collect::<Vec<u8>>()
        })
        .into_owned()
}

/// ftfy's `A_GRAVE_WORD_RE` substitution: `C3 20` becomes `C3 A0 20` ("Ã la" is "à la")
/// unless a space or Portuguese `quele`, `quela`, `quilo`, `s ` follows.
fn a_grave_words(bytes: &[u8]) -> Cow<'_, [u8]> {
    const KEEP: [&[u8]; 5] = [b" ", b"quele", b"quela", b"quilo", b"s "];
    if !bytes.windows(2).any(|w| w == b"\xc3 ") {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"\xc3 ") && !KEEP.iter().any(|k| rest[2..].starts_with(k)) {
            out.extend_from_slice(b"\xc3\xa0 ");
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// ftfy's `decode_inconsistent_utf8`: fixes each UTF-8-looking stretch on its own.
fn decode_inconsistent_utf8(text: &str) -> String {
    let len = text.chars().count();
    replace_utf8_mojibake(text, |part| {
        if part.chars().count() < len && is_bad(part) {
            fix_encoding(part)
        } else {
            part.to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs() {
        // Values from ftfy 6.3.1 `fix_encoding`.
        let cases = [
            ("sÃ³", "só"),
            ("voilÃ le travail", "voilà le travail"),
            ("Ã la mode", "à la mode"),
            ("doesnâ€™t", "doesn’t"),
            ("â€œ like this â€\u{FFFD}", "“ like this \u{FFFD}"),
            ("CafÃ© and naïve", "Café and naïve"),
            ("&ATILDE;&SUP3;", "&ATILDE;&SUP3;"),
            ("naïve café", "naïve café"),
            ("\u{80}uro", "€uro"),
        ];
        for (input, want) in cases {
            assert_eq!(fix_encoding(input), want, "{input:?}");
        }
    }

    #[test]
    fn byte_a0() {
        assert_eq!(
            a_grave_words(b"\xc3 la \xc3 s \xc3  x"),
            &b"\xc3\xa0 la \xc3 s \xc3  x"[..]
        );
        assert_eq!(restore_byte_a0(b"\xe2 \x99"), b"\xe2\xa0\x99");
    }
}
