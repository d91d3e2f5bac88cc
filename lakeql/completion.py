"""Tab completion for ``lakeql shell`` (prompt_toolkit): tables, columns, functions, keywords, dot-commands.

Imported only by the interactive shell (prompt_toolkit is not loaded for piped input or by ``lakeql sql``).
The vocabulary is read from the connection itself: the lake's views (``domain.table``, hidden
``lakeql_*`` schemas left out), their columns, lakeql's public functions (:mod:`lakeql.functions`) and
DuckDB's keywords. Names that are not plain identifiers are inserted quoted, so a completed name is always
valid SQL. Columns are offered after ``table.`` or ``alias.`` and, unqualified, from the tables the
statement mentions first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from lakeql.lake import quote_ident
from lakeql.render import ALIASES, MODES

_WORD = re.compile(r"[\w.$]*$")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN)\s+([\w.\"$]+)(?:\s+(?:AS\s+)?(?!(?:ON|USING|WHERE|JOIN|LEFT|RIGHT|"
                        r"INNER|OUTER|FULL|CROSS|NATURAL|GROUP|ORDER|LIMIT|UNION|WINDOW|QUALIFY|HAVING|"
                        r"POSITIONAL|ASOF|ANTI|SEMI)\b)(\w+))?", re.IGNORECASE)
_AFTER_TABLE_WORD = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|DESCRIBE|SUMMARIZE)\s+[\w.$]*$",
                               re.IGNORECASE)
PATH_COMMANDS = (".read", ".output", ".once")
TABLE_COMMANDS = (".schema", ".tables")
ON_OFF_COMMANDS = (".timer", ".headers")


@dataclass
class Vocabulary:
    """Everything the completer offers, read once from a connection (see :func:`load_vocabulary`)."""

    tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # key -> [(column, type)]
    parts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> its name parts, if not key
    functions: list[tuple[str, str, str]] = field(default_factory=list)   # (name, kind, signature)
    keywords: list[str] = field(default_factory=list)
    reserved: set[str] = field(default_factory=set)
    dot_commands: list[str] = field(default_factory=list)


def load_vocabulary(con, dot_commands: Iterable[str] = ()) -> Vocabulary:
    """Read tables, columns, public functions and keywords from ``con``."""
    from lakeql.functions import public_functions
    from lakeql.shell import visible_columns

    tables: dict[str, list[tuple[str, str]]] = {}
    parts: dict[str, tuple[str, ...]] = {}
    for rel, column, ty in visible_columns(con):
        tables.setdefault(rel.key, []).append((column, ty))
        parts[rel.key] = rel.parts
    kw = con.execute("SELECT keyword_name, keyword_category FROM duckdb_keywords()").fetchall()
    return Vocabulary(tables=tables, parts=parts, functions=public_functions(con),
                      keywords=sorted({k.upper() for k, _ in kw}),
                      reserved={k.lower() for k, c in kw if c == "reserved"},
                      dot_commands=sorted(dot_commands))


class SqlCompleter(Completer):
    """prompt_toolkit completer over a :class:`Vocabulary`; :meth:`refresh` re-reads it after DDL."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocab = vocabulary
        self._paths = PathCompleter(expanduser=True)

    def refresh(self, con) -> None:
        self.vocab = load_vocabulary(con, self.vocab.dot_commands)

    # ------------------------------------------------------------------ helpers
    def sql_name(self, key: str) -> str:
        """``key`` (a table key or a column) as SQL: parts quoted unless plain, non-reserved names."""
        parts = self.vocab.parts.get(key, (key,))
        return ".".join(p if _PLAIN.fullmatch(p) and p.lower() not in self.vocab.reserved else quote_ident(p)
                        for p in parts)

    def _table_for(self, name: str) -> str | None:
        """The table key that ``name`` (a key, a bare table name, quoted or not) refers to."""
        clean = name.replace('"', "").lower()
        for key in self.vocab.tables:
            if key.lower() == clean or key.lower().rsplit(".", 1)[-1] == clean:
                return key
        return None

    def referenced(self, text: str) -> dict[str, str]:
        """Tables named after FROM/JOIN in ``text``: {alias or name (lower): table key}."""
        out: dict[str, str] = {}
        for m in _TABLE_REF.finditer(text):
            key = self._table_for(m.group(1))
            if key is None:
                continue
            out[key.lower()] = key
            out[key.lower().rsplit(".", 1)[-1]] = key
            if m.group(2):
                out[m.group(2).lower()] = key
        return out

    # ------------------------------------------------------------------ completion
    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        stripped = text.lstrip()
        if stripped.startswith(".") and "\n" not in stripped:
            yield from self._dot(stripped, complete_event)
            return
        word = _WORD.search(text).group()
        seen: set[str] = set()
        for c in self._sql(word, text, document.text):
            if c.text not in seen:
                seen.add(c.text)
                yield c

    def _dot(self, line: str, event: CompleteEvent) -> Iterator[Completion]:
        parts = line.split(None, 1)
        if len(parts) == 1 and not line[-1:].isspace():
            for cmd in self.vocab.dot_commands:
                if cmd.startswith(parts[0].lower()):
                    yield Completion(cmd, -len(parts[0]))
            return
        cmd, arg = parts[0].lower(), (parts[1] if len(parts) > 1 else "")
        if cmd in PATH_COMMANDS:
            yield from self._paths.get_completions(Document(arg, len(arg)), event)
        elif cmd in TABLE_COMMANDS:
            yield from self._match(arg, self.vocab.tables, "table")
        elif cmd == ".mode":
            yield from self._match(arg, [*MODES, *ALIASES], "mode")
        elif cmd in ON_OFF_COMMANDS:
            yield from self._match(arg, ["on", "off"], "")

    @staticmethod
    def _match(word: str, names: Iterable[str], meta: str) -> Iterator[Completion]:
        low = word.lower()
        for n in names:
            if n.lower().startswith(low):
                yield Completion(n, -len(word), display_meta=meta)

    def _sql(self, word: str, before: str, full: str) -> Iterator[Completion]:
        refs = self.referenced(full)
        low = word.lower()
        if "." in word:
            qualifier, _, part = word.rpartition(".")
            for key in self.vocab.tables:
                if key.lower().startswith(low):
                    yield Completion(self.sql_name(key), -len(word), display=key, display_meta="table")
            table = refs.get(qualifier.lower()) or self._table_for(qualifier)
            # an alias we could not resolve (a subquery, a CTE): the mentioned tables' columns, or all
            tables = [table] if table else sorted(set(refs.values())) or list(self.vocab.tables)
            yield from self._columns(tables, part)
            return
        tables_first = bool(_AFTER_TABLE_WORD.search(before))
        if tables_first:  # FROM <word>: a table or a table function, nothing else
            yield from self._tables(word)
            yield from self._functions(word, "table")
            return
        yield from self._columns(sorted(set(refs.values())) or list(self.vocab.tables), word)
        yield from self._functions(word, None)
        if word:
            upper = not word.islower()
            for kw in self.vocab.keywords:
                if kw.lower().startswith(low):
                    yield Completion(kw if upper else kw.lower(), -len(word), display_meta="keyword")
        yield from self._tables(word)

    def _tables(self, word: str) -> Iterator[Completion]:
        low = word.lower()
        for key in self.vocab.tables:
            if key.lower().startswith(low) or key.lower().rsplit(".", 1)[-1].startswith(low):
                yield Completion(self.sql_name(key), -len(word), display=key, display_meta="table")

    def _columns(self, tables: list[str], word: str) -> Iterator[Completion]:
        low = word.lower()
        for key in tables:
            for col, ty in self.vocab.tables.get(key, []):
                if col.lower().startswith(low):
                    yield Completion(self.sql_name(col), -len(word), display=col,
                                     display_meta=f"{ty.lower()} · {key}")

    def _functions(self, word: str, kind: str | None) -> Iterator[Completion]:
        low = word.lower()
        for name, k, sig in self.vocab.functions:
            if (kind is None or k == kind) and name.lower().startswith(low):
                yield Completion(name, -len(word), display_meta=sig)
