"""CPU seconds of lakeql.csvenc.detect on ~50 MB CSV files (cp1251 Russian, Shift-JIS Japanese, Latin-1
French with a late non-ASCII part, GB18030 Chinese), best of 2. Run with PYTHONPATH pointing at the code to
measure. Usage: cost.py DIR"""
from __future__ import annotations

import gettext
import sys
import time
from pathlib import Path

from lakeql.csvenc import detect


def msgs(lang: str) -> list[str]:
    out = []
    for mo in sorted(Path(f"/usr/share/locale/{lang}/LC_MESSAGES").glob("*.mo")):
        with open(mo, "rb") as f:
            cat = gettext.GNUTranslations(f)._catalog
            out += [v.replace("\n", " ").replace('"', "'") for k, v in cat.items()
                    if k and isinstance(v, str)]
    return out


def make(d: Path) -> dict[str, Path]:
    files = {}
    for name, lang, codec in (("ru_cp1251", "ru", "cp1251"), ("ja_sjis", "ja", "cp932"),
                              ("zh_gb", "zh_CN", "gb18030")):
        p = d / f"{name}.csv"
        if not p.exists():
            block = "".join(f'{i},"{m}"\r\n' for i, m in enumerate(msgs(lang))).encode(codec, "replace")
            p.write_bytes(b"id,text\r\n" + block * max(1, (50 << 20) // len(block)))
        files[name] = p
    p = d / "late_latin1.csv"  # 48 MB of ASCII, then French in Latin-1
    if not p.exists():
        fr = "".join(f'{i},"{m}"\r\n' for i, m in enumerate(msgs("fr"))).encode("latin-1", "replace")
        p.write_bytes(b"id,text\r\n" + b'1,"plain ascii text"\r\n' * ((48 << 20) // 22) + fr)
    files["late_latin1"] = p
    return files


d = Path(sys.argv[1])
d.mkdir(parents=True, exist_ok=True)
for name, p in make(d).items():
    best, got = 1e9, None
    for _ in range(2):
        t = time.process_time()
        got = detect(lambda p=p: open(p, "rb"))
        best = min(best, time.process_time() - t)
    print(f"{name} {p.stat().st_size >> 20} MB -> {got}: {best:.2f} CPU s")
