"""review19: defects found reviewing h/leftovers3 (benchmarks/results/review19.md)."""

from __future__ import annotations

import io

import pytest

# Windows-1252 files a reader meets: the byte after a letter is one Mac Roman reads as a letter of the
# word's case or a sign, and Windows-1252 as a letter the rule thought of the other case or a sign it did
# not list. Each was read as Mac Roman ('Sí' as 'SÌ', '12 M€' as '12 MÄ', „Faust“ as „Faustì').
WINDOWS_1252 = {
    "a survey's Sí / No answers": "id,pregunta,respuesta\n"
    + "".join(f"{i},¿Fuma usted?,{'Sí' if i % 3 else 'No'}\n" for i in range(30)),
    "three Sí": "id,respuesta\n1,Sí\n2,No\n3,Sí\n4,Sí\n",
    "Italian Sì": "id,risposta\n1,Sì\n2,No\n3,Sì\n4,Sì\n5,Sì\n",
    "French Né / Là": "nom,note\nHugo,Né à Besançon\nZola,Né à Paris\nPasteur,Né à Dole\nX,Là\nY,Là\n",
    "amounts in M€": "projet,budget\n" + "".join(f"Projet {i},{i * 1.5} M€\n" for i in range(10)),
    "amounts in K€, numbers only": "ligne,montant\n" + "".join(f"{i},{i * 100} K€\n" for i in range(10)),
    "German quotes „…“": "id,zitat\n1,Er sagte „Hallo“\n2,Das Buch „Faust“\n3,Der Film „Metropolis“\n",
    "German apostrophe ‘": "id,text\n1,Wie geht‘s dir\n2,Gibt‘s das noch\n3,Hat‘s geklappt\n",
    "footnote marks ‡": "name,year\nSmith‡,1990\nJones‡,1991\nBrown‡,1992\n",
    "degrees and micro": "station,temp,dose\nN°1,20°,5µg\nN°2,21°,7µm\nNº3,22°,1µg\n",
    "one accented byte": "name\nJosé\n",
}


@pytest.mark.parametrize("name", sorted(WINDOWS_1252))
def test_windows_1252_text_is_not_read_as_mac_roman(name):
    """A Windows-1252 file read as Mac Roman garbles every non-ASCII letter of it: the worst case of the
    rule. A capital that begins a word ('Sí', 'Né', 'M€') does not make the word upper case, and
    closing German quotes, a ‘ apostrophe, currencies and footnote marks after a letter are signs in
    either reading (so neither encoding gains from them)."""
    from lakeql import csvenc

    data = WINDOWS_1252[name].encode("cp1252")
    assert csvenc.detect(lambda: io.BytesIO(data)) == "cp1252", csvenc.mac_roman_evidence(data)


def test_mac_roman_text_is_still_told_by_its_letters():
    """What the rule is for still works: Mac Roman text of lower-case and upper-case words."""
    from lakeql import csvenc

    text = "name,city\nLauren Vélez,São Paulo\nAlexander Skarsgård,Malmö\nCAFÉ MÜLLER,Köln\nit’s,Zürich\n"
    data = text.encode("mac_roman")
    assert csvenc.detect(lambda: io.BytesIO(data)) == "mac_roman", csvenc.mac_roman_evidence(data)
