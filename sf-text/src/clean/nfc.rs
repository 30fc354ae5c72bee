//! `unicodedata.normalize("NFC", text)` (UAX #15) on the Unicode data of the Python that ran
//! ftfy (`nfc_tables.rs`), so normalisation agrees with it character for character.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::fixes::in_ranges;
use super::nfc_tables::{COMBINING_CLASSES, COMPOSITION_EXCLUDED, DECOMPOSITIONS};

const S_BASE: u32 = 0xAC00;
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const L_COUNT: u32 = 19;
const V_COUNT: u32 = 21;
const T_COUNT: u32 = 28;
const S_COUNT: u32 = L_COUNT * V_COUNT * T_COUNT;

struct Data {
    /// One-level canonical decompositions.
    decompose: HashMap<char, Vec<char>>,
    /// Primary composites by their two-character decomposition.
    compose: HashMap<(char, char), char>,
}

static DATA: LazyLock<Data> = LazyLock::new(|| {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().and_then(char::from_u32);
    let mut decompose = HashMap::new();
    let mut compose = HashMap::new();
    for entry in DECOMPOSITIONS.split(';') {
        let Some((code, parts)) = entry.split_once(':') else {
            continue;
        };
        let (Some(c), Some(parts)) = (
            hex(code),
            parts.split(' ').map(hex).collect::<Option<Vec<_>>>(),
        ) else {
            continue;
        };
        if let [a, b] = parts[..]
            && !in_ranges(COMPOSITION_EXCLUDED, c)
        {
            compose.insert((a, b), c);
        }
        decompose.insert(c, parts);
    }
    Data { decompose, compose }
});

fn combining_class(c: char) -> u8 {
    let i = COMBINING_CLASSES.partition_point(|&(_, hi, _)| hi < c);
    match COMBINING_CLASSES.get(i) {
        Some(&(lo, _, class)) if lo <= c => class,
        _ => 0,
    }
}

fn decompose_into(c: char, data: &Data, out: &mut Vec<char>) {
    let code = u32::from(c);
    if (S_BASE..S_BASE + S_COUNT).contains(&code) {
        let s = code - S_BASE;
        let jamo = [
            L_BASE + s / (V_COUNT * T_COUNT),
            V_BASE + (s % (V_COUNT * T_COUNT)) / T_COUNT,
            T_BASE + s % T_COUNT,
        ];
        let parts = if jamo[2] == T_BASE {
            &jamo[..2]
        } else {
            &jamo[..]
        };
        out.extend(parts.iter().filter_map(|&j| char::from_u32(j)));
    } else if let Some(parts) = data.decompose.get(&c) {
        for &part in parts {
            decompose_into(part, data, out);
        }
    } else {
        out.push(c);
    }
}

fn compose_pair(a: char, b: char, data: &Data) -> Option<char> {
    let (a32, b32) = (u32::from(a), u32::from(b));
    if (L_BASE..L_BASE + L_COUNT).contains(&a32) && (V_BASE..V_BASE + V_COUNT).contains(&b32) {
        let s = S_BASE + ((a32 - L_BASE) * V_COUNT + (b32 - V_BASE)) * T_COUNT;
        return char::from_u32(s);
    }
    if (S_BASE..S_BASE + S_COUNT).contains(&a32)
        && (a32 - S_BASE).is_multiple_of(T_COUNT)
        && (T_BASE + 1..T_BASE + T_COUNT).contains(&b32)
    {
        return char::from_u32(a32 + b32 - T_BASE);
    }
    data.compose.get(&(a, b)).copied()
}

/// `unicodedata.normalize("NFC", text)`.
pub(super) fn nfc(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let data = &*DATA;
    let mut chars = Vec::with_capacity(text.len());
    for c in text.chars() {
        decompose_into(c, data, &mut chars);
    }
    // Canonical ordering: a stable sort of each run of non-starters by combining class.
    for i in 1..chars.len() {
        let mut j = i;
        while j > 0 && combining_class(chars[j]) != 0 {
            if combining_class(chars[j - 1]) <= combining_class(chars[j]) {
                break;
            }
            chars.swap(j - 1, j);
            j -= 1;
        }
    }
    // Canonical composition with the last starter, unless a character in between blocks it.
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let mut starter: Option<usize> = None;
    let mut last_class = 0u8;
    for c in chars {
        let class = combining_class(c);
        // Not blocked: next to the starter, or after non-starters of lower classes only.
        if let Some(s) = starter
            && (s + 1 == out.len() || (last_class != 0 && last_class < class))
            && let Some(composite) = compose_pair(out[s], c, data)
        {
            out[s] = composite;
            continue;
        }
        if class == 0 {
            starter = Some(out.len());
        }
        last_class = class;
        out.push(c);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        // Values from Python 3.11 `unicodedata.normalize("NFC", .)`.
        let cases = [
            ("e\u{301}", "\u{E9}"),
            ("\u{1100}\u{1161}\u{11A8}", "\u{AC01}"),
            ("\u{AC00}\u{11A8}", "\u{AC01}"),
            ("a\u{316}\u{301}", "\u{E1}\u{316}"),
            ("a\u{301}\u{316}", "\u{E1}\u{316}"),
            ("\u{958}", "\u{915}\u{93C}"),
            ("\u{344}", "\u{308}\u{301}"),
            ("\u{212B}", "\u{C5}"),
            ("a\u{7FD}\u{301}", "\u{E1}\u{7FD}"),
            ("\u{301}e", "\u{301}e"),
            ("ascii", "ascii"),
        ];
        for (input, want) in cases {
            assert_eq!(nfc(input), want, "{input:?}");
        }
    }
}
