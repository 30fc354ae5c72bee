#!/usr/bin/env python3
"""Write `sf-text/tests/data/ftfy_golden.json`: inputs with ftfy 6.3.1's `fix_text` and
Wan's full prompt cleaning, for `sf_text::clean` to reproduce exactly.

Inputs (deduplicated, fixed seed, so the file is reproducible on the same Python/ftfy):

- `ftfy-cases`: ftfy's own `tests/test_cases.json` (original and fixed texts), the string
  literals of its other tests and `tests/face.txt`, from the ftfy 6.3.1 sdist (fetched with
  `pip download`, or pass its path as the first argument);
- `mojibake-1` / `mojibake-2`: random text (ASCII, accented Latin, Cyrillic, Greek, CJK, kana,
  Hangul, emoji, curly quotes, symbols, ...) encoded as UTF-8 and decoded with each of ftfy's
  single-byte codecs (plus strict codecs with `errors="replace"`), once or twice;
- `mojibake-mixed`: mojibake next to correct text, NBSP turned into spaces, HTML entities,
  several lines, `<` on a line, terminal escapes and control characters;
- `legit`: text that must not change (Latin-1/Windows-1252 words, Cyrillic, Greek, math, ...);
- `noise`: random strings of the characters mojibake is made of;
- `prompts`: plain video prompts; `edge`: hand-picked corner cases of ftfy's codecs.

Usage: python3 tools/gen_ftfy_golden.py [ftfy-6.3.1.tar.gz]   (needs `pip install ftfy==6.3.1`)
"""

from __future__ import annotations

import ast
import html
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from pathlib import Path

import ftfy

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sf-text" / "tests" / "data" / "ftfy_golden.json"
FTFY_VERSION = "6.3.1"
SEED = 20240611

CODECS = [
    "latin-1",
    "sloppy-windows-1252",
    "sloppy-windows-1251",
    "sloppy-windows-1250",
    "sloppy-windows-1253",
    "sloppy-windows-1254",
    "sloppy-windows-1257",
    "iso-8859-2",
    "macroman",
    "cp437",
]
STRICT_CODECS = ["windows-1252", "windows-1251", "windows-1250", "windows-1253"]

WORDS = (
    "the cat walks on grass in a sunny garden while dog runs fast slow motion cinematic "
    "shot of city night rain neon lights reflect street people umbrella camera pans left "
    "right close up portrait woman smiling soft light bokeh 4k realistic style ocean waves"
).split()
ALPHABETS = {
    "latin": "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿßÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ",
    "latin-ext": "œŒšŠžŽčćđłńśźżąęěřůőűğışİĞŞāēīūĀĒĪŪ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіїєґ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去",
    "kana": "あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコ",
    "hangul": "한국어가나다라마바사아자차카타파하고양이강아지",
    "emoji": ["😀", "😂", "🥰", "🐱", "🐶", "🎉", "🔥", "👍", "❤️", "✨", "🚀", "🌈", "👩‍💻", "🇫🇷"],
    "punct": "‘’“”–—…•€™©®°±×÷§¶¿¡«»·¢£¥¤",
    "math": "∑∏√∞≤≥≠≈∫∂∆∇∈∉⊂⊃∩∪",
    "other": ["مرحبا", "بالعالم", "שלום", "สวัสดี", "नमस्ते", "ქართული", "Հայերեն"],
}
LEGIT = [
    "naïve café", "Ã", "Ã alone", "the letter Ã in context", "Â", "São Paulo", "Zürich, Genève",
    "crème brûlée à la carte", "Ångström", "El Niño", "façade déjà vu", "Müller–Lüdenscheidt",
    "½ cup of sugar", "©2024 Example™", "“quoted” ‘text’", "price: 5€ or £4", "50°C ± 2",
    "Привет, мир", "Съешь же ещё этих мягких французских булок", "Γειά σου κόσμε", "αβγ ΔΕΖ",
    "∑ x² ≤ ∞", "a ≠ b ≈ c", "x × y ÷ z", "日本語のテキスト", "中文文本", "한국어 텍스트",
    "¿Qué tal? ¡Bien!", "«guillemets»", "Łódź", "Dvořák", "İstanbul", "Ærøskøbing", "Ça va",
    "ÀÉÎÕÜ", "àéîõü", "ÂÊÎÔÛ", "ÐÞðþ", "¬not", "¦broken", "smörgåsbord", "Ōsaka", "Tōkyō",
    "Ø", "ØÙ", "Œuvre", "œuvre", "μ-law", "¼ inch", "§ 3 ¶ 2", "Ÿ", "ÿ", "Ã la", "fÃ cil",
    "I ❤ NY", "résumé", "coöperate", "Björk", "Þórr", "Ð", "×²", "√2", "≤≥", "вЂ", "ā€",
]
PROMPTS = [
    "A cat walks on the grass, realistic style.",
    "A stylish woman walks down a Tokyo street filled with warm glowing neon.",
    "Close-up of a chameleon's eye, 4K, cinematic lighting.",
    "Drone shot of waves crashing against rugged cliffs along Big Sur's Garay Point beach.",
    "An astronaut riding a horse on Mars, photorealistic, slow motion",
    "A corgi wearing sunglasses   surfs a wave\tat sunset\n\nvibrant colors",
    "Two pirate ships battle inside a cup of coffee &amp; cream",
    "Snowy village at night, lanterns glowing, &lt;soft focus&gt;",
    "  leading and trailing spaces  ",
    "<extra_id_0> special tokens </s> stay",
    "中国古代宫殿，金色阳光，电影感",
    "東京の夜景、ネオンサイン、雨",
    "Кошка гуляет по траве, реалистичный стиль",
    "Ein Hund läuft über eine Wiese, Sonnenuntergang",
    "Un chat marche sur l'herbe, style réaliste",
    "A robot 🤖 dancing in the rain ☔, 8k",
    "",
    " ",
    "\n",
]
EDGE = [
    "í\xa0\x80í°\n", "í\xa0\x80í°x\n", "abcÀ\n", "Ã©Ã\n", "\x80", "\x81\x8d\x8f\x90\x9d",
    "ï»¿", "ï»¿abc", "\ufeffbom", "Ã\xa0", "Ã ", "Ãx", "â€", "â€\ufffd", "â€?", "Ã?",
    "í\xa0½í¸\x8d", "í\xa0½í¸\x8d\n", "À\x80", "À\x80x", "\x1b[31mred\x1b[0m", "\x1b[١٢m x",
    "\x1b[;;Hq", "a\x00b\x07c\x1fd\x7fe", "\u206a\ufff9\ufffa\ufffb\ufffc", "x\u2028y\u2029z\x85w",
    "\r\n\r", "&amp;&lt;&#x2019;&#8217;&EACUTE;&Ntilde;&NTILDE;&nTILDE;", "a<b &amp; c\n&amp;",
    "&amp;\na<b\n&amp;", "ﬁﬂĳǄ", "ＡＢＣ１２３　ｶﾀｶﾅ", "ŉ", "e\u0301", "Å\u0301", "\u00c5",
    "&#x80; &#150; &#x1F431;", "&#59; &#0;", "Ã\x83Â©", "ÃƒÂ©", "Ã¢â‚¬â„¢", "â€™â€œ",
    "Ã°Å¸Ëœâ‚¬", "ð\x9f\x98\x80", "ð  \x80", "Ã Ã ", "\xc3 quele", "Ã s ", "Ã quilo",
    "a\u07fd\u0301", "a\u0899\u0301 Ã©", "\u0958", "\u212b", "\u1100\u1161\u11a8",
    "voilÃ le travail", "Ã la mode", "Ð\xa0Ð¾ÑÑÐ¸Ñ", "ÐŸÑ€Ð¸Ð²ÐµÑ‚", "Ø§Ù„Ø¹Ø±Ø¨ÙŠØ©",
]


def sdist_tests(path: str | None) -> dict[str, bytes]:
    """The files under `tests/` of the ftfy sdist."""
    with tempfile.TemporaryDirectory() as tmp:
        if path is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", f"ftfy=={FTFY_VERSION}",
                 "--no-binary", ":all:", "--no-deps", "--quiet", "-d", tmp],
                check=True,
            )
            path = str(next(Path(tmp).glob("ftfy-*.tar.gz")))
        with tarfile.open(path) as tar:
            return {
                m.name.split("/tests/", 1)[1]: tar.extractfile(m).read()
                for m in tar.getmembers()
                if "/tests/" in m.name and m.isfile()
            }


def ftfy_cases(files: dict[str, bytes]) -> list[str]:
    out = []
    for case in json.loads(files["test_cases.json"]):
        out += [case["original"], case["fixed"], case.get("fixed-encoding", "")]
    for name, data in sorted(files.items()):
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(data.decode("utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    out.append(node.value)
        elif name.endswith(".txt"):
            out += data.decode("utf-8").splitlines(keepends=True)
    return out


def random_text(rng: random.Random) -> str:
    kinds = list(ALPHABETS)
    mix = rng.sample(kinds, rng.randint(1, 3))
    tokens = []
    for _ in range(rng.randint(1, 7)):
        if rng.random() < 0.4:
            tokens.append(rng.choice(WORDS))
            continue
        alphabet = ALPHABETS[rng.choice(mix)]
        if isinstance(alphabet, list):
            tokens.append(rng.choice(alphabet))
        else:
            tokens.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
    sep = rng.choice([" ", " ", " ", "", ", ", "\xa0"])
    return sep.join(tokens) + rng.choice(["", "", ".", "!", "…", "\n"])


def miscode(text: str, codec: str, errors: str = "strict") -> str | None:
    try:
        return text.encode("utf-8").decode(codec, errors=errors)
    except UnicodeDecodeError:
        return None


def mojibake(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(100):
        text = random_text(rng)
        for codec in CODECS:
            once = miscode(text, codec)
            if once is None:
                continue
            out.append(("mojibake-1", once))
            twice = miscode(once, rng.choice([codec] + CODECS[:3]))
            if twice is not None and rng.random() < 0.5:
                out.append(("mojibake-2", twice))
        for codec in STRICT_CODECS:
            lossy = miscode(text, codec, "replace")
            if lossy and "\ufffd" in lossy:
                out.append(("mojibake-1", lossy))
                out.append(("mojibake-1", lossy.replace("\ufffd", "?")))
    return out


def mixed(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for _ in range(700):
        text = random_text(rng)
        bad = miscode(text, rng.choice(CODECS[:4] + ["macroman"])) or text
        choice = rng.randrange(8)
        if choice == 0:
            case = f"{random_text(rng).strip()} {bad}"
        elif choice == 1:
            case = bad.replace("\xa0", " ")
        elif choice == 2:
            case = html.escape(bad, quote=rng.random() < 0.5)
        elif choice == 3:
            case = "\n".join([bad.strip(), random_text(rng).strip(), bad.strip()]) + "\n"
        elif choice == 4:
            case = f"{bad.strip()}\n<b>{bad.strip()}</b> &amp;\n&lt;{bad.strip()}"
        elif choice == 5:
            case = f"\x1b[1m{bad}\x1b[0m\x07\ufeff"
        elif choice == 6:
            other = random_text(rng)
            case = bad + (miscode(other, rng.choice(CODECS)) or other).strip()
        else:
            case = (bad + bad).replace("’", "'")
        out.append(("mojibake-mixed", case))
    return out


def noise(rng: random.Random) -> list[str]:
    pool = sorted(
        {c for codec in CODECS for c in bytes(range(0x80, 0x100)).decode(codec)}
        | set("abcxyz ,.?!\n\t<&;#")
        | set(ALPHABETS["punct"])
    )
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(800)]


def legit(rng: random.Random) -> list[str]:
    out = list(LEGIT)
    for _ in range(300):
        text = random_text(rng)
        out.append(text)
    return out


def main() -> None:
    if ftfy.__version__ != FTFY_VERSION:
        sys.exit(f"need ftfy {FTFY_VERSION}, found {ftfy.__version__}")
    rng = random.Random(SEED)
    labelled = [("ftfy-cases", t) for t in ftfy_cases(sdist_tests(sys.argv[1] if len(sys.argv) > 1 else None))]
    labelled += [("edge", t) for t in EDGE]
    labelled += [("prompts", t) for t in PROMPTS]
    labelled += [("legit", t) for t in legit(rng)]
    labelled += mojibake(rng)
    labelled += mixed(rng)
    labelled += [("noise", t) for t in noise(rng)]
    seen: set[str] = set()
    cases = []
    for kind, text in labelled:
        if text in seen or re.search("[\ud800-\udfff]", text):
            continue
        seen.add(text)
        fixed = ftfy.fix_text(text)
        cleaned = re.sub(r"\s+", " ", html.unescape(html.unescape(fixed)).strip()).strip()
        cases.append({"kind": kind, "input": text, "fix_text": fixed, "clean_prompt": cleaned})
    golden = {
        "generator": "tools/gen_ftfy_golden.py",
        "ftfy_version": ftfy.__version__,
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "seed": SEED,
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(golden, ensure_ascii=False, indent=0)
    OUT.write_text(text + "\n", encoding="utf-8")
    kinds: dict[str, int] = {}
    for case in cases:
        kinds[case["kind"]] = kinds.get(case["kind"], 0) + 1
    print(f"wrote {OUT}: {len(cases)} cases {kinds}, {len(text.encode())} bytes")


if __name__ == "__main__":
    main()
