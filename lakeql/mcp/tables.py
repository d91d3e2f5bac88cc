"""Rows as a Markdown table for an agent, within a character budget, with a note when cut.

Cells are escaped (``|`` and line breaks cannot break the table, so a value cannot forge rows or
headings; other control characters, NUL and terminal escape sequences among them, are shown as ``\\xNN``
as the CLI shows them, and U+2028/U+2029 as ``\\u2028``/``\\u2029``) and long cells are shortened; rows
stop before the budget is exceeded.

SQL NULL is shown as ``NULL`` (as ``lakeql sql --format table`` does); a text value that would read as
NULL (``NULL``, ``null``, ``'NULL'`` ...) is shown as a quoted SQL string literal (``'NULL'``,
``'''NULL'''``) and the table ends with a note saying so, so that an agent can tell them apart (CSV and
JSON output differ already: an empty field or ``null`` against the text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

NULL_NOTE = "_NULL is SQL NULL; a quoted 'NULL' is the text NULL (a SQL string literal)._"


def looks_null(value: Any) -> bool:
    """A text value that a reader would take for SQL NULL: 'NULL' in any case, in any quotes."""
    return isinstance(value, str) and value.strip().strip("'\"").strip().lower() == "null"


def cell(value: Any, max_chars: int, quote_null: bool = True) -> str:
    """One value as table text: NULL for None, escaped pipes, line breaks and control characters, cut at
    ``max_chars``."""
    from lakeql.render import escape_controls

    if value is None:
        return "NULL"
    if quote_null and looks_null(value):  # the text, not SQL NULL: a SQL string literal
        value = "'" + value.replace("'", "''") + "'"
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    if len(text) > max_chars:
        text = text[:max_chars] + f"… ({len(text):,} chars)"
    text = (text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")
            .replace("\t", " ").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return escape_controls(text)


def fitting_columns(columns: Sequence[str], first: Sequence[Any] | None, budget: int, cell_chars: int) -> int:
    """How many leading columns fit ``budget`` characters with their header, separator and the first row
    (all of them when they do; at least one). A 6,000-column result's header alone was 156,000 characters,
    three times the cap, with no row shown (agent13)."""
    used = 12  # the lines' ends and breaks
    for i, name in enumerate(columns):
        used += len(cell(name, 200, quote_null=False)) + 3 + 4  # '| name ' and '---|'
        if first is not None:
            used += len(cell(first[i], cell_chars)) + 3
        if used > budget:
            return max(1, i)
    return len(columns)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_chars: int,
                   cell_chars: int = 1000, more: bool = False, row_cap: int | None = None,
                   next_rows: Callable[[int], str] | None = None) -> str:
    """``columns`` and ``rows`` as a Markdown table of at most ``max_chars`` characters.

    ``more``: the source had rows beyond ``rows`` (cut at ``row_cap``); the note says so, and says when
    the character budget cut the table as well. Columns that do not fit with the first row are left out
    (the note says how many are shown). ``next_rows``: the call that gets the rows after the ``shown`` first
    ones, named in the note when the table is cut (a query's LIMIT/OFFSET, a tool's ``offset``).
    """
    all_columns = len(columns)
    # room kept for the notes (the NULL note and the cut notes; the paging and columns notes are longer)
    reserve = 200 + (300 if next_rows is not None else 0)
    shown_columns = fitting_columns(columns, rows[0] if rows else None, max_chars - reserve - 150, cell_chars)
    if shown_columns < all_columns:
        reserve += 150
    if shown_columns < all_columns:
        columns = columns[:shown_columns]
        rows = [row[:shown_columns] for row in rows]
    head = "| " + " | ".join(cell(c, 200, quote_null=False) for c in columns) + " |"
    lines = [head, "|" + "---|" * len(columns)]
    used = len(head) + len(lines[1]) + 2
    shown = 0
    cut_by_chars = False
    quoted_null = False
    for row in rows:
        line = "| " + " | ".join(cell(v, cell_chars) for v in row) + " |"
        if used + len(line) + 1 > max_chars - reserve:  # keep room for the notes
            cut_by_chars = True
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
        quoted_null = quoted_null or any(looks_null(v) for v in row)
    note = []
    if shown_columns < all_columns:
        note.append(f"{shown_columns} of {all_columns} columns shown (the first ones): name the columns you "
                    "need instead of SELECT *")
    if cut_by_chars:
        note.append(f"{shown} of {len(rows)}{'+' if more else ''} rows shown: the result is cut at "
                    f"{max_chars:,} characters")
    elif more:
        note.append(f"{shown} rows shown: more rows exist (row limit {row_cap}); add LIMIT/aggregate or "
                    "raise max_rows")
    if next_rows is not None and (cut_by_chars or more) and shown:
        note.append(next_rows(shown))
    text = "\n".join(lines)
    if not rows:
        text += "\n(no rows)"
    if quoted_null:
        text += "\n\n" + NULL_NOTE
    if note:
        text += "\n\n_Truncated: " + "; ".join(note) + "._"
    return text
