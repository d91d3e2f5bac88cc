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
from dataclasses import dataclass
from typing import Any

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
            # the hidden rowid views: lakeql_rows."domain.name" = the columns plus __rowid
            self.by_schema.setdefault("lakeql_rows", {})[key.lower()] = (key, [*cols, "__rowid"])
        self.keys = sorted(tables)

    @classmethod
    def from_catalog(cls, catalog) -> SchemaInfo:
        lake = catalog.lake
        return cls({k: (t.domain, t.name, [c.column_name for c in catalog.columns(k)])
                    for k, t in lake.tables.items()})

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


def rank(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """The ``n`` candidates closest to ``name``: small edit distance first, then difflib similarity."""
    pool = list(dict.fromkeys(c for c in candidates if c))
    if not pool:
        return []
    low = name.lower()
    scored = []
    for c in pool:
        d = dl_distance(low, c.lower())
        sim = difflib.SequenceMatcher(None, low, c.lower()).ratio()
        if d <= max(2, len(low) // 3) or sim >= 0.6:
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


def _q(name: str) -> str:
    return name if name.replace("_", "a").isalnum() and not name[:1].isdigit() else '"' + name + '"'


class Checker:
    """Checks SQL text against a :class:`SchemaInfo`."""

    def __init__(self, schema: SchemaInfo, search_path: str | None = None) -> None:
        self.schema = schema
        self.search = [s for s in ([search_path] if search_path else []) + ["main"]]

    def check(self, sql: str) -> list[Problem]:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import ParseError, TokenError

        if sql is None or not str(sql).strip():
            return [Problem("error", "empty SQL text: pass a query", None, None, None)]
        try:
            stmts = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
        except ParseError as exc:
            e = exc.errors[0] if exc.errors else {}
            desc = str(e.get("description", exc)).split("<Token")[0].strip().rstrip(":")
            hi = e.get("highlight")
            msg = f"syntax error: {desc}" + (f" near {hi!r}" if hi else "")
            return [Problem("error", msg, None, e.get("line"), e.get("col"))]
        except TokenError as exc:
            return [Problem("error", f"syntax error: {exc}", None, None, None)]
        problems: list[Problem] = []
        for stmt in stmts:
            roots = [stmt] if isinstance(stmt, exp.Query) else [
                q for q in stmt.find_all(exp.Query) if q.find_ancestor(exp.Query) is None]
            for root in roots:
                problems.extend(self._check_query(root))
        seen, out = set(), []
        for p in problems:
            key = (p.message, p.line, p.col)
            if key not in seen:
                seen.add(key)
                out.append(p)
        return out

    # ------------------------------------------------------------------ tables
    def _resolve_table(self, table) -> tuple[str | None, list[str] | None, Problem | None]:
        """(lake key, columns, problem) of a table reference; (None, None, None) when not checkable."""
        from sqlglot import exp

        if not isinstance(table.this, exp.Identifier):
            return None, None, None  # table function, e.g. read_parquet(...)
        name, db = table.name, table.db
        if table.catalog:
            return None, None, None  # attached database: not ours to judge
        if db:
            if db.lower() in SYSTEM_SCHEMAS:
                return None, None, None
            hit = self.schema.lookup(db, name)
            if hit:
                return hit[0], hit[1], None
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
                    aliases_here = [a for sc in chain for a in sc.sources]
                    best = rank(qual, aliases_here)
                    msg = f"unknown table or alias {qual!r} in {column.sql()}"
                    problems.append(self._problem(column, msg, best[0] if best else None, best))
                    continue
                cols = source_columns(found)
                if cols is None or name.lower() in {c.lower() for c in cols}:
                    continue
                best = rank(name, cols)
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
            sugg = best[0] if best else None
            if sugg and len(scope.sources) > 1 and sugg.lower() in qualified:
                sugg = qualified[sugg.lower()]
            multi = len(scope.sources) > 1
            problems.append(self._problem(column, f"unknown column {name!r}", sugg,
                                          [qualified.get(b.lower(), b) if multi else b for b in best]))
        return problems


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


def check(sql: str, schema: SchemaInfo, search_path: str | None = None) -> list[Problem]:
    """Problems of ``sql`` (empty list when clean)."""
    return Checker(schema, search_path).check(sql)
