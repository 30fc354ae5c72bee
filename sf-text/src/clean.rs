//! Wan's prompt cleaning (`clean='whitespace'` in `wan/modules/tokenizers.py`):
//!
//! ```text
//! text = ftfy.fix_text(text)
//! text = html.unescape(html.unescape(text)).strip()
//! text = re.sub(r"\s+", " ", text).strip()
//! ```
//!
//! [`fix_text`] is ftfy 6.3.1's `fix_text` with its default configuration, step for step
//! (`fix_and_explain` per line, and per 1,000,000 characters, repeated until nothing changes):
//! HTML unescaping (`auto`: off from the first line that contains `<`); mojibake repair
//! (`fix_encoding`: where ftfy's badness heuristic fires, re-encode in each single-byte codec the
//! text may have been wrongly decoded with and decode as UTF-8 or CESU-8, with
//! `restore_byte_a0`, `replace_lossy_sequences` and `decode_inconsistent_utf8`); C1 controls as
//! Windows-1252; Latin ligatures; full-/half-width forms; curly quotes; line breaks; terminal
//! escapes; control characters; NFC. (`fix_surrogates` has nothing to do on a `&str`.)
//!
//! The codec tables, ftfy's regular expressions (as `regex` patterns) and the NFC data are
//! generated from ftfy and Python's `unicodedata` (3.11, Unicode 14) by
//! `tools/gen_ftfy_tables.py`; `tests/data/ftfy_golden.json` holds ftfy's own results.

mod badness;
mod codecs;
mod encoding;
mod fixes;
mod nfc;
mod nfc_tables;
mod patterns;
mod tables;

use crate::html::{ftfy_unescape, unescape};

/// Wan's `whitespace_clean(basic_clean(text))`: the text the tokenizer sees.
pub fn clean_prompt(text: &str) -> String {
    let text = fix_text(text);
    let text = unescape(&unescape(&text));
    collapse_whitespace(&text)
}

/// Whether Python's `str.isspace` (and `\s` in a `str` regex) holds for `c`.
pub fn is_python_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1C'..='\x1F'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// `re.sub(r"\s+", " ", text).strip()` with Python's notion of whitespace.
pub fn collapse_whitespace(text: &str) -> String {
    text.split(is_python_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// ftfy's `max_decode_length`: the longest segment (in characters) fixed at once.
const MAX_DECODE_LENGTH: usize = 1_000_000;

/// ftfy 6.3.1 `fix_text` with default settings (see the module docs).
pub fn fix_text(text: &str) -> String {
    let mut unescape_html = true;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let end = rest[..line_end]
            .char_indices()
            .nth(MAX_DECODE_LENGTH)
            .map_or(line_end, |(i, _)| i);
        let (segment, tail) = rest.split_at(end);
        if segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_segment(segment, unescape_html));
        rest = tail;
    }
    out
}

/// ftfy's `fix_and_explain` on one segment: every fix in ftfy's order, repeated until stable.
fn fix_segment(segment: &str, unescape_html: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let before = text.clone();
        if unescape_html {
            text = ftfy_unescape(&text);
        }
        text = encoding::fix_encoding(&text);
        text = encoding::fix_c1_controls(&text);
        text = fixes::fix_latin_ligatures(&text);
        text = fixes::fix_character_width(&text);
        text = fixes::uncurl_quotes(&text);
        text = fixes::fix_line_breaks(&text);
        text = fixes::remove_terminal_escapes(&text);
        text = fixes::remove_control_chars(&text);
        text = nfc::nfc(&text);
        if text == before {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftfy_fixes() {
        // Expected values from ftfy 6.3.1 `fix_text`.
        let cases = [
            ("ＬＯＵＤ　ＮＯＩＳＥＳ", "LOUD NOISES"),
            ("ﬂubberiﬁc ĳ", "flubberific ij"),
            ("it\u{2019}s \u{201C}quoted\u{201D}", "it's \"quoted\""),
            ("&amp;amp;lt; ok", "< ok"),
            ("a<b &amp; c", "a<b &amp; c"),
            ("line\r\nnext\rx", "line\nnext\nx"),
            ("\x1B[31mred\x1B[0m \x1B[x", "red "),
            ("zero\u{200B}width \u{FEFF}bom\x07", "zero\u{200B}width bom"),
            ("e\u{301}", "\u{E9}"),
            ("ｶﾀｶﾅ ￥", "カタカナ ¥"),
            ("doesnâ€™t CafÃ©", "doesn't Café"),
            ("\x1B[\u{661}mx", "x"),
            ("line one\nÃ©\n", "line one\né\n"),
        ];
        for (input, want) in cases {
            assert_eq!(fix_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn segments_of_a_million_characters() {
        // ftfy fixes at most `max_decode_length` characters at once: here `Ã` ends the first
        // segment and `©` starts the second, so neither is repaired.
        let long = format!("{}Ã©", "a".repeat(999_999));
        assert_eq!(fix_text(&long), long);
        let short = format!("{}Ã©", "a".repeat(999_998));
        assert_eq!(fix_text(&short), format!("{}é", "a".repeat(999_998)));
    }

    #[test]
    fn wan_clean() {
        assert_eq!(
            clean_prompt("  multiple   spaces\tand\nnewlines "),
            "multiple spaces and newlines"
        );
        assert_eq!(
            clean_prompt("<extra_id_0> special </s> tokens &amp; html"),
            "<extra_id_0> special </s> tokens & html"
        );
        assert_eq!(clean_prompt("\u{3000}\u{A0}x\x1C\u{2029}y "), "x y");
        assert_eq!(clean_prompt(""), "");
    }
}
