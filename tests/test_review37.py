"""Defects found reviewing h/trial13 (benchmarks/results/review37.md)."""

from __future__ import annotations

from lakeql.joins.transform import Learned, _changes_numbers


def _learned(pairs: list[tuple[str, str]]) -> Learned:
    return Learned("q->c", [], len(pairs), len(pairs), 1.0, 0, pairs)


def test_number_changing_transform_of_long_ids_is_refused():
    """Trial13's rule compared numbers as floats: 19-digit ids (Snowflake/Twitter ids) that a transform
    maps onto other ids differing in the last digits are equal floats, so the nonsense join was kept."""
    assert _changes_numbers(_learned([("1234567890123456789", "1234567890123456780"),
                                      ("9876543210987654321", "9876543210987654320")]))
    assert _changes_numbers(_learned([("13", "2013")]))  # the short case trial13 tested still holds
    # a change of format only is still a join: zero padding, a trailing '.0', a sign
    assert not _changes_numbers(_learned([("7", "007"), ("42", "42.0"), ("+5", "5")]))
    assert not _changes_numbers(_learned([("1234567890123456789", "0001234567890123456789")]))
