"""``lakeql demo`` examples for joins on the sample lake."""

from __future__ import annotations

from typing import Any

EXAMPLES = [
    "SELECT candidate_table, candidate_column, round(score, 3) AS score, containment, "
    "candidate_uniqueness, method FROM joinable('flights.flights', 'origin', k := 3)",
    "SELECT candidate_table, candidate_column, round(score, 3) AS score, containment, method "
    "FROM joinable('flights.flights', ['origin', 'time_hour'], k := 2)",
]


def demo(con: Any, ctx: Any, out: Any) -> None:
    for sql in EXAMPLES:
        print(f"-- joins: which columns of other tables does this join with?\n{sql};", file=out)
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        print(" | ".join(names), file=out)
        for row in cur.fetchall():
            print(" | ".join(str(v) for v in row), file=out)
        print(file=out)
