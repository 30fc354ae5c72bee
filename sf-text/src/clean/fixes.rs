//! ftfy's character-level fixes (`ftfy.fixes`) that run after `fix_encoding`.

use std::sync::LazyLock;

use regex::Regex;

use super::badness::compile;
use super::patterns::ANSI;
use super::tables::{CONTROL_CHARS, LIGATURES, WIDTH_MAP};

static ANSI_RE: LazyLock<Regex> = LazyLock::new(|| compile(ANSI));

/// Whether `c` lies in one of the sorted, disjoint `ranges`.
pub(super) fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    let i = ranges.partition_point(|&(_, hi)| hi < c);
    ranges.get(i).is_some_and(|&(lo, _)| lo <= c)
}

/// `text.translate(table)` for a sorted `char -> str` table.
fn translate(text: &str, table: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match table.binary_search_by_key(&c, |&(k, _)| k) {
            Ok(i) => out.push_str(table[i].1),
            Err(_) => out.push(c),
        }
    }
    out
}

/// ftfy's `fix_latin_ligatures`: Latin ligatures and legacy digraphs spelled out.
pub(super) fn fix_latin_ligatures(text: &str) -> String {
    translate(text, LIGATURES)
}

/// ftfy's `fix_character_width`: U+3000 to a space, half-/full-width forms to their NFKC form.
pub(super) fn fix_character_width(text: &str) -> String {
    translate(text, WIDTH_MAP)
}

/// ftfy's `uncurl_quotes`.
pub(super) fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
            '\u{201C}'..='\u{201F}' => '"',
            c => c,
        })
        .collect()
}

/// ftfy's `fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become `\n`.
pub(super) fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// ftfy's `remove_terminal_escapes`: `ESC [ (digit|;)* letter`, digits as Python's `\d`.
pub(super) fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\x1B') {
        return text.to_string();
    }
    ANSI_RE.replace_all(text, "").into_owned()
}

/// ftfy's `remove_control_chars` (tab, line feed, form feed and CR are kept).
pub(super) fn remove_control_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| !in_ranges(CONTROL_CHARS, c))
        .collect()
}
