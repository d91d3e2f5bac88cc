"""The SQL surface of n-gram search: Python UDFs bound on a connection, plus the demo.

``ngram_count_impl`` and ``ngram_rows_impl`` are Arrow-vectorised scalar UDFs (one call per chunk of up
to 2048 phrases, e.g. sliding windows for contamination checks) behind the scalar macros
``ngram_count`` / ``ngram_rows`` (which add ``unit := 'char'``); ``ngram_search``, ``ngram_next``,
``ngram_longest``, ``ngram_rows_all`` and ``ngram_rows_any`` are table macros in ``udfs/ngrams.sql``
over ``*_impl`` UDFs that return LIST<STRUCT>. Every UDF only reads the (cached, memory-mapped) index:
no shared mutable state, so any number of cursors may call them at once.
"""

from __future__ import annotations

from typing import Any

from lakeql.udf import check_k, scalar_udf, table_udf

SEARCH_COLUMNS = [("rowid", "BIGINT"), ("occurrences", "BIGINT"), ("snippet", "VARCHAR")]
NEXT_COLUMNS = [("next", "VARCHAR"), ("count", "BIGINT"), ("share", "DOUBLE")]
LONGEST_COLUMNS = [("suffix", "VARCHAR"), ("suffix_length", "BIGINT"), ("suffix_count", "BIGINT"),
                   ("next", "VARCHAR"), ("count", "BIGINT"), ("share", "DOUBLE")]
BOOL_COLUMNS = [("rowid", "BIGINT"), ("occurrences", "BIGINT[]"), ("total", "BIGINT")]


def register(con, ctx) -> None:
    from lakeql.ngrams import query as Q

    def vectorised(fn):
        def run(tables, columns, phrases, units):
            import pyarrow as pa

            out: list[int | None] = []
            for t, c, p, u in zip(tables.to_pylist(), columns.to_pylist(), phrases.to_pylist(),
                                  units.to_pylist(), strict=True):
                if t is None or c is None or p is None:
                    out.append(None)
                    continue
                idx = Q.load(ctx, t, c)
                layer, pat = idx.encode_unit(p, u)
                out.append(fn(idx, pat, layer))
            return pa.array(out, pa.int64())
        return run

    args4 = ["VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR"]
    scalar_udf(con, "ngram_count_impl", vectorised(lambda idx, pat, lay: idx.count(pat, lay)), args4,
               "BIGINT", arrow=True)
    scalar_udf(con, "ngram_rows_impl", vectorised(lambda idx, pat, lay: idx.rows(pat, lay)), args4,
               "BIGINT", arrow=True)
    from lakeql.ngrams.colscan import occurrences

    # overlapping occurrences of a phrase in a text: the count of ngram_search's one-pass column scan
    scalar_udf(con, "ngram_occ_impl", occurrences, ["VARCHAR", "VARCHAR"], "BIGINT", arrow=True,
               side_effects=False)

    def search(table: str, column: str, phrase: str, k: Any, unit: str | None) -> list[dict[str, Any]]:
        if phrase is None:
            return []
        kk = check_k(k)
        idx = Q.load(ctx, table, column)
        lay, pat = idx.encode_unit(phrase, unit)
        rowids, counts, first = idx.top_rows(pat, kk, lay)
        return [{"rowid": int(r), "occurrences": int(c),
                 "snippet": idx.snippet(int(r), int(o), len(pat), layer=lay)}
                for r, c, o in zip(rowids, counts, first, strict=True)]

    def nxt(table: str, column: str, prefix: str, k: Any, unit: str | None) -> list[dict[str, Any]]:
        from lakeql.ngrams.continuation import next_words

        if prefix is None:
            return []
        kk = check_k(k)
        idx = Q.load(ctx, table, column)
        if idx.layer(unit).unit == "word":  # shares of the occurrences followed by a word
            # only an empty prefix asks for the word frequencies; '🚀' or '--' has no words: an error
            words = idx.word_list(prefix, allow_empty=not prefix.strip())
            found, total = next_words(idx, _pattern(words), kk)
        else:  # shares of all occurrences of the prefix (as before)
            pat = idx.encode(prefix)
            total = idx.count(pat)
            found = idx.next_chars(pat, kk)
        return [{"next": w, "count": n, "share": n / total if total else None} for w, n in found]

    def longest(table: str, column: str, context: str, k: Any, unit: str | None) -> list[dict[str, Any]]:
        from lakeql.ngrams.continuation import every_char, longest_chars, longest_words, next_words

        if context is None:
            return []
        kk = check_k(k)
        idx = Q.load(ctx, table, column)
        lay = idx.layer(unit if unit is not None else "word")
        if lay.unit == "word":
            ws, pat = longest_words(idx, context)
            found, total = next_words(idx, pat, kk)
            suffix, n, occ = " ".join(ws), len(ws), (idx.count(pat, lay) if ws else total)
        else:
            suffix, pat = longest_chars(idx, context)
            n = len(suffix)
            every = idx.next_chars(pat, 1 << 30) if suffix else every_char(idx)
            found, total = every[:kk], sum(c for _, c in every)
            occ = idx.count(pat) if suffix else total  # the empty suffix: every character
        return [{"suffix": suffix, "suffix_length": n, "suffix_count": occ, "next": w, "count": c,
                 "share": c / total if total else None} for w, c in found]

    def boolean(mode: str):
        def run(table: str, column: str, phrases: list[str] | None, unit: str | None) -> list[dict[str, Any]]:
            from lakeql.ngrams.boolean import rows_bool

            if phrases is None:
                return []
            idx = Q.load(ctx, table, column)
            rows, occ = rows_bool(idx, list(phrases), mode, unit)
            totals = occ.sum(axis=1)
            return [{"rowid": int(r), "occurrences": o, "total": int(t)}
                    for r, o, t in zip(rows.tolist(), occ.tolist(), totals.tolist(), strict=True)]
        return run

    table_udf(con, "ngram_search", search, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR"],
              SEARCH_COLUMNS)
    table_udf(con, "ngram_next", nxt, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR"], NEXT_COLUMNS)
    table_udf(con, "ngram_longest", longest, ["VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "VARCHAR"],
              LONGEST_COLUMNS)
    table_udf(con, "ngram_rows_all", boolean("all"), ["VARCHAR", "VARCHAR", "VARCHAR[]", "VARCHAR"],
              BOOL_COLUMNS)
    table_udf(con, "ngram_rows_any", boolean("any"), ["VARCHAR", "VARCHAR", "VARCHAR[]", "VARCHAR"],
              BOOL_COLUMNS)


def _pattern(ws: list[str]):
    import numpy as np

    from lakeql.ngrams.text import word_pattern

    return np.frombuffer(word_pattern(ws), dtype=np.uint8).copy()


def demo(con, ctx, out) -> None:
    from lakeql.render import show

    t = "python.functions"
    show(con, f"SELECT ngram_count('{t}', 'docstring', 'file descriptor') AS occurrences, "
              f"ngram_rows('{t}', 'docstring', 'file descriptor') AS rows_with_it", out,
         "Exact n-gram search (FM-index): count a phrase, overlapping occurrences included")
    show(con, f"SELECT module, qualname, occurrences, snippet FROM ngram_search('{t}', 'docstring', "
              f"'file descriptor', k := 3)", out, "The rows that contain it, with a snippet")
    show(con, f"SELECT * FROM ngram_next('{t}', 'docstring', 'Return the', k := 5, unit := 'word')", out,
         "The next word after a phrase, exact (infini-gram style)")
    show(con, f"SELECT suffix, suffix_count, next, count FROM ngram_longest('{t}', 'docstring', "
              f"'if the file does not exist, raise', k := 3)", out,
         "∞-gram: the longest suffix of a context that occurs, and what follows it")
