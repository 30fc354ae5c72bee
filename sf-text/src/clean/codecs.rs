//! The codecs ftfy's `fix_encoding` re-encodes and re-decodes with: the single-byte
//! `CHARMAP_ENCODINGS` (Python's `latin-1`, `iso-8859-2`, `macroman`, `cp437` and ftfy's
//! `sloppy-windows-125x`), strict `windows-1252`, and ftfy's `utf-8-variants` decoder.

use std::sync::LazyLock;

use super::tables::{CHARMAPS, WINDOWS_1252_UNDEFINED};
use crate::html::windows_1252_c1;

/// A single-byte codec: ASCII, `high[b - 0x80]` for bytes 0x80..=0xFF and `sub` for byte 0x1A
/// (U+FFFD in the sloppy codecs, which cannot encode U+001A).
pub(super) struct Charmap {
    pub name: &'static str,
    pub sub: char,
    pub high: [char; 128],
}

impl Charmap {
    /// Whether this is one of ftfy's `sloppy-*` codecs.
    pub fn is_sloppy(&self) -> bool {
        self.name.starts_with("sloppy")
    }
}

/// Each codec's encoding table, sorted by character.
static ENCODERS: LazyLock<Vec<Vec<(char, u8)>>> = LazyLock::new(|| {
    CHARMAPS
        .iter()
        .map(|map| {
            let mut table: Vec<(char, u8)> = (0u8..0x80)
                .filter(|&b| b != 0x1A)
                .map(|b| (char::from(b), b))
                .chain(map.high.iter().zip(0x80u8..=0xFF).map(|(&c, b)| (c, b)))
                .chain(std::iter::once((map.sub, 0x1A)))
                .collect();
            table.sort_unstable();
            table
        })
        .collect()
});

/// `text.encode(CHARMAPS[index].name)`, or `None` where a character has no byte (exactly where
/// ftfy's `possible_encoding` fails).
pub(super) fn encode(index: usize, text: &str) -> Option<Vec<u8>> {
    let table = ENCODERS.get(index)?;
    text.chars()
        .map(|c| {
            table
                .binary_search_by_key(&c, |&(k, _)| k)
                .ok()
                .map(|i| table[i].1)
        })
        .collect()
}

/// `text.encode("latin-1").decode("windows-1252")` (strict), or `None` where that raises.
pub(super) fn latin1_to_windows_1252(text: &str) -> Option<String> {
    text.chars()
        .map(|c| match u8::try_from(u32::from(c)) {
            Ok(b) if WINDOWS_1252_UNDEFINED.contains(&b) => None,
            Ok(b) => Some(windows_1252_c1(u32::from(b)).unwrap_or(c)),
            Err(_) => None,
        })
        .collect()
}

/// Python's `bytes.decode("utf-8")` (strict).
pub(super) fn decode_utf8(bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes).ok()
}

/// Whether a Python bytes regex's `$` matches at `at`: the end, or before a final `\n`.
fn at_end(bytes: &[u8], at: usize) -> bool {
    at == bytes.len() || (at + 1 == bytes.len() && bytes[at] == b'\n')
}

/// Matches `class` (a byte range) or `$` at `at`; returns the position after it.
fn byte_or_end(bytes: &[u8], at: usize, lo: u8, hi: u8) -> Option<usize> {
    match bytes.get(at) {
        Some(b) if (lo..=hi).contains(b) => Some(at + 1),
        _ => at_end(bytes, at).then_some(at),
    }
}

/// Where ftfy's `SPECIAL_BYTES_RE` (a Java null `C0 80`, or a CESU-8 / surrogate sequence
/// starting with `ED`, each possibly cut short by the end) first matches in `bytes`.
fn find_special(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find(|&i| match bytes[i] {
        0xC0 => byte_or_end(bytes, i + 1, 0x80, 0x80).is_some(),
        // The surrogate alternative `ED ([A0-BF]|$) ([80-BF]|$)` accepts whatever the CESU-8
        // one does, so it alone decides.
        0xED => byte_or_end(bytes, i + 1, 0xA0, 0xBF)
            .and_then(|at| byte_or_end(bytes, at, 0x80, 0xBF))
            .is_some(),
        _ => false,
    })
}

/// Whether ftfy's `CESU8_RE` matches at the start of `bytes` (each part may be `$`).
fn cesu8_at_start(bytes: &[u8]) -> bool {
    const PARTS: [(u8, u8); 5] = [
        (0xA0, 0xAF),
        (0x80, 0xBF),
        (0xED, 0xED),
        (0xB0, 0xBF),
        (0x80, 0xBF),
    ];
    if bytes.first() != Some(&0xED) {
        return false;
    }
    PARTS
        .iter()
        .try_fold(1, |at, &(lo, hi)| byte_or_end(bytes, at, lo, hi))
        .is_some()
}

/// ftfy's `utf-8-variants` decoder (strict, final): UTF-8, plus CESU-8 surrogate pairs and the
/// Java null `C0 80`. Like ftfy it lets a `$` stand for a missing last byte, so a final `\n`
/// can complete a six-byte pair or a Java null. `None` where ftfy raises.
pub(super) fn decode_utf8_variants(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(at) = find_special(rest) else {
            out.push_str(std::str::from_utf8(rest).ok()?);
            break;
        };
        if at > 0 {
            out.push_str(std::str::from_utf8(&rest[..at]).ok()?);
            rest = &rest[at..];
            continue;
        }
        if rest[0] == 0xC0 {
            if rest.len() < 2 {
                return None;
            }
            out.push('\0');
            rest = &rest[2..];
        } else if rest.len() < 6 {
            // ftfy hands the rest to the UTF-8 decoder, which rejects `ED A0..BF` and `ED` + end.
            out.push_str(std::str::from_utf8(rest).ok()?);
            break;
        } else if cesu8_at_start(rest) {
            let code = (u32::from(rest[1] & 0x0F) << 16)
                + (u32::from(rest[2] & 0x3F) << 10)
                + (u32::from(rest[4] & 0x0F) << 6)
                + u32::from(rest[5] & 0x3F)
                + 0x10000;
            out.push(char::from_u32(code)?);
            rest = &rest[6..];
        } else {
            // A lone surrogate (`ED A0..BF ..`): the UTF-8 decoder raises on its three bytes.
            out.push_str(std::str::from_utf8(&rest[..3]).ok()?);
            rest = &rest[3..];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_variants() {
        // Values from ftfy 6.3.1's `utf-8-variants` codec.
        assert_eq!(
            decode_utf8_variants(b"\xed\xa0\xbd\xed\xb8\x8d").as_deref(),
            Some("\u{1F60D}")
        );
        assert_eq!(decode_utf8_variants(b"a\xc0\x80b").as_deref(), Some("a\0b"));
        assert_eq!(decode_utf8_variants(b"ab\xc0\n").as_deref(), Some("ab\0"));
        assert_eq!(
            decode_utf8_variants(b"\xed\xa0\x80\xed\xb0\n").as_deref(),
            Some("\u{1000A}")
        );
        assert_eq!(
            decode_utf8_variants("\u{D7FF}한".as_bytes()).as_deref(),
            Some("\u{D7FF}한")
        );
        for bad in [
            &b"\xed\xa0\x80"[..],
            b"\xed\xa0\x80xyzw",
            b"\xc0",
            b"\xc0\x81",
            b"\xed",
        ] {
            assert_eq!(decode_utf8_variants(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn charmaps() {
        let names: Vec<&str> = CHARMAPS.iter().map(|m| m.name).collect();
        assert_eq!(
            names[..3],
            ["latin-1", "sloppy-windows-1252", "sloppy-windows-1251"]
        );
        assert_eq!(encode(0, "caf\u{E9}\x1A"), Some(b"caf\xe9\x1a".to_vec()));
        assert_eq!(
            encode(1, "\u{20AC}\u{FFFD}\u{81}"),
            Some(b"\x80\x1a\x81".to_vec())
        );
        assert_eq!(encode(1, "\x1A"), None);
        assert_eq!(encode(0, "\u{100}"), None);
        assert_eq!(
            latin1_to_windows_1252("\u{92}x").as_deref(),
            Some("\u{2019}x")
        );
        assert_eq!(latin1_to_windows_1252("\u{81}"), None);
    }
}
