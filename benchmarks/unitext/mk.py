"""Build the unitext trial lake from real text on this machine: locale .mo files, CPython's
cjkencodings test texts, unicodedata names (benchmarks/results/unitext.md)."""

import gettext
import glob
import os
import random
import sys
import sysconfig
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq

root = sys.argv[1]
langs = [
    "ja",
    "zh_CN",
    "zh_TW",
    "ko",
    "th",
    "ar",
    "he",
    "fa",
    "ur",
    "hi",
    "bn",
    "ta",
    "pa",
    "gu",
    "si",
    "km",
    "my",
    "am",
    "ka",
    "hy",
    "ru",
    "el",
    "tr",
    "de",
    "vi",
    "lo",
    "ne",
    "mr",
    "te",
    "kn",
    "ml",
]
rows = []
for lang in langs:
    for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(mo, "rb") as f:
                t = gettext.GNUTranslations(f)
        except Exception:
            continue
        for k, v in t._catalog.items():
            if isinstance(k, tuple):
                k = k[0]
            if not k or not isinstance(v, str):
                continue
            rows.append((lang, os.path.basename(mo)[:-3], k, v))
print("messages", len(rows))
os.makedirs(f"{root}/i18n", exist_ok=True)
pq.write_table(
    pa.table(
        {
            "lang": [r[0] for r in rows],
            "domain": [r[1] for r in rows],
            "msgid": [r[2] for r in rows],
            "msgstr": [r[3] for r in rows],
        }
    ),
    f"{root}/i18n/messages.parquet",
    row_group_size=20000,
)
# CJK and other encodings' sample texts from the stdlib tests
sd = os.path.join(sysconfig.get_path("stdlib"), "test", "cjkencodings")
lines = []
for p in sorted(glob.glob(f"{sd}/*-utf8.txt")):
    for ln in open(p, encoding="utf-8", errors="strict", newline=""):
        lines.append((os.path.basename(p), ln))
# unicodedata names for every assigned char (char + name)
names = []
for cp in range(0x110000):
    ch = chr(cp)
    n = unicodedata.name(ch, None)
    if n and unicodedata.category(ch) not in ("Cs",):
        names.append(f"{ch} {n.lower()}")
random.seed(7)
random.shuffle(names)
names = [" ".join(names[i : i + 20]) for i in range(0, len(names), 20)]
tricky = [
    "İstanbul ISPARTA ıspanak Iğdır istanbul İSTANBUL",
    "Straße STRASSE strasse ẞ ß ss",
    "ΣΊΣΥΦΟΣ σίσυφος Σίσυφος ὈΔΥΣΣΕΎΣ",
    "ᏣᎳᎩ ꮳꮃꭹ Cherokee ᏌᏊ ꮜꮊ",
    "café cafe\u0301 CAFÉ CAFE\u0301",
    "東京都に住んでいます。東京タワーは東京の名所です。",
    "ภาษาไทยเป็นภาษาที่ไม่มีช่องว่างระหว่างคำ",
    "\u202bשָׁלוֹם עולם\u202c \u200fمرحبا بالعالم\u200e",
    "हिन्दी क्षत्रिय श्रृंगार की के को",
    "👩‍👩‍👧‍👦 👍🏽 🏳️‍🌈 1️⃣ 🇯🇵 👨🏿‍💻",
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ ＡＢＣ１２３ ｶﾀｶﾅ",
    "nul\x00inside\x00row",
    "ctrl\x01\x02\x1b[31mred\x1b[0m\x7f",
    "line1\r\nline2\r\nline3\r\n",
    "   \t  \n ",
    "\u3000\u00a0\u2028\u2029",
    "",
    None,
    "ﬁle ﬂow ﬀ Kelvin \u212a ſtraße",
    "ǅemal ǆ Ǆ",
    "a\u0308 ä Ä A\u0308",
    "ΐ ΰ ᾳ ᾼ",
    "Ꭰ ꭰ",
    "İi̇ıI",
]
os.makedirs(f"{root}/odd", exist_ok=True)
pq.write_table(
    pa.table({"src": [x[0] for x in lines], "text": [x[1] for x in lines]}), f"{root}/odd/cjkenc.parquet"
)
pq.write_table(pa.table({"id": list(range(len(names))), "text": names}), f"{root}/odd/uninames.parquet")
pq.write_table(pa.table({"id": list(range(len(tricky))), "text": tricky}), f"{root}/odd/tricky.parquet")
# BINARY with invalid UTF-8
binv = [
    b"abc\xff\xfedef",
    b"\xc3\x28 caf\xc3\xa9",
    "東京".encode()[:4] + b" tail",
    b"\xed\xa0\x80 surrogate",
    b"ok text",
    None,
    b"\x00\x80\x80",
]
pq.write_table(
    pa.table({"id": list(range(len(binv))), "blob": pa.array(binv, pa.binary())}), f"{root}/odd/bin.parquet"
)
print("cjklines", len(lines), "names", len(names))
