"""The most frequent Han characters (zh_CN + zh_TW) and Hangul syllables (ko) of the UI messages in
/usr/share/locale/*/LC_MESSAGES/*.mo: the lists of lakeql/cjkfreq.py. Usage: mkfreq.py N"""
from __future__ import annotations

import gettext
import sys
from collections import Counter
from pathlib import Path


def text(lang: str) -> str:
    out = []
    for mo in sorted(Path(f"/usr/share/locale/{lang}/LC_MESSAGES").glob("*.mo")):
        try:
            with open(mo, "rb") as f:
                out += [v for k, v in gettext.GNUTranslations(f)._catalog.items() if k and isinstance(v, str)]
        except Exception:
            continue
    return "\n".join(out)


n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
han = set()
for lang in ("zh_CN", "zh_TW"):
    c = Counter(ch for ch in text(lang) if 0x4E00 <= ord(ch) <= 0x9FFF)
    han |= {ch for ch, _ in c.most_common(n)}
ko = Counter(ch for ch in text("ko") if 0xAC00 <= ord(ch) <= 0xD7A3)
print("HAN =", repr("".join(sorted(han))))
print("HANGUL =", repr("".join(sorted(ch for ch, _ in ko.most_common(n)))))
