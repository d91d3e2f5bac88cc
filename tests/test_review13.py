"""Review of h/leftovers2 (benchmarks/results/review13.md): extension-type leaves of nested values read
back per value, checksum-cache sweeps that fail when another thread uses the caches."""

from __future__ import annotations

import datetime as dt
import os
import threading

import duckdb
import pytest


def test_extension_leaves_of_nested_interval_values_are_read_back_per_batch_not_per_value(monkeypatch):
    """Under arrow_lossless_conversion (lakeql sql, the shell, MCP) a STRUCT holding an INTERVAL and a
    HUGEINT/TIMETZ had every HUGEINT/TIMETZ leaf read back by its own DuckDB query (register, SELECT,
    unregister): 20,000 rows cost 37 CPU s instead of 0.4. One query per leaf type and batch now."""
    from lakeql.render import Interval, keep_arrow_exact, result_rows

    con = duckdb.connect()
    keep_arrow_exact(con)
    cur = con.execute(
        "SELECT {'h': i::HUGEINT * 1000000000000000000000000000000::HUGEINT, "
        "'t': '01:02:03+05:30'::TIMETZ, 'i': INTERVAL 1 DAY} AS s, "
        "MAP {i::HUGEINT: INTERVAL (i) MONTH} AS m FROM range(3000) t(i)"
    )
    sqls: list[str] = []
    real = duckdb.connect

    class Counting:
        def __init__(self, c):
            self._c = c

        def execute(self, sql, *args):
            sqls.append(sql)
            return self._c.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._c, name)

    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: Counting(real(*a, **k)))
    rows = list(result_rows(cur))
    assert len(rows) == 3000
    s, m = rows[2999]
    assert s["h"] == 2999 * 10**30 and isinstance(s["h"], int)
    assert s["t"] == dt.time(1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert isinstance(s["i"], Interval) and (s["i"].months, s["i"].days, s["i"].micros) == (0, 1, 0)
    assert list(m) == [2999] and m[2999].months == 2999
    assert len(sqls) <= 10, f"{len(sqls)} DuckDB queries for 3,000 rows"


@pytest.fixture
def caches(tmp_path, monkeypatch):
    from lakeql import store

    monkeypatch.setattr(store, "_VERIFIED", set())
    monkeypatch.setattr(store, "_STAMPED", {})
    monkeypatch.setattr(store, "_READ_BACK", set())
    files = []
    for i in range(50):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"x")
        files.append(str(f))
    for f in files:
        st = store._stat_stamp(f)
        store._VERIFIED.add((f, *st, "1:abc"))
        store._STAMPED[f] = (st, "1:abc")
    for f in files[:25]:
        os.unlink(f)
    return store, files


def test_a_sweep_while_another_thread_checks_a_file_does_not_fail(caches, monkeypatch):
    """_sweep_gone stats every cached file (os.stat releases the GIL) while iterating the process-wide
    sets: another thread's Store.damage adding its check made it fail with 'Set changed size during
    iteration' (c282be7; copies since 5c28256), and every thread past the threshold during a sweep of
    seconds started its own sweep (100 stats for 50 entries here; one sweep at a time now)."""
    store, files = caches
    real = store._stat_stamp
    calls = [0]

    def racing(path):  # another reader's damage() runs while this one is in os.stat
        calls[0] += 1
        if calls[0] == 3:
            # another reader past the threshold meanwhile: it left the sweep to this one (each sweep
            # stats every entry, seconds at 100,000 entries: every thread arriving started its own)
            t = threading.Thread(target=store._sweep_gone)
            t.start()
            t.join()
            t = threading.Thread(
                target=lambda: (
                    store._VERIFIED.add(("/other", 1, 2, 3, 4, "1:x")),
                    store._STAMPED.pop(files[0], None),
                )
            )
            t.start()
            t.join()
        return real(path)

    monkeypatch.setattr(store, "_stat_stamp", racing)
    store._sweep_gone()
    assert {c[0] for c in store._VERIFIED} == set(files[25:]) | {"/other"}
    assert set(store._STAMPED) == set(files[25:])
    assert calls[0] == len(files), f"{calls[0]} stats for {len(files)} cached files"


def test_remembering_checksummed_files_tolerates_an_entry_a_sweep_dropped(caches, tmp_path, monkeypatch):
    """Store.remember_checksummed read _STAMPED[f] for files it had just seen there: a reader's sweep in
    another thread dropping one in between raised KeyError at the end of a build."""
    store, files = caches
    st = store.Store(tmp_path / "idx")
    root = str(st.root) + os.sep
    os.makedirs(root, exist_ok=True)
    mine = []
    for i in range(2):
        f = root + f"g{i}"
        with open(f, "wb") as fh:
            fh.write(b"y")
        store._STAMPED[f] = (store._stat_stamp(f), "1:def")
        store._READ_BACK.add(f)
        mine.append(f)
    written = []

    def load(self):  # another thread's sweep drops an entry while the record is read
        store._STAMPED.pop(mine[0], None)
        return {}

    monkeypatch.setattr(store.Store, "_load_verified", load)
    monkeypatch.setattr(store.Store, "_write_verified", lambda self, rec: written.append(dict(rec)))
    st.remember_checksummed()
    assert written == [{"g1": [*store._stat_stamp(mine[1]), "1:def"]}]


@pytest.mark.parametrize(
    "expr",
    [
        "{'b': false, 'i': INTERVAL 1 DAY}",
        "[{'b': true, 'i': INTERVAL 1 DAY}, NULL]",
        "MAP {true: INTERVAL 1 DAY}",
        "{'u': 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID, 'e': 'b'::ENUM('a', 'b'), 'i': INTERVAL 1 DAY}",
        "{'n': NULL::BOOLEAN, 'h': NULL::HUGEINT, 'i': INTERVAL 1 DAY}",
    ],
)
def test_a_boolean_beside_an_interval_in_a_nested_value_is_shown_under_lossless_arrow(expr):
    """arrow_lossless_conversion (lakeql sql / shell / MCP) exports BOOLEAN as the arrow.bool8 extension
    type, whose pyarrow value is already a bool: read back as DuckDB's storage bytes, a STRUCT holding a
    BOOLEAN and an INTERVAL failed the whole query with 'ArrowTypeError: Expected integer, got bool' (it
    printed on main)."""
    import io

    from lakeql.render import keep_arrow_exact, print_result

    outs = []
    for lossless in (False, True):
        con = duckdb.connect()
        if lossless:
            keep_arrow_exact(con)
        buf = io.StringIO()
        print_result(con.execute(f"SELECT {expr} AS v, INTERVAL 1 DAY AS iv"), "json", buf)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
