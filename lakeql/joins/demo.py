"""``lakeql demo`` examples for joins on the sample lake."""

from __future__ import annotations

from typing import Any

EXAMPLES = [
    ("joins: which columns of other tables does flights.origin join with? (the referenced key first)",
     "SELECT candidate_table, candidate_column, round(score, 3) AS score, containment, "
     "round(candidate_uniqueness, 4) AS uniqueness, method "
     "FROM joinable('flights.flights', 'origin', k := 3)"),
    ("joins: a composite key (origin, time_hour) -> weather",
     "SELECT candidate_table, candidate_column, round(score, 3) AS score, round(containment, 3) AS "
     "containment, method FROM joinable('flights.flights', ['origin', 'time_hour'], k := 1)"),
]


def demo(con: Any, ctx: Any, out: Any) -> None:
    from lakeql.render import show

    for title, sql in EXAMPLES:
        show(con, sql, out, title)
