"""Helpers for tests: where the shared data and the sample lake are (importable as ``testutil``)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_LAKE = ROOT / "lakeql" / "sample_lake"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data set {path} is absent (tests read ../shared/data beside the project)")
    return path
