"""review17: the lazily opened n-gram word layer and a rebuild between swapping files in and recording
them (a killed build, or one that has not recorded yet)."""

from __future__ import annotations

import pytest

import lakeql

TEXTS = ["Red Island apple", "Blue island sea", "Green hill", "ISLAND north", "Island Island", "no match"]


def test_word_layer_opened_after_an_unrecorded_swap_is_not_the_new_build(tmp_path, monkeypatch):
    """A connection loads the index (characters), a rebuild swaps new files in and is killed before it
    records them (the manifest row still names the old build; the old files are kept aside), then the
    first word query opens the word layer: it read the new build's word files (case-folded here) under
    the old row: 'Island' counted 0 rows instead of 2. It must answer from the old files or fail asking
    to run the query again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakeql.store import Store

    lake, idx = tmp_path / "lake", tmp_path / "idx"
    (lake / "d" / "z").mkdir(parents=True)
    for i in range(3):
        pq.write_table(pa.table({"t": TEXTS[2 * i : 2 * i + 2]}), lake / "d" / "z" / f"p{i}.parquet")
    lakeql.index(
        lake, index_dir=idx, progress=False, capabilities=["ngrams"], ngram=["d.z.t"], ngram_words=True
    )
    sql = "SELECT ngram_rows('d.z', 't', ?, unit := ?)"
    con = lakeql.connect(lake, index_dir=idx)
    assert con.execute(sql, ["Island", "char"]).fetchone()[0] == 2  # loaded: characters only

    def killed(self, *a, **k):
        raise KeyboardInterrupt("killed between the swap and the record")

    monkeypatch.setattr(Store, "record", killed)
    with pytest.raises(KeyboardInterrupt):
        lakeql.index(
            lake,
            index_dir=idx,
            progress=False,
            capabilities=["ngrams"],
            ngram=["d.z.t"],
            ngram_words=True,
            ngram_case="insensitive",
        )
    monkeypatch.undo()
    try:
        got = con.execute(sql, ["Island", "word"]).fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - DuckDB wraps the UDF's error
        assert "run the query again" in str(exc), exc
    else:
        assert got == 2, got
    assert lakeql.connect(lake, index_dir=idx).execute(sql, ["Island", "word"]).fetchone()[0] == 2
