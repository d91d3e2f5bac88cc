"""The SQL surface of n-gram search: Python UDFs bound on a connection, plus the demo.

``ngram_count`` and ``ngram_rows`` are Arrow-vectorised scalar UDFs (one call per chunk of up to 2048
phrases, e.g. sliding windows for contamination checks); ``ngram_search`` and ``ngram_next`` are table
macros in ``udfs/ngrams.sql`` over ``*_impl`` UDFs that return LIST<STRUCT>.
"""

from __future__ import annotations

from typing import Any

from lakeql.udf import check_k, scalar_udf, table_udf

SEARCH_COLUMNS = [("rowid", "BIGINT"), ("occurrences", "BIGINT"), ("snippet", "VARCHAR")]
NEXT_COLUMNS = [("next", "VARCHAR"), ("count", "BIGINT"), ("share", "DOUBLE")]


def register(con, ctx) -> None:
    from lakeql.ngrams import query as Q

    def vectorised(fn):
        def run(tables, columns, phrases):
            import pyarrow as pa

            out: list[int | None] = []
            for t, c, p in zip(tables.to_pylist(), columns.to_pylist(), phrases.to_pylist(), strict=True):
                if t is None or c is None or p is None:
                    out.append(None)
                    continue
                idx = Q.load(ctx, t, c)
                out.append(fn(idx, idx.encode(p)))
            return pa.array(out, pa.int64())
        return run

    scalar_udf(con, "ngram_count", vectorised(lambda idx, pat: idx.count(pat)),
               ["VARCHAR", "VARCHAR", "VARCHAR"], "BIGINT", arrow=True)
    scalar_udf(con, "ngram_rows", vectorised(lambda idx, pat: idx.rows(pat)),
               ["VARCHAR", "VARCHAR", "VARCHAR"], "BIGINT", arrow=True)

    def search(table: str, column: str, phrase: str, k: Any) -> list[dict[str, Any]] | None:
        if phrase is None:
            return []
        kk = check_k(k)
        idx = Q.load(ctx, table, column)
        pat = idx.encode(phrase)
        rowids, counts, first = idx.top_rows(pat, kk)
        return [{"rowid": int(r), "occurrences": int(c), "snippet": idx.snippet(int(r), int(o), len(pat))}
                for r, c, o in zip(rowids, counts, first, strict=True)]

    def nxt(table: str, column: str, prefix: str, k: Any) -> list[dict[str, Any]] | None:
        if prefix is None:
            return []
        kk = check_k(k)
        idx = Q.load(ctx, table, column)
        pat = idx.encode(prefix)
        total = idx.count(pat)
        return [{"next": ch, "count": n, "share": n / total if total else None}
                for ch, n in idx.next_chars(pat, kk)]

    table_udf(con, "ngram_search", search, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT"], SEARCH_COLUMNS)
    table_udf(con, "ngram_next", nxt, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT"], NEXT_COLUMNS)


def demo(con, ctx, out) -> None:
    from lakeql.demo import show

    t = "python.functions"
    show(con, f"SELECT ngram_count('{t}', 'docstring', 'file descriptor') AS occurrences, "
              f"ngram_rows('{t}', 'docstring', 'file descriptor') AS rows_with_it", out,
         "Exact n-gram search (FM-index): count a phrase, overlapping occurrences included")
    show(con, f"SELECT module, qualname, occurrences, snippet FROM ngram_search('{t}', 'docstring', "
              f"'file descriptor', k := 3)", out, "The rows that contain it, with a snippet")
    show(con, f"SELECT * FROM ngram_next('{t}', 'docstring', 'Return the ', k := 5)", out,
         "What comes next after a prefix (infini-gram style)")
