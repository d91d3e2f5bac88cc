"""Faults found by the trial10 pass (benchmarks/results/trial10.md): CSV files as people have them
(fivethirtyeight's, copied and damaged), Parquet files of every DuckDB type, hostile arguments."""

from __future__ import annotations

import re

import pytest
from testutil import shared_data

import lakeql

DRINKS = "alcohol-consumption/drinks.csv"
AIRLINES = "airline-safety/airline-safety.csv"


def fte(rel: str) -> bytes:
    return shared_data("fivethirtyeight", rel).read_bytes()


@pytest.fixture(scope="module")
def csv_lake(tmp_path_factory):
    """fivethirtyeight's drinks and airline-safety as people have them: with a BOM, in Latin-1, in
    UTF-16 with a BOM, with ``;`` delimiters."""
    root = tmp_path_factory.mktemp("csv_lake")
    (root / "csv").mkdir()
    drinks = fte(DRINKS)
    (root / "csv" / "bom.csv").write_bytes(b"\xef\xbb\xbf" + drinks)
    text = drinks.decode().replace("Cote d", "Côte d") + "Zürich,1,2,3,4.0\n"
    (root / "csv" / "latin1.csv").write_bytes(text.encode("latin-1"))
    (root / "csv" / "utf16.csv").write_bytes(drinks.decode().encode("utf-16"))
    (root / "csv" / "semi.csv").write_bytes(fte(AIRLINES).replace(b",", b";"))
    return root


def brute(con, table: str, column: str, phrase: str) -> tuple[int, int]:
    texts = [r[0] or "" for r in con.execute(f'SELECT "{column}" FROM {table}').fetchall()]
    occ = sum(len(re.findall(f"(?={re.escape(phrase)})", t)) for t in texts)
    return occ, sum(phrase in t for t in texts)


def test_ngram_index_of_csv_tables(csv_lake, tmp_path):
    """``--ngram`` of any CSV table was skipped: ``n-gram index of csv.bom.country skipped: Parquet magic
    bytes not found in footer`` (the text reader opened every file as Parquet). Now each is indexed
    (UTF-8 copies of Latin-1 / UTF-16 files included) and answers as a scan of the view."""
    targets = ["csv.bom.country", "csv.latin1.country", "csv.utf16.country", "csv.semi.airline"]
    with _no_skip_warning():
        lakeql.index(csv_lake, index_dir=tmp_path, ngram=targets, capabilities=["ngrams"], progress=False)
    con = lakeql.connect(csv_lake, index_dir=tmp_path)
    kinds = con.execute("SELECT count(*) FROM lakeql_indexes() WHERE kind = 'ngram'").fetchone()[0]
    assert kinds == len(targets)
    for target, phrase in [
        ("csv.latin1.country", "Côte"),
        ("csv.latin1.country", "Zürich"),
        ("csv.latin1.country", "an"),
        ("csv.bom.country", "ia"),
        ("csv.utf16.country", "Rep"),
        ("csv.semi.airline", "Air"),
    ]:
        table, column = target.rsplit(".", 1)
        got = con.execute(
            "SELECT ngram_count(?, ?, ?), ngram_rows(?, ?, ?)", [table, column, phrase, table, column, phrase]
        ).fetchone()
        assert got == brute(con, table, column, phrase), (target, phrase)
        assert got[1] > 0
        hits = con.execute(
            "SELECT count(*) FROM ngram_search(?, ?, ?, k := 1000)", [table, column, phrase]
        ).fetchone()[0]
        assert hits == got[1]


class _no_skip_warning:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self.seen = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        bad = [str(w.message) for w in self.seen if "skipped" in str(w.message)]
        assert not bad, bad
        return False
