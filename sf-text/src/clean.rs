//! Wan's prompt cleaning (`clean='whitespace'` in `wan/modules/tokenizers.py`):
//!
//! ```text
//! text = ftfy.fix_text(text)
//! text = html.unescape(html.unescape(text)).strip()
//! text = re.sub(r"\s+", " ", text).strip()
//! ```
//!
//! [`fix_text`] restates ftfy 6.3.1's `fix_text` with its default configuration, except for one
//! step: **mojibake repair (`fix_encoding`: text decoded with the wrong codec, such as `Ã©` for
//! `é`) is not implemented**, so such text passes through unchanged where ftfy would repair it.
//! Everything else is implemented: HTML unescaping (`auto`: skipped from the first line that
//! contains `<`), C1 controls read as Windows-1252, Latin ligatures, full-/half-width forms,
//! curly quotes, line breaks, terminal escapes, control characters and NFC normalisation,
//! repeated per line until nothing changes.

use tokenizers::NormalizedString;

use crate::html::{ftfy_unescape, unescape, windows_1252_c1};

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

/// ftfy 6.3.1 `fix_text` with default settings, without mojibake repair (see the module docs).
pub fn fix_text(text: &str) -> String {
    let mut unescape_html = true;
    let mut out = String::with_capacity(text.len());
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_segment(segment, unescape_html));
    }
    out
}

/// `fix_and_explain` on one line: every fix in ftfy's order, repeated until stable.
fn fix_segment(segment: &str, unescape_html: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let before = text.clone();
        if unescape_html {
            text = ftfy_unescape(&text);
        }
        text = text
            .chars()
            .map(|c| windows_1252_c1(c as u32).unwrap_or(c))
            .collect();
        text = map_chars(&text, latin_ligature);
        text = map_chars(&text, standard_width);
        text = text
            .chars()
            .map(|c| match c {
                '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
                '\u{201C}'..='\u{201F}' => '"',
                c => c,
            })
            .collect();
        text = text
            .replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
        text = remove_terminal_escapes(&text);
        text.retain(|c| !is_control_char(c));
        let mut normalized = NormalizedString::from(text.as_str());
        normalized.nfc();
        text = normalized.get().to_string();
        if text == before {
            return text;
        }
    }
}

fn map_chars(text: &str, f: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match f(c) {
            Some(replacement) => out.push_str(&replacement),
            None => out.push(c),
        }
    }
    out
}

/// ftfy's `LIGATURES`: typographic Latin ligatures and legacy digraphs.
fn latin_ligature(c: char) -> Option<String> {
    let s = match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    };
    Some(s.to_string())
}

/// ftfy's `WIDTH_MAP`: U+3000 to a space, and U+FF01..U+FFEF to their NFKC form.
fn standard_width(c: char) -> Option<String> {
    match c {
        '\u{3000}' => Some(" ".into()),
        '\u{FF01}'..='\u{FFEF}' => {
            let mut n = NormalizedString::from(c.to_string().as_str());
            n.nfkc();
            let s = n.get();
            (s.chars().ne(std::iter::once(c))).then(|| s.to_string())
        }
        _ => None,
    }
}

/// ftfy's `CONTROL_CHARS` (tab, line feed, form feed and carriage return are kept).
fn is_control_char(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x08'
            | '\x0B'
            | '\x0E'..='\x1F'
            | '\x7F'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFC}'
    )
}

/// Removes ANSI terminal escapes `ESC [ (digits|;)* letter`.
fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\x1B') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\x1B') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let escape_len = after.strip_prefix('[').and_then(|params| {
            let n = params
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b';')
                .count();
            params[n..]
                .chars()
                .next()
                .filter(char::is_ascii_alphabetic)
                .map(|_| 1 + n + 1)
        });
        match escape_len {
            Some(len) => rest = &after[len..],
            None => {
                out.push('\x1B');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftfy_fixes() {
        // Expected values from ftfy 6.3.1 `fix_text` (ASCII or already-correct input, so
        // mojibake repair does not apply).
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
        ];
        for (input, want) in cases {
            assert_eq!(fix_text(input), want, "{input:?}");
        }
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
