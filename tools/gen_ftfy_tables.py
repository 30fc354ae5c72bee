#!/usr/bin/env python3
"""Generate `sf-text/src/clean/{tables,patterns,nfc_tables}.rs` from ftfy 6.3.1 and Python.

The tables are read from ftfy's own compiled data, not retyped:

- the single-byte codecs of `ftfy.chardata.CHARMAP_ENCODINGS` (byte -> char for bytes 0x80..0xFF
  and 0x1A, as ftfy's sloppy codecs and Python's codecs decode them), checked against
  `chardata.possible_encoding` and `str.encode` for every code point;
- strict windows-1252's undefined bytes;
- ftfy's regular expressions (`badness.BADNESS_RE`, `chardata.UTF8_DETECTOR_RE`,
  `chardata.ALTERED_UTF8_RE`, `chardata.LOSSY_UTF8_RE`, `fixes.ANSI_RE`), translated from
  Python's parse tree into the syntax of Rust's `regex` crate with every character class spelled
  out as code point ranges (Python's Unicode `\\s`, `\\w` and `\\d` included, as Python defines
  them), so both engines accept the same strings;
- Python's `unicodedata` data for NFC (canonical decompositions, composition exclusions,
  combining classes), so normalisation follows the same Unicode version as the Python that ran
  ftfy.

Usage: python3 tools/gen_ftfy_tables.py   (needs `pip install ftfy==6.3.1`; runs rustfmt if found)
"""

from __future__ import annotations

import functools
import re
try:  # Python 3.11+
    import re._constants as C
    import re._parser as P
except ImportError:  # Python <= 3.10
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import ftfy
from ftfy import badness, chardata, fixes

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "sf-text" / "src" / "clean"
FTFY_VERSION = "6.3.1"

UNIVERSE = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


@functools.cache
def category_members(category, is_bytes: bool) -> set[int]:
    """The code points (or bytes) a Python category escape matches, asked of Python's `re`."""
    escape = {
        C.CATEGORY_SPACE: r"\s",
        C.CATEGORY_WORD: r"\w",
        C.CATEGORY_DIGIT: r"\d",
    }[category]
    if is_bytes:
        rx = re.compile(escape.encode())
        return {b for b in range(256) if rx.match(bytes([b]))}
    rx = re.compile(escape)
    return {c for c in UNIVERSE if rx.match(chr(c))}


def class_members(items, is_bytes: bool) -> set[int]:
    members: set[int] = set()
    negate = False
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            members.add(av)
        elif op is C.RANGE:
            members.update(range(av[0], av[1] + 1))
        elif op is C.CATEGORY:
            members |= category_members(av, is_bytes)
        else:
            raise ValueError(f"unsupported class item {op}")
    universe = set(range(256)) if is_bytes else set(UNIVERSE)
    members &= universe
    return universe - members if negate else members


def ranges(members: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for c in sorted(members):
        if out and out[-1][1] + 1 == c:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


def esc(c: int, is_bytes: bool) -> str:
    return f"\\x{c:02X}" if is_bytes else f"\\x{{{c:X}}}"


def emit_class(members: set[int], is_bytes: bool) -> str:
    if not members:
        raise ValueError("empty class")
    if len(members) == 1:
        return esc(next(iter(members)), is_bytes)
    body = "".join(
        esc(a, is_bytes) if a == b else f"{esc(a, is_bytes)}-{esc(b, is_bytes)}"
        for a, b in ranges(members)
    )
    return f"[{body}]"


def emit(nodes, is_bytes: bool) -> str:
    """Python parse tree -> Rust `regex` syntax (no look-around; `^` is the start of the text)."""
    out = []
    for op, av in nodes:
        if op is C.LITERAL:
            out.append(esc(av, is_bytes))
        elif op is C.NOT_LITERAL:
            out.append(emit_class(class_members([(C.NEGATE, None), (C.LITERAL, av)], is_bytes), is_bytes))
        elif op is C.IN:
            out.append(emit_class(class_members(av, is_bytes), is_bytes))
        elif op is C.ANY:
            # Python's `.` without DOTALL: anything but a line feed.
            out.append(emit_class(class_members([(C.NEGATE, None), (C.LITERAL, 10)], is_bytes), is_bytes))
        elif op is C.BRANCH:
            out.append("(?:" + "|".join(emit(b, is_bytes) for b in av[1]) + ")")
        elif op is C.SUBPATTERN:
            out.append("(?:" + emit(av[3], is_bytes) + ")")
        elif op is C.MAX_REPEAT:
            lo, hi, sub = av
            hi_s = "" if hi is C.MAXREPEAT else str(hi)
            out.append("(?:" + emit(sub, is_bytes) + "){" + f"{lo},{hi_s}" + "}")
        elif op is C.AT and av is C.AT_BEGINNING:
            out.append(r"\A")
        else:
            raise ValueError(f"unsupported regex node {op} {av}")
    return "".join(out)


def translate(pattern: re.Pattern) -> str:
    is_bytes = isinstance(pattern.pattern, bytes)
    tree = P.parse(pattern.pattern, pattern.flags & ~re.UNICODE)
    body = emit(list(tree), is_bytes)
    return ("(?-u)" + body) if is_bytes else body


def detector_parts() -> tuple[set[int], str]:
    """UTF8_DETECTOR_RE = (?<![strict]) (body)+ : the look-behind class and the rest."""
    rx = chardata.UTF8_DETECTOR_RE
    tree = list(P.parse(rx.pattern, rx.flags & ~re.UNICODE))
    (op, (direction, look)), rest = tree[0], tree[1:]
    assert op is C.ASSERT_NOT and direction == -1 and len(look) == 1 and look[0][0] is C.IN
    return class_members(look[0][1], False), emit(rest, False)


def charmap(encoding: str) -> tuple[list[int], int]:
    """Chars of bytes 0x80..0xFF and of byte 0x1A, checked against ftfy's own definitions."""
    high = [ord(bytes([b]).decode(encoding)) for b in range(0x80, 0x100)]
    sub = ord(b"\x1a".decode(encoding))
    for b in range(0x80):
        if b != 0x1A:
            assert bytes([b]).decode(encoding) == chr(b), (encoding, b)
    allowed = {c for c in range(0x80) if c != 0x1A} | set(high) | {sub}
    assert len(set(high)) == 128 and min(high) >= 0x80 and (sub == 0x1A or sub >= 0x80)
    rx = chardata.ENCODING_REGEXES[encoding]
    for c in UNIVERSE:
        ok = c in allowed
        assert bool(rx.match(chr(c))) == ok, (encoding, hex(c))
        if ok:
            encoded = chr(c).encode(encoding)
            want = 0x80 + high.index(c) if c in high else (0x1A if c == sub else c)
            assert encoded == bytes([want]), (encoding, hex(c))
    return high, sub


def rust_str(name: str, pattern: str, doc: str, split_at: str = "\\") -> str:
    # Split right before an escape's backslash (or right after an entry's `;`), never inside.
    chunks, rest = [], pattern
    while rest:
        cut = len(rest) if len(rest) <= 90 else rest.rindex(split_at, 1, 90) + (split_at == ";")
        chunks.append(rest[:cut])
        rest = rest[cut:]
    lines = "\n".join(f'    r"{c}",' for c in chunks)
    return f"/// {doc}\npub(super) const {name}: &str = concat!(\n{lines}\n);\n"


def rust_ranges(name: str, members: set[int], doc: str) -> str:
    items = [f"('\\u{{{a:X}}}', '\\u{{{b:X}}}')" for a, b in ranges(members)]
    return f"/// {doc}\n#[rustfmt::skip]\npub(super) const {name}: &[(char, char)] = &[\n{pack(items)}];\n"


def pack(items: list[str]) -> str:
    """Array items, several to a line of at most 100 columns."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) + 2 > 96:
            lines.append(line)
            line = ""
        line = f"{line} {item}," if line else f"{item},"
    return "".join(f"    {l}\n" for l in lines + [line] if l)


def rust_map(name: str, table: dict[int, str], doc: str) -> str:
    def lit(text: str) -> str:
        return '"' + "".join(f"\\u{{{ord(c):X}}}" for c in text) + '"'

    items = [f"('\\u{{{k:X}}}', {lit(v)})" for k, v in sorted(table.items())]
    return f"/// {doc}\n#[rustfmt::skip]\npub(super) const {name}: &[(char, &str)] = &[\n{pack(items)}];\n"


def main() -> None:
    if ftfy.__version__ != FTFY_VERSION:
        sys.exit(f"need ftfy {FTFY_VERSION}, found {ftfy.__version__}")
    header = (
        "//!\n"
        f"//! @generated by `tools/gen_ftfy_tables.py` from ftfy {FTFY_VERSION}\n"
        f"//! on Python {sys.version.split()[0]} (Unicode {unicodedata.unidata_version}); do not edit.\n"
    )
    parts = ["//! ftfy's single-byte codecs and character tables, for [`super`].\n" + header]
    charmaps = []
    for encoding in chardata.CHARMAP_ENCODINGS:
        high, sub = charmap(encoding)
        chars = ", ".join(f"'\\u{{{c:X}}}'" for c in high)
        charmaps.append(
            f"    Charmap {{\n        name: \"{encoding}\",\n        sub: '\\u{{{sub:X}}}',\n"
            f"        high: [{chars}],\n    }},"
        )
    parts.append(
        "use super::codecs::Charmap;\n\n"
        "/// `chardata.CHARMAP_ENCODINGS`, in ftfy's order.\n"
        f"pub(super) const CHARMAPS: [Charmap; {len(charmaps)}] = [\n" + "\n".join(charmaps) + "\n];\n"
    )
    undefined = [b for b in range(0x80, 0x100) if not _decodes(bytes([b]), "windows-1252")]
    parts.append(
        "/// Bytes strict `windows-1252` cannot decode.\n"
        f"pub(super) const WINDOWS_1252_UNDEFINED: [u8; {len(undefined)}] = "
        f"[{', '.join(f'0x{b:02X}' for b in undefined)}];\n"
    )
    parts.append(
        rust_map("LIGATURES", chardata.LIGATURES, "`chardata.LIGATURES`, sorted.")
    )
    parts.append(
        rust_map("WIDTH_MAP", chardata.WIDTH_MAP, "`chardata.WIDTH_MAP`, sorted.")
    )
    parts.append(
        rust_ranges(
            "CONTROL_CHARS",
            set(chardata.CONTROL_CHARS),
            "`chardata.CONTROL_CHARS`: what `remove_control_chars` deletes.",
        )
    )
    write(OUT_DIR / "tables.rs", parts)
    parts = ["//! ftfy's regular expressions in `regex` syntax, for [`super`].\n" + header]
    parts.append(rust_str("BADNESS", translate(badness.BADNESS_RE), "`badness.BADNESS_RE`."))
    strict, body = detector_parts()
    parts.append(
        rust_ranges(
            "UTF8_CONTINUATION_STRICT",
            strict,
            "The look-behind class of `chardata.UTF8_DETECTOR_RE` (`utf8_continuation_strict`).",
        )
    )
    parts.append(rust_str("UTF8_DETECTOR", body, "`chardata.UTF8_DETECTOR_RE` without its look-behind."))
    parts.append(rust_str("ALTERED_UTF8", translate(chardata.ALTERED_UTF8_RE), "`chardata.ALTERED_UTF8_RE`."))
    parts.append(rust_str("LOSSY_UTF8", translate(chardata.LOSSY_UTF8_RE), "`chardata.LOSSY_UTF8_RE`."))
    parts.append(rust_str("ANSI", translate(fixes.ANSI_RE), "`fixes.ANSI_RE` (Python's Unicode `\\d`)."))
    assert fixes.A_GRAVE_WORD_RE.pattern == b"\xc3 (?! |quele|quela|quilo|s )"
    write(OUT_DIR / "patterns.rs", parts)
    parts = ["//! Python's `unicodedata` NFC data, for [`super::nfc`].\n" + header]
    parts += nfc_tables()
    write(OUT_DIR / "nfc_tables.rs", parts)


def nfc_tables() -> list[str]:
    """Canonical decompositions (one level), composition exclusions, combining classes."""
    entries, excluded, classes = [], set(), []
    for c in UNIVERSE:
        ch = chr(c)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            entries.append(f"{c:X}:{' '.join(p.lstrip('0') for p in parts)};")
            if len(parts) == 2 and unicodedata.normalize("NFC", ch) != ch:
                excluded.add(c)
        ccc = unicodedata.combining(ch)
        if ccc:
            if classes and classes[-1][1] == c - 1 and classes[-1][2] == ccc:
                classes[-1] = (classes[-1][0], c, ccc)
            else:
                classes.append((c, c, ccc))
    return [
        rust_str(
            "DECOMPOSITIONS",
            "".join(entries),
            "Canonical decompositions, one level: `CODE:PART[ PART];` in hex (Hangul is "
            "algorithmic).",
            split_at=";",
        ),
        rust_ranges(
            "COMPOSITION_EXCLUDED",
            excluded,
            "Two-character decompositions NFC does not recompose (composition exclusions).",
        ),
        "/// Canonical combining classes other than 0: `(first, last, class)`.\n#[rustfmt::skip]\n"
        "pub(super) const COMBINING_CLASSES: &[(char, char, u8)] = &[\n"
        + pack([f"('\\u{{{a:X}}}', '\\u{{{b:X}}}', {k})" for a, b, k in classes])
        + "];\n",
    ]


def write(path: Path, parts: list[str]) -> None:
    path.write_text("\n".join(parts))
    rustfmt = shutil.which("rustfmt")
    if rustfmt:
        subprocess.run([rustfmt, "--edition", "2024", str(path)], check=True)
    print(f"wrote {path}")


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


if __name__ == "__main__":
    main()
