"""Helpers for tests: where the shared data and the sample lake are (importable as ``testutil``)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_LAKE = ROOT / "lakeql" / "sample_lake"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; a missing data set fails the test (CI has it: nothing is skipped)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared data set {path} is missing: tests read ../shared/data beside the project")
    return path


def duckdb_cli() -> str:
    """The stock ``duckdb`` binary of the PyPI package duckdb-cli (a test dependency) in this venv."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "duckdb"
    found = str(beside) if beside.exists() else shutil.which("duckdb")
    if not found:
        pytest.fail("the stock duckdb CLI is missing: pip install '.[test]' installs duckdb-cli")
    return found


def require(module: str):
    """Import a test dependency (the '.[test]' extra installs it): missing, the test fails, never skips."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"test dependency {module!r} is missing ({exc}): pip install '.[test]'")


def find_all(haystack, needle) -> list[int]:
    """Every start of ``needle`` in ``haystack`` (str or bytes), overlapping ones included: the brute
    force that n-gram counts are checked against."""
    out, i = [], haystack.find(needle)
    while i >= 0:
        out.append(i)
        i = haystack.find(needle, i + 1)
    return out


def python_last_line(code: str, timeout: float = 300) -> str:
    """Run ``code`` in a fresh Python process (status lines off) and return its last output line; a
    failing process fails the test with its stderr. For checks of what a new process imports."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "LAKEQL_QUIET": "1"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]
