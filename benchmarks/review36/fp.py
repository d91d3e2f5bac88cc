"""False-positive probe of lakeql.csvenc.detect's CJK rule on real single-byte text.

Messages of /usr/share/locale/<lang>/LC_MESSAGES/*.mo, written as CSV in every single-byte codec that can
hold them, in several sizes and shapes (sentences; one short word a row; a few rows), many seeds. Prints
how many files were taken for a CJK encoding (any such answer is a silent corruption: main reads them
all as Windows-1252 / Mac Roman). Usage: fp.py [SEEDS]
"""
from __future__ import annotations

import gettext
import io
import random
import re
import sys
from collections import Counter
from pathlib import Path

from lakeql.csvenc import detect

CODECS = {
    "ru": ["cp1251", "koi8_r", "cp866", "iso8859_5", "mac_cyrillic"], "uk": ["cp1251", "koi8_u"],
    "bg": ["cp1251"], "sr": ["cp1251"], "mk": ["cp1251"], "be": ["cp1251"],
    "el": ["cp1253", "iso8859_7"], "he": ["cp1255", "iso8859_8"], "ar": ["cp1256", "iso8859_6"],
    "fa": ["cp1256"], "th": ["cp874", "tis_620"], "tr": ["cp1254", "iso8859_9"], "vi": ["cp1258"],
    "de": ["cp1252", "latin_1", "mac_roman"], "fr": ["cp1252", "latin_1", "mac_roman"],
    "es": ["cp1252", "latin_1"], "pt": ["cp1252", "latin_1"], "pt_BR": ["cp1252", "latin_1"],
    "pl": ["cp1250", "iso8859_2"], "cs": ["cp1250", "iso8859_2"], "hu": ["cp1250"], "lt": ["cp1257"],
    "lv": ["cp1257"], "et": ["cp1257"], "is": ["cp1252"], "ro": ["cp1250"],
}


def messages(lang: str) -> list[str]:
    out = []
    for mo in sorted(Path(f"/usr/share/locale/{lang}/LC_MESSAGES").glob("*.mo")):
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        out += [v.replace("\n", " ").replace('"', "'") for k, v in cat.items() if k and isinstance(v, str)]
    return sorted(set(x for x in out if x.strip()))


def shapes(msgs: list[str], rng: random.Random):
    words = sorted({w for m in msgs for w in re.findall(r"\w+", m) if any(ord(c) > 127 for c in w)})
    for n in (1, 2, 3, 5, 10, 30, 300):
        yield f"sent{n}", [rng.choice(msgs) for _ in range(n)]
    for n in (3, 5, 10, 30, 300):
        yield f"word{n}", [rng.choice(words) for _ in range(n)] if words else []
    even = [w for w in words if len(w) % 2 == 0]
    for n in (3, 10, 30):  # the adversarial case: only even-length words
        yield f"even{n}", [rng.choice(even) for _ in range(n)] if even else []


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tot, hits, by = 0, [], Counter()
    for lang, codecs_ in CODECS.items():
        msgs = messages(lang)
        if not msgs:
            continue
        for codec in codecs_:
            for seed in range(seeds):
                rng = random.Random(seed)
                for shape, rows in shapes(msgs, rng):
                    rows = [r for r in rows]
                    if not rows:
                        continue
                    text = "id,text\r\n" + "".join(f'{i},"{r}"\r\n' for i, r in enumerate(rows))
                    data = text.encode(codec, "replace")
                    if data.isascii():
                        continue
                    got = detect(lambda data=data: io.BytesIO(data))
                    tot += 1
                    by[(shape[:4])] += 1
                    if got and got in ("cp949", "cp932", "shift_jisx0213", "euc_jp", "euc_jisx0213",
                                       "gb18030", "cp950"):
                        hits.append((lang, codec, shape, seed, got, rows[:3]))
    print(f"files {tot}, taken for CJK {len(hits)} ({100 * len(hits) / max(tot, 1):.2f}%)")
    for h in hits:
        print(h[:5], [r[:40] for r in h[5]])
    print(Counter((h[0], h[1], h[4]) for h in hits).most_common(30))


if __name__ == "__main__":
    main()
