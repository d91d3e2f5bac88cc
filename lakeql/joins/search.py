"""``joinable``: equi, semantic and composite-key candidates, ranked (see rank.py), with join SQL.

* equi: exact overlap from the value index (joinindex.py), exact containment
* semantic: DeepJoin embedding search (faiss) for candidates, then value-level matching
  (valuematch.py) of the actual values, so the reported containment is measured, not guessed
* composite: each key column's equi candidates are grouped by table; assignments that cover every key
  column are verified with an exact DuckDB semi-join over distinct key tuples (as MATE verifies)
* auto: equi, plus semantic for text columns unless equi already found ``min(k, 3)`` unique candidates
  holding at least ``AUTO_SEMANTIC_BELOW`` of the query values; merged by score
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from lakeql import arrays
from lakeql.errors import LakeqlError, NotIndexedError, UnknownColumnError
from lakeql.joins import rank, valuematch
from lakeql.joins.joinindex import JoinIndex
from lakeql.joins.normalize import norm_sql
from lakeql.lake import Table, key_sql_name, quote_ident

MODES = ("auto", "equi", "semantic", "transform")  # transform: lakeql/joins/transform.py
AUTO_SEMANTIC_BELOW = 0.9
QUERY_VALUES = 2000  # query values matched in semantic mode (most frequent first)
CAND_VALUES = 20000  # candidate values matched in semantic mode
N_MATCHES = 3
TIE_POOL = 4  # a pool holds at most this many times its size when candidates tie at its boundary


@dataclass
class Candidate:
    table: str
    columns: list[str]
    score: float
    containment: float
    uniqueness: float
    method: str
    matches: list[tuple[str, str]] = field(default_factory=list)
    join_sql: str = ""
    transform: str | None = None  # discovery (transform.py): the learned program, method 'transform'

    def row(self) -> dict[str, Any]:
        return {"candidate_table": self.table, "candidate_column": ", ".join(self.columns),
                "score": round(float(self.score), 6), "containment": float(self.containment),
                "candidate_uniqueness": float(self.uniqueness), "method": self.method,
                "sample_matches": [{"query_value": a, "candidate_value": b} for a, b in self.matches],
                "join_sql": self.join_sql, "transform": self.transform}


class Searcher:
    """Join search over one loaded index; ``tables`` maps table keys to lake tables (for value reads)."""

    def __init__(self, ix: JoinIndex, tables: dict[str, Table]) -> None:
        self.ix = ix
        self.tables = tables

    # ------------------------------------------------------------------ helpers
    @property
    def con(self):
        """This thread's own DuckDB connection for reading table values (never shared between threads:
        a searcher is used by many cursors at once). Only lake files and quoted identifiers reach it."""
        return _thread_connection()

    def _read(self, sql: str) -> list[tuple]:
        """The rows of ``sql`` (a read of lake files) on :attr:`con`. A lake on object storage is read on
        a connection of its own with the lake's ``s3://`` filesystem, closed at once: that filesystem is
        Python code, and DuckDB crashes (double free) when a connection holding one is dropped with the
        Python state of a DuckDB worker thread, which is where a SQL call's thread-local connection ends."""
        root = next(iter(self.tables.values())).root if self.tables else None
        if not (isinstance(root, str) and "://" in root):
            return self.con.execute(sql).fetchall()
        from lakeql.profile import connect
        from lakeql.sources.remote import cached_filesystem, register_filesystem

        con = connect()
        try:
            register_filesystem(con, cached_filesystem(root))
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def col_id(self, table: str, column: str) -> int:
        """The index id of ``table.column``, or a clear error (not indexed and why / unknown)."""
        ix = self.ix
        c = ix.by_name.get((table, column))
        if c is None:
            names = [cn for (tn, cn) in ix.by_name if tn == table]
            lowered = [n for n in names if n.lower() == column.lower()]
            if not lowered:
                from lakeql.colnames import match_column

                stored = match_column(column, names)  # typed NFC, stored (and indexed) NFD
                lowered = [stored] if stored is not None else []
            if lowered:
                c = ix.by_name[(table, lowered[0])]
            else:
                from lakeql.errors import did_you_mean, shown

                if not names:
                    raise NotIndexedError(f"table {table} is not in the join index: run "
                                          "'lakeql index --refresh LAKE'")
                raise UnknownColumnError(f"table {table} has no column {shown(column)}"
                                         f"{did_you_mean(column, names)}")
        if not ix.indexed[c]:
            note = ix.note[c] or "not indexed"
            if "no non-empty values" in note or ix.type[c].strip('"').upper() == "NULL":  # all NULL
                raise LakeqlError(f"column {table}.{ix.column_name[c]} has no non-empty values "
                                  "(only NULLs or empty strings): nothing to join on")
            from lakeql.joins.normalize import type_class

            if "not a join key type" in note and type_class(ix.type[c]) is not None:  # DECIMAL(p,0), trial13
                raise NotIndexedError(f"column {table}.{ix.column_name[c]} ({ix.type[c]}) was profiled by an "
                                      "older lakeql that did not take this type as a join key: run "
                                      "'lakeql index LAKE' (a full build) to index it")
            raise LakeqlError(f"column {table}.{ix.column_name[c]} ({ix.type[c]}) cannot be searched for "
                              f"joins ({note.removeprefix('skipped: ')}): pick a string, integer or date "
                              "column, or write this one as such in the table's files")
        return c

    def distinct_values(self, col: int, limit: int) -> list[str]:
        """Up to ``limit`` distinct raw values of a column, most frequent first (ties in hash order, a
        uniform sample), read from Parquet when the stored top values do not cover the column."""
        ix = self.ix
        if ix.n_distinct[col] <= len(ix.top(col)[0]):
            return ix.top(col)[0][:limit]
        t = self.tables[ix.table_name[col]]
        ref = quote_ident(ix.column_name[col])
        # the value is selected under a name no lake column can have: a column literally named like the
        # alias would otherwise win the GROUP BY binding ("column ... must appear in the GROUP BY")
        rows = self._read(
            f"SELECT v FROM (SELECT CAST({ref} AS VARCHAR) AS v FROM {t.scan_sql()} "
            f"WHERE {norm_sql(ref)} IS NOT NULL) AS _lakeql_values(v) "
            f"GROUP BY 1 ORDER BY count(*) DESC, hash(v) LIMIT {int(limit)}")
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ equi
    def equi_ranked(self, q: int, k: int, pool: int | None = None, probe: int | None = None, ov=None):
        """(cols, score, containment, uniqueness) arrays of the best ``k`` equi candidates of column q
        (``probe``: estimate from the query's bottom ``probe`` hashes only, see JoinIndex.overlaps;
        ``ov``: that ``ix.overlaps(q, probe)`` when already computed, e.g. by ``overlaps_many``)."""
        cols, cont, uniq, _ = self.equi_pool(q, pool or max(50, 5 * k), probe, ov)
        return self.equi_rank(q, k, cols, cont, uniq)

    def equi_pool(self, q: int, n_pool: int, probe: int | None = None, ov=None,
                  min_upper: float | None = None):
        """(cols, containment, uniqueness, upper) of column q's candidate pool: the ``n_pool`` candidates
        of other tables with the highest name-free upper bound ``rank.score(containment, uniqueness, 1)``
        and every candidate level with the ``n_pool``-th (at most ``TIE_POOL * n_pool`` in all, the lower
        column ids first), in the order (-upper, column id). So the pool is the same whatever else the
        lake holds below it (joins/incremental.py relies on that), and a name-based ranking sees every
        candidate an equal bound cannot tell apart (copies of one table in a lake). ``min_upper``: only
        the candidates whose bound reaches it (the join graph's: no score can exceed the bound)."""
        import numpy as np

        ix = self.ix
        if ov is None:
            ov = ix.overlaps(q, probe)
        if len(ov.cols) == 0 or ov.n_query == 0:
            return np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0)
        other = (ix.table_id[ov.cols] != ix.table_id[q]) & (ov.containment > 0)
        cols, cont = ov.cols[other], np.minimum(ov.containment[other], 1.0)  # cols ascending
        uniq = ix.uniqueness[cols]
        upper = rank.score(cont, uniq, np.ones(len(cols)))
        if min_upper is not None:
            keep = upper >= min_upper
            cols, cont, uniq, upper = cols[keep], cont[keep], uniq[keep], upper[keep]
        if len(upper) > n_pool:  # partial selection: O(candidates), not a full sort
            cut = np.partition(upper, len(upper) - n_pool)[len(upper) - n_pool]  # the n_pool-th best
            top = np.flatnonzero(upper >= cut)
            top = top[np.argsort(-upper[top], kind="stable")][: TIE_POOL * n_pool]
        else:
            top = np.argsort(-upper, kind="stable")
        return cols[top], cont[top], uniq[top], upper[top]

    def equi_rank(self, q: int, k: int, cols, cont, uniq):
        """The best ``k`` of a pool (:meth:`equi_pool`) ranked with names and embeddings."""
        import numpy as np

        ix = self.ix
        if len(cols) == 0:
            return np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0)
        ev = rank.evidence(ix, q, cols)
        sc = rank.score(cont, uniq, ev, rank.weak_query(ix, q)) * rank.surrogate_factor(ix, q, cols)
        order = np.lexsort((-cont, -sc))[:k]
        return cols[order], sc[order], cont[order], uniq[order]

    def equi(self, q: int, k: int, pool: int | None = None) -> list[Candidate]:
        cols, sc, cont, uniq = self.equi_ranked(q, k, pool)
        return [self._equi_candidate(q, int(c), float(s), float(ct), float(u))
                for c, s, ct, u in zip(cols, sc, cont, uniq, strict=True)]

    def _equi_candidate(self, q: int, c: int, score: float, cont: float, uniq: float) -> Candidate:
        import numpy as np

        ix = self.ix
        qv, qh = ix.top(q)
        cv, ch = ix.top(c)
        craw = dict(zip(ch, cv, strict=True))
        ch_all = ix.hashes(c)
        matches: list[tuple[str, str]] = []
        if len(qh) and len(ch_all):
            qa = np.asarray(qh, dtype=np.uint32)
            pos = np.minimum(np.searchsorted(ch_all, qa), len(ch_all) - 1)
            hit = np.asarray(ch_all[pos]) == qa
            for i in np.flatnonzero(hit)[:N_MATCHES]:
                matches.append((qv[i], craw.get(qh[i], qv[i])))
        plain = self._plain_equality(q, c)
        sql = join_sql(ix.table_name[q], [ix.column_name[q]], ix.table_name[c], [ix.column_name[c]],
                       "plain" if plain else "normalized", self.tables)
        return Candidate(ix.table_name[c], [ix.column_name[c]], score, cont, uniq, "equi", matches, sql)

    def _plain_equality(self, q: int, c: int) -> bool:
        ix = self.ix
        if ix.type[q] != ix.type[c]:
            return False
        if ix.type_class[q] != "text":
            return True
        a, b = ix.case_class[q] or "", ix.case_class[c] or ""
        return "untrimmed" not in a + b and (a == b or "none" in (a, b))

    # ------------------------------------------------------------------ semantic
    def semantic(self, q: int, k: int, pool: int | None = None) -> list[Candidate]:
        import faiss
        import numpy as np

        ix = self.ix
        if ix.faiss is None or ix.vectors is None:
            raise NotIndexedError("no semantic join index (DeepJoin embeddings): build it with "
                                  "'lakeql index LAKE --joins-semantic'")
        n_pool = pool or max(50, 4 * k)
        faiss.omp_set_num_threads(1)
        qvec = np.asarray(ix.vectors[q:q + 1], dtype=np.float32)
        sims, ids = ix.faiss.search(qvec, min(n_pool * 2 + 20, max(len(ix), 1)))
        safe = np.maximum(ids[0], 0)
        keep = (ids[0] >= 0) & (ix.table_id[safe] != ix.table_id[q]) & ~ix.excluded[safe]
        cands = ids[0][keep][:n_pool]
        if len(cands) == 0:
            return []
        qvals = self.distinct_values(q, QUERY_VALUES)
        n_query = len(qvals)
        out = []
        sem = rank.semantic_similarity(ix, q, cands)
        names = np.array([rank.name_similarity(ix.column_name[q], ix.column_name[c], ix.table_name[c])
                          for c in cands])
        for c, s_sem, s_name in zip(cands, sem, names, strict=True):
            c = int(c)
            cvals = self.distinct_values(c, CAND_VALUES)
            m = valuematch.match(qvals, cvals)
            cont = float(m.matched.sum() / n_query) if n_query else 0.0
            if cont == 0.0:
                continue  # similar-looking column, but no value matches: not a join
            uniq = float(ix.uniqueness[c])
            # share of the candidate's values that some query value matched: the table built to
            # join this one covers the same entities, a look-alike table covers others too
            back = len(arrays.unique(m.best[m.matched])) / len(cvals) if len(cvals) else 0.0
            sc = float(rank.score(cont, uniq, max(s_sem, s_name))) * (0.85 + 0.15 * back)
            pairs = [(qvals[i], cvals[int(m.best[i])]) for i in np.flatnonzero(m.matched)[:N_MATCHES]]
            sql = join_sql(ix.table_name[q], [ix.column_name[q]], ix.table_name[c], [ix.column_name[c]],
                           "tokens", self.tables)
            out.append(Candidate(ix.table_name[c], [ix.column_name[c]], sc, cont, uniq, "semantic",
                                 pairs, sql))
        out.sort(key=lambda x: (-x.score, -x.containment))
        return out[:k]

    # ------------------------------------------------------------------ auto
    def auto(self, q: int, k: int) -> list[Candidate]:
        eq = self.equi(q, k)
        strong = sum(1 for c in eq if c.containment >= AUTO_SEMANTIC_BELOW and c.uniqueness >= 0.9)
        if self.ix.faiss is None or self.ix.type_class[q] != "text" or strong >= min(k, 3):
            return eq
        best: dict[tuple[str, str], Candidate] = {(c.table, c.columns[0]): c for c in eq}
        for c in self.semantic(q, k):
            key = (c.table, c.columns[0])
            if key not in best or c.score > best[key].score:
                best[key] = c
        return sorted(best.values(), key=lambda x: (-x.score, -x.containment))[:k]

    # ------------------------------------------------------------------ composite
    def composite(self, table: str, qcols: list[int], k: int, per_column: int = 50) -> list[Candidate]:
        """Multi-column joins: tables holding a candidate for every key column, verified exactly."""
        ix = self.ix
        per: list[dict[str, list[tuple[int, float]]]] = []
        for q in qcols:
            groups: dict[str, list[tuple[int, float]]] = {}
            for cand in self.equi(q, per_column, pool=per_column * 4):
                c = ix.by_name[(cand.table, cand.columns[0])]
                groups.setdefault(cand.table, []).append((c, cand.containment))
            per.append(groups)
        tables = set(per[0])
        for g in per[1:]:
            tables &= set(g)
        trials = []
        for t in tables:
            options = [sorted(g[t], key=lambda x: -x[1])[:2] for g in per]
            for combo in itertools.product(*options):
                cols = [c for c, _ in combo]
                if len(set(cols)) < len(cols):
                    continue
                prior = 1.0
                for _, cont in combo:
                    prior *= cont
                trials.append((prior, t, cols))
        trials.sort(key=lambda x: -x[0])
        out = []
        for _, t, cols in trials[: max(3 * k, 10)]:
            cont, uniq, n_q = self._tuple_containment(table, [ix.column_name[q] for q in qcols], t,
                                                      [ix.column_name[c] for c in cols])
            if n_q == 0 or cont == 0:
                continue
            name_ev = sum(rank.name_similarity(ix.column_name[q], ix.column_name[c], t)
                          for q, c in zip(qcols, cols, strict=True)) / len(cols)
            sc = float(rank.score(cont, uniq, name_ev))
            plain = all(self._plain_equality(q, c) for q, c in zip(qcols, cols, strict=True))
            sql = join_sql(table, [ix.column_name[q] for q in qcols], t, [ix.column_name[c] for c in cols],
                           "plain" if plain else "normalized", self.tables)
            out.append(Candidate(t, [ix.column_name[c] for c in cols], sc, cont, uniq, "equi-composite",
                                 [], sql))
        out.sort(key=lambda x: (-x.score, -x.containment))
        return out[:k]

    def _tuple_containment(self, qt: str, qcols: list[str], ct: str, ccols: list[str]
                           ) -> tuple[float, float, int]:
        """Exact (containment, candidate tuple uniqueness, query distinct tuples) via DuckDB."""
        qn = ", ".join(f"{norm_sql(quote_ident(c))} AS k{i}" for i, c in enumerate(qcols))
        cn = ", ".join(f"{norm_sql(quote_ident(c))} AS k{i}" for i, c in enumerate(ccols))
        notnull = " AND ".join(f"k{i} IS NOT NULL" for i in range(len(qcols)))
        keys = ", ".join(f"k{i}" for i in range(len(qcols)))
        sql = (f"WITH q AS (SELECT DISTINCT * FROM (SELECT {qn} FROM {self.tables[qt].scan_sql()}) "
               f"WHERE {notnull}), "
               f"c AS (SELECT {keys}, count(*) AS n FROM (SELECT {cn} FROM {self.tables[ct].scan_sql()}) "
               f"WHERE {notnull} GROUP BY ALL) "
               f"SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM q SEMI JOIN c USING ({keys})), "
               f"(SELECT count(*) FROM c), (SELECT sum(n) FROM c)")
        n_q, hit, n_c, rows_c = self._read(sql)[0]
        cont = hit / n_q if n_q else 0.0
        uniq = n_c / rows_c if rows_c else 0.0
        return float(cont), float(uniq), int(n_q)


_LOCAL = threading.local()


def _thread_connection():
    """The calling thread's private DuckDB connection (created on first use, one per thread)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        from lakeql.profile import connect

        con = _LOCAL.con = connect()
    return con


def _tokens_sql(expr: str) -> str:
    return (f"list_filter(string_split_regex(lower(CAST({expr} AS VARCHAR)), '[^[:alnum:]]+'), "
            "lambda t: t <> '')")


def join_sql(qt: str, qcols: list[str], ct: str, ccols: list[str], how: str,
             tables: dict[str, Table] | None = None) -> str:
    """A ready ``SELECT * FROM q JOIN c ON ...``: plain equality, normalized equality, or (semantic) a
    shared-words condition that approximates the value matching in SQL."""
    def name(t: str) -> str:
        return key_sql_name(t, tables)

    conds = []
    for a, b in zip(qcols, ccols, strict=True):
        qa, cb = f"q.{quote_ident(a)}", f"c.{quote_ident(b)}"
        if how == "plain":
            conds.append(f"{qa} = {cb}")
        elif how == "normalized":
            conds.append(f"{norm_sql(qa)} = {norm_sql(cb)}")
        else:  # tokens: all words of a one-word value, else at least two shared words
            tq, tc = _tokens_sql(qa), _tokens_sql(cb)
            conds.append(f"len(list_intersect({tq}, {tc})) >= least(2, len({tq}), len({tc}))")
    return f"SELECT * FROM {name(qt)} AS q JOIN {name(ct)} AS c ON " + " AND ".join(conds)
