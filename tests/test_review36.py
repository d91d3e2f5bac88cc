"""review36: the review of h/unitext (benchmarks/results/review36.md).

The CJK CSV detector of h/unitext (lakeql.csvenc.cjk_encoding) took short single-byte files of Cyrillic,
Hebrew, Arabic, Thai and Greek text for GB18030 / Big5 / CP949: 210 of 3,937 such files
(benchmarks/review36/fp.py, 6 seeds), 22 of them plain short lists and sentences. Each case below is one
of them, a real UI message of /usr/share/locale written as the CSV a user would have; each was read as
CJK before the fix and stays single-byte after (as on main).
"""

from __future__ import annotations

import io

import pytest

from lakeql import csvenc

CJK_LABELS = {"cp949", "cp932", "shift_jisx0213", "euc_jp", "euc_jisx0213", "gb18030", "cp950"}

CASES = [
    ("cp1251", ["разыменовать", "Горизонтальные", "снимку"]),
    ("koi8_r", ["Аомори", "сокращению", "форматирования"]),
    ("iso8859_5", ["прокручиваться", "низких", "ячейки"]),
    ("cp1251", ["Атрымлівае дапомнае", "Араука"]),
    ("cp1255", ["לא ידוע", "פברואר", "ROM מסוג Genesis"]),
    ("cp1256", ["نجاح", "جمهوريّة الباراغواي", "شاشة"]),
    ("cp874", ["ดูเหมือนว่านี่ไม่ใช่แฟ้ม GIF", "โอปาวา"]),
    ("cp874", ["ของแพกเกจด", "อกเก", "ดการใช"]),
    ("cp1253", ["καταγραφών", "αφήνεται", "αρμολόγηση"]),
    ("cp1256", ["اللغات", "الإختصار", "فستضاف"]),
]


def _csv(rows: list[str], codec: str) -> bytes:
    return ("id,text\r\n" + "".join(f'{i},"{r}"\r\n' for i, r in enumerate(rows))).encode(codec)


@pytest.mark.parametrize(("codec", "rows"), CASES)
def test_short_single_byte_text_of_other_scripts_is_not_read_as_cjk(codec: str, rows: list[str]) -> None:
    """Before: GB18030 / Big5 / CP949 (a Cyrillic word list became Han characters, silently)."""
    data = _csv(rows, codec)
    got = csvenc.detect(lambda: io.BytesIO(data))
    assert got in ("cp1252", "mac_roman"), (codec, got)


def test_common_character_rule_separates_real_cjk_from_mis_decoded_text() -> None:
    """The rule's two sides on 3,000-row samples: Russian cp1251 and Greek cp1253 decoded as GB18030 give
    rare Han (share among the common ones under CJK_COMMON); CPython's Chinese sample text stays over it
    and is still detected."""
    import sysconfig
    from pathlib import Path

    import numpy as np

    from lakeql.cjkfreq import HAN

    base = Path(sysconfig.get_path("stdlib")) / "test" / "cjkencodings"
    text = (base / "gb2312-utf8.txt").read_text(encoding="utf-8")
    assert text, "CPython's CJK test texts are missing"  # fail, never skip

    def common(s: str) -> float:
        han = [c for c in s if 0x4E00 <= ord(c) <= 0x9FFF]
        return float(np.mean([c in HAN for c in han]))

    assert common(text) >= csvenc.CJK_COMMON
    words = "Горизонтальные разыменовать снимку прокручиваться ячейки низких форматирования " * 40
    assert common(words.encode("cp1251").decode("gb18030", "replace")) < csvenc.CJK_COMMON
    data = _csv(text.splitlines(), "gb2312")
    assert csvenc.detect(lambda: io.BytesIO(data)) == "gb18030"
