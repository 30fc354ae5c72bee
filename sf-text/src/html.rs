//! HTML character references, decoded exactly as Python does it: [`unescape`] is Python's
//! `html.unescape` (Wan calls it twice on every prompt) and [`ftfy_unescape`] is ftfy's stricter
//! `unescape_html` fix (only complete `&name;` / `&#n;` references, plus upper-cased names).
//!
//! The entity table `data/html5_entities.tsv` is the WHATWG HTML5 list as Python's
//! `html.entities.html5` holds it (2231 names, 106 of them legacy names without `;`), one
//! `name<TAB>hex code points` per line.

use std::collections::HashMap;
use std::sync::OnceLock;

const ENTITY_TABLE: &str = include_str!("data/html5_entities.tsv");

/// The HTML5 named references (`"amp;" -> "&"`, `"amp" -> "&"`, ...).
fn html5() -> &'static HashMap<&'static str, String> {
    static TABLE: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ENTITY_TABLE
            .lines()
            .filter_map(|line| {
                let (name, points) = line.split_once('\t')?;
                let value = points
                    .split(' ')
                    .map(|p| u32::from_str_radix(p, 16).ok().and_then(char::from_u32))
                    .collect::<Option<String>>()?;
                Some((name, value))
            })
            .collect()
    })
}

/// Numeric references HTML maps elsewhere (Windows-1252 for 0x80..0x9F, as Python's
/// `html._invalid_charrefs`). The undefined 0x81, 0x8D, 0x8F, 0x90, 0x9D map to themselves.
pub(crate) fn windows_1252_c1(code: u32) -> Option<char> {
    const C1: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    (0x80..0xA0)
        .contains(&code)
        .then(|| char::from_u32(C1[(code - 0x80) as usize]))
        .flatten()
}

/// Code points a numeric reference deletes (Python's `html._invalid_codepoints`).
fn deleted_code_point(code: u32) -> bool {
    matches!(code, 0x1..=0x8 | 0xB | 0xE..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF)
        || (code & 0xFFFE == 0xFFFE && code <= 0x10FFFF)
}

/// The text a numeric reference `&#<digits>` stands for (Python's rules).
fn numeric_reference(digits: &str, radix: u32) -> String {
    // Values past u32 are "larger than 0x10FFFF" like any other out-of-range value.
    let code = u32::from_str_radix(digits, radix).unwrap_or(u32::MAX);
    match code {
        0x00 => "\u{FFFD}".into(),
        0x0D => "\r".into(),
        0x80..=0x9F => windows_1252_c1(code).map(String::from).unwrap_or_default(),
        0xD800..=0xDFFF => "\u{FFFD}".into(),
        c if c > 0x10FFFF => "\u{FFFD}".into(),
        c if deleted_code_point(c) => String::new(),
        c => char::from_u32(c).map(String::from).unwrap_or_default(),
    }
}

/// One reference starting at `&` (`rest` is the text after it), as Python's `_charref` regex
/// matches it: `#[0-9]+;?`, `#[xX][0-9a-fA-F]+;?` or `[^\t\n\f <&#;]{1,32};?`. Returns the
/// replacement and the number of bytes of `rest` consumed, or `None` where nothing matches.
fn python_reference(rest: &str) -> Option<(String, usize)> {
    let semicolon = |end: usize| end + usize::from(rest[end..].starts_with(';'));
    if let Some(num) = rest.strip_prefix('#') {
        let (radix, start) = match num.chars().next() {
            Some('x' | 'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = rest[start..]
            .bytes()
            .take_while(|b| {
                if radix == 16 {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return None;
        }
        let end = start + digits;
        return Some((numeric_reference(&rest[start..end], radix), semicolon(end)));
    }
    let end = rest
        .char_indices()
        .take_while(|&(_, c)| !matches!(c, '\t' | '\n' | '\x0C' | ' ' | '<' | '&' | '#' | ';'))
        .take(32)
        .last()
        .map(|(i, c)| i + c.len_utf8())?;
    let consumed = semicolon(end);
    let name = &rest[..consumed];
    let table = html5();
    if let Some(value) = table.get(name) {
        return Some((value.clone(), consumed));
    }
    // The longest known prefix of at least two characters (`&ampfoo` -> `&foo`).
    let bounds: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in bounds.iter().rev() {
        if let Some(value) = table.get(&name[..cut]) {
            return Some((format!("{value}{}", &name[cut..]), consumed));
        }
    }
    Some((format!("&{name}"), consumed))
}

/// Python's `html.unescape`: every named and numeric character reference of `text` replaced.
pub fn unescape(text: &str) -> String {
    replace_references(text, python_reference)
}

fn replace_references(text: &str, reference: impl Fn(&str) -> Option<(String, usize)>) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match reference(after) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &after[consumed..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// ftfy's table: `&name;` for every HTML5 name with `;`, plus `&NAME;` for lower-case names
/// whose upper-cased form means nothing to `html.unescape` (`&EACUTE;` -> `É`).
fn ftfy_entities() -> &'static HashMap<String, String> {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for (name, value) in html5().iter().filter(|(n, _)| n.ends_with(';')) {
            table.insert(format!("&{name}"), value.clone());
        }
        for (name, value) in html5().iter().filter(|(n, _)| n.ends_with(';')) {
            if *name != name.to_lowercase() {
                continue;
            }
            let upper = format!("&{}", name.to_uppercase());
            if unescape(&upper) == upper {
                table.insert(upper, value.to_uppercase());
            }
        }
        table
    })
}

/// ftfy's `unescape_html`: replaces each `&#?[0-9A-Za-z]{1,24};` that names a character.
pub fn ftfy_unescape(text: &str) -> String {
    replace_references(text, |rest| {
        let numeric = rest.starts_with('#');
        let body = &rest[usize::from(numeric)..];
        let len = body
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .take(25)
            .count();
        if !(1..=24).contains(&len) || !body[len..].starts_with(';') {
            return None;
        }
        let consumed = usize::from(numeric) + len + 1;
        let reference = format!("&{}", &rest[..consumed]);
        if let Some(value) = ftfy_entities().get(&reference) {
            return Some((value.clone(), consumed));
        }
        if numeric {
            let decoded = unescape(&reference);
            // Only a reference decoded up to and including its `;` counts.
            if !decoded.contains(';') {
                return Some((decoded, consumed));
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_unescape_cases() {
        // Values from CPython 3.11 `html.unescape`.
        let cases = [
            ("tokens &amp; html", "tokens & html"),
            ("&amp;amp;", "&amp;"),
            ("&lt;b&gt; &quot;x&quot; &#39;y&#x27;", "<b> \"x\" 'y'"),
            ("&ampfoo &notit; &copy2024", "&foo ¬it; ©2024"),
            (
                "&#128512; &#x1F431; &#0; &#13; &#x80; &#x81;",
                "😀 🐱 \u{FFFD} \r € \u{81}",
            ),
            (
                "&#1; &#xD800; &#99999999999; &#xFFFE;x",
                " \u{FFFD} \u{FFFD} x",
            ),
            ("& &; &#; &#x; &unknown; a&b", "& &; &#; &#x; &unknown; a&b"),
            ("&NotEqualTilde; &fjlig;", "\u{2242}\u{338} fj"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input), want, "{input}");
        }
    }

    #[test]
    fn ftfy_unescape_cases() {
        // ftfy 6.3.1 `fixes.unescape_html`.
        let cases = [
            ("&lt;tag&gt;", "<tag>"),
            ("&EACUTE;t&eacute;", "Ét\u{e9}"),
            ("&amp &ampfoo; &#x2019;s &#65", "&amp &ampfoo; ’s &#65"),
            ("&AMP; &LT;", "& <"),
        ];
        for (input, want) in cases {
            assert_eq!(ftfy_unescape(input), want, "{input}");
        }
        assert_eq!(windows_1252_c1(0x92), Some('\u{2019}'));
        assert_eq!(windows_1252_c1(0x7F), None);
    }
}
