"""Progress bars for long work (tqdm on stderr), silenced by ``quiet``.

Every long loop in lakeql (file scans, embedding batches, index shards) goes through :func:`progress`
so that ``--quiet`` silences them all in one place.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar of this process."""
    global _QUIET
    _QUIET = quiet


@contextlib.contextmanager
def quiet_while(quiet: bool) -> Iterator[None]:
    """Silence progress output inside the block when ``quiet`` (restoring the previous state)."""
    global _QUIET
    before = _QUIET
    _QUIET = before or quiet
    try:
        yield
    finally:
        _QUIET = before


def is_quiet() -> bool:
    """True when status output is off (``--quiet`` or ``LAKEQL_QUIET=1``); bars also need a terminal."""
    return _QUIET or os.environ.get("LAKEQL_QUIET") == "1"


def _bars_off() -> bool:
    return is_quiet() or not sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, unit: str = "it",
             **kwargs: Any) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar unless quiet; yields the same items."""
    if _bars_off():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                    dynamic_ncols=True, **kwargs)


def bar(total: int | None, desc: str = "", unit: str = "it", **kwargs: Any):
    """A manual tqdm bar (``.update(n)``, ``.close()``); a no-op object when quiet."""
    if _bars_off():
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                **kwargs)


def say(message: str) -> None:
    """Print a status line on stderr unless quiet (used for 'built X at N rows/s' summaries)."""
    if not is_quiet():
        print(message, file=sys.stderr)


class _NullBar:
    def update(self, n: int = 1) -> None:  # noqa: D401 - tqdm compatible
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
