"""``check_sql(sql)``: find the mistakes an agent makes in SQL before DuckDB runs it.

Parses with sqlglot's DuckDB dialect and resolves names the way a lakeql connection will: tables are the
lake's views ``"domain"."table"`` (bare names resolve in the search path, ``main`` unless ``schema`` is
given, as after ``SET search_path``), CTE names, and subquery aliases; columns resolve against the
sources of their SELECT scope, outer scopes (correlated subqueries) and SELECT-list aliases. Each problem
is a :class:`Problem` (``severity``, ``message``, ``suggestion``, ``line``, ``col``); a clean query gives
none. Suggestions rank candidates by Damerau-Levenshtein distance (then difflib similarity), so a
single-character typo gets its intended name first.

Sources lakeql cannot see into (table functions such as ``read_parquet``, ``information_schema``,
``SELECT *`` subqueries) are trusted: their columns are not checked rather than guessed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from lakeql.colnames import form_note, match_column
from lakeql.lake import ROOT_DOMAIN, nfc, quote_ident
from lakeql.rows import escape_column
from lakeql.safety import FILE_NAME_PATTERN
from lakeql.sqlerrors import needs_quotes

SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "temp", "system", "main_temp"})


@dataclass
class Problem:
    severity: str  # 'error' | 'warning'
    message: str
    suggestion: str | None = None
    line: int | None = None
    col: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "message": self.message, "suggestion": self.suggestion,
                "line": self.line, "col": self.col}


class SchemaInfo:
    """Lower-cased lookup of domain -> table -> columns (original spelling kept for messages)."""

    def __init__(self, tables: dict[str, tuple[str, str, list[str]]]) -> None:
        # tables: key -> (domain, name, columns)
        self.by_schema: dict[str, dict[str, tuple[str, list[str]]]] = {}
        for key, (dom, name, cols) in tables.items():
            self.by_schema.setdefault(dom.lower(), {})[name.lower()] = (key, cols)
            # the hidden rowid views: lakeql_rows."domain.name" = __rowid plus the columns (a column of
            # the table's own named __rowid there gets a "~": lakeql.rows.escape_column)
            self.by_schema.setdefault("lakeql_rows", {})[key.lower()] = (
                key, ["__rowid", "__rowid_file", "__rowid_row", *(escape_column(c) for c in cols)])
        self.keys = sorted(tables)
        # (domain, name) of the tables SQL can only name quoted ('iso_3166-1', 'stats models')
        self.quoted = [(dom, name) for dom, name, _ in tables.values()
                       if needs_quotes(dom) or needs_quotes(name)]
        # lower-cased key -> why, for tables of the lake left out of it (unreadable, or a name two sources
        # share): naming one is that reason, not "unknown table (did you mean <another table>?)"
        self.left_out: dict[str, str] = {}
        self.left_out_bare: dict[str, str] = {}  # the same by the table's bare name ('x.y' of 'd.x.y')

    @classmethod
    def from_catalog(cls, catalog) -> SchemaInfo:
        lake = catalog.lake
        info = cls({k: (t.domain, t.name, [c.column_name for c in catalog.columns(k)])
                    for k, t in lake.tables.items()})
        for p in catalog.problems:
            if p.kind == "table" and p.table_name and p.table_name not in lake.tables:
                why = (f"table {p.table_name!r} is in the lake but left out of it ({p.error}); "
                       "'lakeql doctor LAKE' lists such tables")
                info.left_out.setdefault(p.table_name.lower(), why)
                info.left_out_bare.setdefault(_bare_name(p.table_name, p.path).lower(), why)
        return info

    def left_out_named(self, name: str) -> str | None:
        """Why the left-out table whose bare name is ``name`` (and no live table's) is left out."""
        return self.left_out_bare.get(name.lower())

    def lookup(self, schema: str, name: str) -> tuple[str, list[str]] | None:
        return self.by_schema.get(schema.lower(), {}).get(name.lower())


def dl_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, case-insensitive."""
    a, b = a.lower(), b.lower()
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def dl_distances(name: str, candidates: list[str]):
    """:func:`dl_distance` of ``name`` to every candidate at once (numpy int array, case-insensitive).

    The dynamic programme runs over many candidates together, one query character at a time: a row's
    substitution, deletion and transposition terms are array operations, its insertion term a running
    minimum (``cur[j] - j = min(base[j] - j, cur[j - 1] - (j - 1))``). Candidates go in blocks of
    similar length, each padded to its longest with -1 (matches no character; never read past a
    candidate's own length), so a few long names do not widen every row.
    """
    import numpy as np

    a = [ord(ch) for ch in name.lower()]
    lows = [c.lower() for c in candidates]
    lens = np.fromiter((len(c) for c in lows), dtype=np.int64, count=len(lows))
    if not lows or not a:
        return lens
    out = np.empty(len(lows), dtype=np.int64)
    by_len = np.argsort(lens, kind="stable")
    for start in range(0, len(lows), 512):
        block = by_len[start : start + 512]
        out[block] = _dl_block(a, [lows[k] for k in block], lens[block])
    return out


def _dl_block(a: list[int], lows: list[str], lens):
    import numpy as np

    width = int(lens.max())
    if width == 0:
        return np.full(len(lows), len(a), dtype=np.int64)
    dt = np.int32 if len(a) + width < 2**15 else np.int64
    codes = np.full((len(lows), width), -1, dtype=np.int64)
    for k, c in enumerate(lows):
        if c:
            codes[k, : len(c)] = np.frombuffer(c.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    idx = np.arange(width + 1, dtype=dt)
    prev2 = None
    prev = np.broadcast_to(idx, (len(lows), width + 1)).copy()
    for i in range(1, len(a) + 1):
        base = np.minimum(prev[:, :-1] + (codes != a[i - 1]), prev[:, 1:] + 1)
        if prev2 is not None and width > 1:
            swap = (codes[:, :-1] == a[i - 1]) & (codes[:, 1:] == a[i - 2])
            base[:, 1:] = np.where(swap, np.minimum(base[:, 1:], prev2[:, :-2] + 1), base[:, 1:])
        full = np.empty_like(prev)
        full[:, 0] = i
        full[:, 1:] = base
        np.subtract(full, idx, out=full)
        cur = np.minimum.accumulate(full, axis=1)
        cur += idx
        prev2, prev = prev, cur
    return prev[np.arange(len(lows)), lens].astype(np.int64)


def rank(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The ``n`` candidates closest to ``name``: small edit distance first, then difflib similarity.

    A candidate qualifies with an edit distance <= max(2, len // 3) or a difflib ratio >= 0.6. The edit
    distances of all candidates are computed together (:func:`dl_distances`); the ratio, the slow part
    per candidate, only for candidates in increasing distance until ``n`` qualified ones are found (a
    later distance cannot rank before them), and past the distance limit only when difflib's cheap
    upper bounds of the ratio reach 0.6. The result is the same as scoring every candidate.
    """
    pool = list(dict.fromkeys(c for c in candidates if c))
    if not pool:
        return []
    low = name.lower()
    limit = max(2, len(low) // 3)
    dist = dl_distances(low, pool)
    scored: list[tuple[int, float, str]] = []
    order = sorted(range(len(pool)), key=lambda k: int(dist[k]))
    pos = 0
    while pos < len(order) and len(scored) < n:
        d = int(dist[order[pos]])
        while pos < len(order) and int(dist[order[pos]]) == d:
            c = pool[order[pos]]
            pos += 1
            sm = difflib.SequenceMatcher(None, low, c.lower())
            if d > limit and (sm.real_quick_ratio() < 0.6 or sm.quick_ratio() < 0.6):
                continue
            sim = sm.ratio()
            if d <= limit or sim >= 0.6:
                scored.append((d, -sim, c))
    scored.sort()
    return [c for _, _, c in scored[:n]]


def _pos(node) -> tuple[int | None, int | None]:
    ident = node.this if hasattr(node, "this") and hasattr(node.this, "meta") else node
    meta = getattr(ident, "meta", None) or {}
    line, col = meta.get("line"), meta.get("col")
    if line is not None and col is not None:
        col = max(1, col - len(str(getattr(ident, "name", "") or "")) + 1)
    return line, col


def _bare_name(key: str, path: str) -> str:
    """The table name of ``key`` ('domain.name') without its domain: the domain is the first folder of the
    source ``path`` ('d' of 'd/x.y.parquet', NFC as lakeql.lake names it) or the root's; a name may hold
    dots ('x.y' of 'd/x.y.parquet'), so splitting the key at its last dot would name 'y'."""
    for dom in ([nfc(path.split("/", 1)[0])] if "/" in path else []) + [ROOT_DOMAIN]:
        if key.lower().startswith(dom.lower() + "."):
            return key[len(dom) + 1:]
    return key.rsplit(".", 1)[-1]


def _q(name: str) -> str:
    """``name`` as SQL must write it: quoted when it is no plain identifier or a reserved keyword."""
    return quote_ident(name) if needs_quotes(name) else name


class Checker:
    """Checks SQL text against a :class:`SchemaInfo`."""

    def __init__(self, schema: SchemaInfo, search_path: str | None = None, con=None) -> None:
        self.schema = schema
        self.con = con  # a DuckDB connection with the lake's views: parse with DuckDB, bind with EXPLAIN
        if search_path is not None and not isinstance(search_path, str):
            search_path = str(search_path)
        # a search path that is no domain is a problem of its own (DuckDB's SET would fail on it: its
        # CatalogException leaked out of check_sql); bare names are still checked against it
        self.search_problem: Problem | None = None
        if search_path and search_path.lower() not in schema.by_schema and search_path.lower() != "main":
            from lakeql.errors import closest, shown

            domains = sorted({d for d in schema.by_schema if d != "lakeql_rows"})
            near = closest(search_path, domains)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            self.search_problem = Problem(
                "error", f"search_path {shown(search_path, 100)} is not a domain of the lake{hint}: pass one "
                         f"domain name, e.g. search_path := {(near or domains or ['main'])[0]!r}",
                near[0] if near else None)
            if len(search_path) > 100:  # it names no domain: a shorter spelling for the messages below
                search_path = search_path[:100] + "..."
        self.search = [s for s in ([search_path] if search_path else []) + ["main"]]
        self.search_path = search_path

    def check(self, sql: str) -> list[Problem]:
        """Every problem of ``sql``: syntax, statements that are not queries, file reads, names, binding
        (first, when the search path is not a domain: that). A syntax error where the SQL names a table
        whose name needs quoting unquoted (``iso.iso_3166-1``: 'syntax error at or near "-"') says so and
        suggests the quoted name."""
        out = self._check(sql)
        if out and out[0].message.startswith("syntax error") and out[0].suggestion is None:
            hint = self._unquoted_table(str(sql))
            if hint is not None:
                out[0].message += (f" ({hint[0]} is a table whose name must be quoted in SQL: "
                                   f"{hint[1]})")
                out[0].suggestion = hint[1]
            elif (found := self._keyword_column(str(sql), out[0].message)) is not None:
                word, quoted, tables = found  # a column named by a keyword, written bare: 'SELECT Group, ...'
                out[0].message += (f" ({word} is an SQL keyword: write the column {quoted} in double "
                                   f"quotes (a column of {tables}))")
                out[0].suggestion = quoted
        return ([self.search_problem] if self.search_problem else []) + out

    def _keyword_column(self, sql: str, message: str) -> tuple[str, str, str] | None:
        """(keyword, quoted column, tables) when the syntax error of ``sql`` is at or just after a reserved
        keyword that names a lake column (:func:`lakeql.sqlerrors.keyword_column`; Hive/Spark tables have
        ``select``, ``order``: trial13). The error's place is taken from DuckDB's own message on ``sql``
        (the problem's column is None for a long line and counts display width: review34); not the word
        DuckDB's message names, which is often the token after the keyword (``at or near "FROM"``)."""
        from lakeql.sqlerrors import error_offset, keyword_column

        if self.con is None:
            return None
        try:
            self.con.extract_statements(sql)
        except Exception as exc:  # noqa: BLE001 - any parser error: where is it?
            return keyword_column(sql, error_offset(str(exc), sql), self.con)
        return None

    def _unquoted_table(self, sql: str) -> tuple[str, str] | None:
        """(as written, quoted) for the first table of :attr:`SchemaInfo.quoted` that ``sql`` names
        without quotes (:func:`lakeql.sqlerrors.unquoted_table`)."""
        from lakeql.sqlerrors import unquoted_table

        return unquoted_table(sql, self.schema.quoted)

    def _check(self, sql: str) -> list[Problem]:
        from sqlglot.errors import ParseError, TokenError

        from lakeql.safety import UnsafeSqlError, check_nesting

        if sql is None or not str(sql).strip():
            return [Problem("error", "empty SQL text: pass a query", None, None, None)]
        sql = str(sql)
        try:
            check_nesting(sql)
        except UnsafeSqlError as exc:
            return [Problem("error", str(exc))]
        problems: list[Problem] = []
        duck_ok = False
        if self.con is not None:
            problems = self._duckdb_statements(sql)
            if problems and problems[0].message.startswith("syntax error"):
                return problems
            duck_ok = True
        try:
            stmts = parse_quietly(sql)
        except ParseError as exc:
            if duck_ok:  # DuckDB parses it, sqlglot cannot: leave it to DuckDB's binder
                return problems + (self._bind(sql) if not problems else [])
            e = exc.errors[0] if exc.errors else {}
            desc = str(e.get("description", exc)).split("<Token")[0].strip().rstrip(":")
            hi = e.get("highlight")
            msg = f"syntax error: {desc}" + (f" near {hi!r}" if hi else "")
            return [Problem("error", msg, None, e.get("line"), e.get("col"))]
        except TokenError as exc:
            return [Problem("error", f"syntax error: {exc}", None, None, None)]
        except RecursionError:
            return [Problem("error", "the query is nested too deeply to check")]
        try:
            if not duck_ok:
                problems.extend(self._sqlglot_statements(stmts))
            problems.extend(self._file_reads(stmts))
            problems.extend(self._names(stmts))
        except RecursionError:
            problems.append(Problem("error", "the query is nested too deeply to check"))
        out = _dedupe(problems)
        if self.con is not None and not any(p.severity == "error" for p in out):
            out.extend(self._bind(sql))
        return out

    def _names(self, stmts) -> list[Problem]:
        from sqlglot import exp

        problems: list[Problem] = []
        for stmt in stmts:
            roots = [stmt] if isinstance(stmt, exp.Query) else [
                q for q in stmt.find_all(exp.Query) if q.find_ancestor(exp.Query) is None]
            for root in roots:
                problems.extend(self._check_query(root))
        return problems

    # ------------------------------------------------------------------ statements, files, binding
    def _duckdb_statements(self, sql: str) -> list[Problem]:
        """Syntax errors (with position) and statements that are not queries, by DuckDB's own parser."""
        import duckdb

        try:
            stmts = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            line, col = _duckdb_position(str(exc), 0)
            return [Problem("error", "syntax error: " + _duckdb_message(exc), None, line, col)]
        out = []
        for i, st in enumerate(stmts, 1):
            kind = st.type.name
            if kind == "SELECT" or kind == "EXPLAIN" and _is_plain_explain(self.con, st.query):
                continue
            where = f"statement {i} is a " if len(stmts) > 1 else ""
            out.append(Problem("error", _not_a_query(where, kind)))
        return out

    def _sqlglot_statements(self, stmts) -> list[Problem]:
        """Without a connection: statements that sqlglot does not see as queries."""
        from sqlglot import exp

        out = []
        for i, st in enumerate(stmts, 1):
            if isinstance(st, exp.Query | exp.Describe):
                continue
            where = f"statement {i} is a " if len(stmts) > 1 else ""
            if isinstance(st, _STATEMENT_CLASSES()):
                kind = str(st.this if isinstance(st, exp.Command) else st.key).upper()
                rest = str(st.expression.name if isinstance(st, exp.Command) and st.expression else "")
                if kind == "EXPLAIN" and not re.match(r"\s*ANALY[SZ]E\b", rest, re.IGNORECASE):
                    continue  # plain EXPLAIN does not run its statement
                out.append(Problem("error", _not_a_query(where, kind)))
            else:
                where = f"statement {i}: " if len(stmts) > 1 else ""
                out.append(Problem("error", f"syntax error: {where}{st.sql('duckdb')[:60]!r} is not a "
                                            "statement (expected SELECT ...)", None, *_pos(st)))
        return out

    def _file_reads(self, stmts) -> list[Problem]:
        from lakeql.safety import file_functions

        out = []
        for st in stmts:
            for node in file_functions(st):
                name = node.sql("duckdb")[:60]
                out.append(Problem("error", f"{name} reads files directly: query the lake's tables "
                                            "(\"domain\".\"table\") instead", None, *_pos(node)))
        return out

    def _bind(self, sql: str) -> list[Problem]:
        """Type and binding errors from DuckDB's binder: ``EXPLAIN`` on a cursor of the lake connection."""
        import duckdb

        cur = self.con.cursor()
        try:
            if self.search_path and self.search_problem is None:  # bare names resolve as the name check did
                # each entry quoted: a domain may hold a comma, a dot or a double quote
                cur.execute("SET search_path = ?",
                            [",".join('"' + s.replace('"', '""') + '"' for s in self.search)])
            stmts = cur.extract_statements(sql)
            # the hidden rowid views are made on first use (lakeql.views): make the ones named here
            for m in re.finditer(r'lakeql_rows\s*\.\s*"((?:[^"]|"")+)"', sql, re.IGNORECASE):
                try:
                    cur.execute("SELECT lakeql_rows_view(?)", [m.group(1).replace('""', '"')]).fetchall()
                except duckdb.Error:
                    pass  # an unknown table: the binder below says so
            out = []
            for st in stmts:
                if st.type.name != "SELECT":
                    continue
                try:
                    cur.execute("EXPLAIN\n" + st.query.strip()).fetchall()
                except duckdb.Error as exc:
                    line, col = _duckdb_position(str(exc), 1)
                    if len(stmts) == 1 or line is None:
                        out.append(Problem("error", _duckdb_message(exc), None, line, col))
                    else:  # the position is relative to the statement; say which one
                        where = f" (in {st.query.strip()[:40]!r})"
                        out.append(Problem("error", _duckdb_message(exc) + where))
            return out
        finally:
            cur.close()

    # ------------------------------------------------------------------ tables
    def _resolve_table(self, table) -> tuple[str | None, list[str] | None, Problem | None]:
        """(lake key, columns, problem) of a table reference; (None, None, None) when not checkable."""
        from sqlglot import exp

        if not isinstance(table.this, exp.Identifier):
            return None, None, None  # table function, e.g. read_parquet(...)
        if FILE_NAME_PATTERN.search(table.name):
            return None, None, None  # FROM 'data.csv': reported as a file read
        name, db = table.name, table.db
        if table.catalog:
            return None, None, None  # attached database: not ours to judge
        if db:
            if db.lower() in SYSTEM_SCHEMAS:
                return None, None, None
            hit = self.schema.lookup(db, name)
            if hit:
                return hit[0], hit[1], None
            gone = self.schema.left_out.get(f"{db}.{name}".lower())
            if gone:
                line, col = _pos(table)
                return None, None, Problem("error", gone, None, line, col)
            if db.lower() not in self.schema.by_schema:
                sugg = rank(db, list({k.split(".", 1)[0] for k in self.schema.keys}))
                best = rank(f"{db}.{name}", self.schema.keys)
                return None, None, self._problem(
                    table, f"unknown schema {db!r} in {db}.{name}", best[0] if best else (
                        f"{sugg[0]}.{name}" if sugg else None), best or sugg)
            cands = [f"{db}.{n}" for n in self.schema.by_schema[db.lower()]]
            best = rank(f"{db}.{name}", cands) or rank(f"{db}.{name}", self.schema.keys)
            return None, None, self._problem(table, f"unknown table {db}.{name}",
                                             best[0] if best else None, best)
        for s in self.search:
            hit = self.schema.lookup(s, name)
            if hit:
                return hit[0], hit[1], None
        elsewhere = [k for k in self.schema.keys if k.split(".", 1)[1].lower() == name.lower()]
        local = [self.schema.by_schema[s.lower()][n][0].split(".", 1)[1]
                 for s in self.search for n in self.schema.by_schema.get(s.lower(), {})]
        near = [c for c in rank(name, local) if dl_distance(name, c) <= 2]
        gone = None if elsewhere else self.schema.left_out_named(name)
        if gone:
            line, col = _pos(table)
            return None, None, Problem("error", gone, None, line, col)
        if elsewhere and near:  # a one-letter slip on a table of the search path beats another schema
            return None, None, self._problem(
                table, f"unknown table {name!r} in the search path ({', '.join(self.search)}); "
                f"{' and '.join(elsewhere[:2])} exist elsewhere", near[0], near + elsewhere[:1])
        if elsewhere:
            return None, None, self._problem(
                table, f"table {name!r} is not in the search path ({', '.join(self.search)}): qualify it "
                f"as {' or '.join(elsewhere[:3])}", elsewhere[0], [])
        best = rank(name, local) or rank(name, self.schema.keys)
        return None, None, self._problem(table, f"unknown table {name!r}", best[0] if best else None, best)

    def _problem(self, node, message: str, suggestion: str | None, others: list[str]) -> Problem:
        line, col = _pos(node)
        rest = [o for o in others if o != suggestion]
        if suggestion:
            message += f" (did you mean {', '.join([suggestion, *rest][:3])}?)"
        return Problem("error", message, suggestion, line, col)

    # ------------------------------------------------------------------ columns
    def _check_query(self, root) -> list[Problem]:
        from sqlglot import exp
        from sqlglot.optimizer.scope import Scope, traverse_scope

        problems: list[Problem] = []
        try:
            scopes = traverse_scope(root)
        except Exception:  # noqa: BLE001 - sqlglot cannot scope some DuckDB syntax: check tables only
            scopes = []
        resolved: dict[int, tuple[str | None, list[str] | None]] = {}
        table_cols: dict[int, list[str] | None] = {}
        for scope in scopes:
            for _alias, src in scope.sources.items():
                if isinstance(src, exp.Table) and id(src) not in resolved:
                    key, cols, prob = self._resolve_table(src)
                    resolved[id(src)] = (key, cols)
                    table_cols[id(src)] = cols
                    if prob:
                        problems.append(prob)
        if not scopes:
            for t in root.find_all(exp.Table):
                _, _, prob = self._resolve_table(t)
                if prob:
                    problems.append(prob)
            return problems

        def source_columns(src) -> list[str] | None:
            if isinstance(src, exp.Table):
                return table_cols.get(id(src))
            if isinstance(src, Scope):
                e = src.expression
                if isinstance(e, exp.SetOperation):
                    e = e.left
                    while isinstance(e, exp.SetOperation):
                        e = e.left
                if not isinstance(e, exp.Select):
                    return None
                if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and isinstance(s.this, exp.Star))
                       for s in e.expressions):
                    return None
                names = list(e.named_selects)
                alias_cols = _alias_columns(src.expression)
                return alias_cols or names
            return None

        for scope in scopes:
            problems.extend(self._check_scope(scope, source_columns))
        return problems

    def _check_scope(self, scope, source_columns) -> list[Problem]:
        from sqlglot import exp

        problems: list[Problem] = []
        sel = scope.expression
        aliases = {e.alias.lower() for e in (sel.expressions if isinstance(sel, exp.Select) else [])
                   if isinstance(e, exp.Alias)}
        using = {i.name.lower() for j in sel.find_all(exp.Join) for i in (j.args.get("using") or [])}
        lambda_vars = {v.name.lower() for lam in sel.find_all(exp.Lambda) for v in lam.expressions}
        # the column names a FROM item gives itself ('unnest(tags) AS u(t)': t, a STRUCT whose fields
        # 't.k' reads), taken as lambda variables are: names of values, not of tables (trial13)
        lambda_vars |= {c.name.lower() for ta in sel.find_all(exp.TableAlias) for c in ta.columns}
        chain = []
        s = scope
        while s is not None:
            chain.append(s)
            s = s.parent
        own = [c for c in sel.find_all(exp.Column) if c.find_ancestor(exp.Select) is sel]
        for column in own:
            if isinstance(column.this, exp.Star):
                continue
            name = column.name
            qual = column.table
            if qual:
                found = None
                for sc in chain:
                    for alias, src in sc.sources.items():
                        if alias.lower() == qual.lower():
                            found = src
                            break
                    if found is not None:
                        break
                if found is None:
                    all_cols = {c.lower() for sc in chain for src in sc.sources.values()
                                for c in (source_columns(src) or [])}
                    if qual.lower() in all_cols or qual.lower() in lambda_vars:
                        continue  # struct field access such as s.field
                    if _struct_path(column, chain, all_cols | lambda_vars, source_columns):
                        continue  # a deeper struct path: s.a.b, alias.s.a.b (the binder checks fields)
                    missing = _path_alias(column, chain, source_columns)
                    if missing is not None:  # alias.typo.field: the alias is known, its column is not
                        alias, cols = missing
                        part = column.parts[1].name
                        best = rank(part, cols)
                        fix = f"{alias}.{_q(best[0])}" if best else None
                        problems.append(self._problem(column, f"unknown column {part!r} in {alias}", fix,
                                                      [f"{alias}.{_q(b)}" for b in best]))
                        continue
                    full = f"{qual}.{name}".lower()
                    dotted = next(((c, src) for sc in chain for src in sc.sources.values()
                                   for c in (source_columns(src) or []) if c.lower() == full), None)
                    if dotted is not None:  # a column 'a.b' written unquoted ('unknown alias a' misleads)
                        where = _source_label(dotted[1]).strip(" ()").removeprefix("table ")
                        line, col = _pos(column)
                        problems.append(Problem(
                            "error", f"{dotted[0]!r} is a column of {where} whose name holds a dot: quote it "
                            f"as {_q(dotted[0])}", _q(dotted[0]), line, col))
                        continue
                    aliases_here = [a for sc in chain for a in sc.sources]
                    best = rank(qual, aliases_here)
                    msg = f"unknown table or alias {qual!r} in {column.sql()}"
                    problems.append(self._problem(column, msg, best[0] if best else None, best))
                    continue
                cols = source_columns(found)
                if cols is None or name.lower() in {c.lower() for c in cols}:
                    continue
                best = rank(name, cols)
                stored = match_column(name, cols)  # typed NFC, stored NFD (macOS): say so, not 'did you mean'
                if stored is not None:
                    problems.append(Problem(
                        "error", f"unknown column {name!r} in {qual}" + _source_label(found) + ": "
                        + form_note(name, stored), f"{qual}.{_q(stored)}", *_pos(column)))
                    continue
                problems.append(self._problem(
                    column, f"unknown column {name!r} in {qual}" + _source_label(found),
                    f"{qual}.{_q(best[0])}" if best else None, [f"{qual}.{_q(b)}" for b in best]))
                continue
            low = name.lower()
            if low in lambda_vars:
                continue
            hit_scope = None
            for sc in chain:
                srcs = list(sc.sources.items())
                if not srcs:
                    continue
                unknown = any(source_columns(src) is None for _, src in srcs)
                owners = [a for a, src in srcs if low in {c.lower() for c in (source_columns(src) or [])}]
                if owners:
                    hit_scope = sc
                    if len(owners) > 1 and low not in using and sc is scope:
                        problems.append(Problem(
                            "error", f"column {name!r} is ambiguous: it is in {', '.join(owners)}; qualify "
                            f"it as {owners[0]}.{_q(name)}", f"{owners[0]}.{_q(name)}", *_pos(column)))
                    break
                if unknown:
                    hit_scope = sc
                    break
            if hit_scope is not None or low in aliases or low in using:
                continue
            if not any(sc.sources for sc in chain):
                continue  # SELECT without FROM: nothing to resolve against
            cands = [c for src in scope.sources.values() for c in (source_columns(src) or [])]
            qualified = {c.lower(): f"{a}.{_q(c)}" for a, src in scope.sources.items()
                         for c in (source_columns(src) or [])}
            best = rank(name, cands + list(aliases))
            stored = match_column(name, cands)  # typed NFC, stored NFD (macOS): the stored spelling binds
            sugg = best[0] if best else None
            if sugg and len(scope.sources) > 1 and sugg.lower() in qualified:
                sugg = qualified[sugg.lower()]
            multi = len(scope.sources) > 1
            if stored is not None:
                fix = qualified.get(stored.lower(), _q(stored)) if multi else _q(stored)
                problems.append(Problem("error", f"unknown column {name!r}: {form_note(name, stored)}", fix,
                                        *_pos(column)))
                continue
            problems.append(self._problem(column, f"unknown column {name!r}", sugg,
                                          [qualified.get(b.lower(), b) if multi else b for b in best]))
        return problems


def _path_alias(column, chain, source_columns) -> tuple[str, list[str]] | None:
    """(alias, its columns) when ``column`` is a path ``alias.x.y`` whose first part is a source in scope
    with known columns that do not include ``x`` (so the message names the column, not an alias)."""
    parts = column.parts
    if len(parts) < 3:
        return None
    for sc in chain:
        for alias, src in sc.sources.items():
            if alias.lower() == parts[0].name.lower():
                cols = source_columns(src)
                return (alias, cols) if cols is not None else None
    return None


def _struct_path(column, chain, columns: set[str], source_columns) -> bool:
    """Whether ``column`` (sqlglot reads ``info.loc.lat`` as column ``lat`` of table ``loc`` in schema
    ``info``) is a path into a STRUCT column: its first part is a column (or lambda variable) of a source in
    scope (``info.loc.lat``), or an alias of a source of which the second part is a column
    (``a.info.loc.lat``). Which fields exist is left to DuckDB's binder, which check_sql runs after."""
    parts = [p.name.lower() for p in column.parts]
    if len(parts) < 3:
        return False
    if parts[0] in columns:
        return True
    for sc in chain:
        for alias, src in sc.sources.items():
            if alias.lower() == parts[0]:
                cols = source_columns(src)
                return cols is None or parts[1] in {c.lower() for c in cols}  # None: 'SELECT *' below
    return False


def _alias_columns(expression) -> list[str] | None:
    """Column names given in ``WITH t(a, b) AS (...)`` / ``(...) AS t(a, b)``, if any."""
    parent = expression.parent
    alias = parent.args.get("alias") if parent is not None else None
    cols = alias.columns if alias is not None and hasattr(alias, "columns") else []
    return [c.name for c in cols] or None


def _source_label(src) -> str:
    from sqlglot import exp

    if isinstance(src, exp.Table):
        return f" (table {src.db + '.' if src.db else ''}{src.name})"
    return " (subquery)"


def check(sql: str, schema: SchemaInfo, search_path: str | None = None, con=None) -> list[Problem]:
    """Problems of ``sql`` (empty list when clean).

    With ``con`` (a connection that has the lake's views) DuckDB's own parser finds syntax errors and
    statement types, and its binder (``EXPLAIN`` on a cursor of ``con``) finds type errors such as
    ``dep_delay > 0`` on a VARCHAR column. ``con`` should carry the caller's restrictions: binding a file
    reader reads the file's header, so the binder only runs when no other error was found.
    """
    return Checker(schema, search_path, con).check(sql)


def _not_a_query(where: str, kind: str) -> str:
    return (f"{where or 'this is a '}{kind} statement, not a query: only read-only SELECT queries (and plain "
            "EXPLAIN of one) are allowed")


def _STATEMENT_CLASSES() -> tuple[type, ...]:  # noqa: N802 - a constant, computed on first use
    """sqlglot's classes of statements that are not queries (those this sqlglot version has)."""
    from sqlglot import exp

    names = ("Command Create Drop Insert Update Delete Copy Alter Set Use Merge Pragma Attach Detach "
             "Transaction Commit Rollback Export Install Load").split()
    return tuple(c for c in (getattr(exp, n, None) for n in names) if isinstance(c, type))


def parse_quietly(sql: str) -> list:
    """sqlglot statements of ``sql``, without its log warnings about falling back to ``Command``."""
    import logging

    import sqlglot

    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    finally:
        log.setLevel(level)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.message, p.line, p.col)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _duckdb_message(exc: Exception) -> str:
    """The first line of a DuckDB error, without its class prefix noise."""
    return str(exc).strip().splitlines()[0][:500]


def _duckdb_position(text: str, line_offset: int) -> tuple[int | None, int | None]:
    """(line, column) of the caret under ``LINE n: ...`` in a DuckDB error, lines shifted by ``line_offset``.

    DuckDB shows a window of a long line starting with ``...``: then only the line is known.
    """
    import re

    m = re.search(r"^LINE (\d+): (.*)\n( *)\^", text, re.MULTILINE)
    if not m:
        return None, None
    line = int(m.group(1)) - line_offset
    if line < 1:
        return None, None
    if m.group(2).startswith("..."):
        return line, None
    return line, len(m.group(3)) - len(f"LINE {m.group(1)}: ") + 1


def _is_plain_explain(con, text: str) -> bool:
    from lakeql.safety import is_read_only_query

    return is_read_only_query(con, text)
