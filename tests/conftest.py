"""Shared fixtures: small real lakes built in tmp dirs from the bundled sample lake."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from testutil import SAMPLE_LAKE


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the sample lake."""
    dst = tmp_path / "lake"
    shutil.copytree(SAMPLE_LAKE, dst)
    return dst
