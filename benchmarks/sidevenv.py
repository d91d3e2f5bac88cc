"""Run a benchmark script's worker in a side venv (LanceDB, DuckDB 1.5 + vss/fts: packages lakeql's own
venv cannot hold) and read the JSON rows it prints last. Shared by compare_vectors.py and
compare_ngrams.py; the side venvs are described in benchmarks/results/compare.md."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def run_worker(venv: Path, script: str, worker: str, argv: list[str]) -> tuple[list[dict] | None, str]:
    """(rows the worker printed as its last line, "") or (None, why it was skipped)."""
    py = venv / "bin" / "python"
    if not py.exists():
        return None, f"skipped: {py} does not exist (build the side venv: benchmarks/results/compare.md)"
    res = subprocess.run([str(py), str(Path(script).resolve()), "--worker", worker, *argv],
                         capture_output=True, text=True, cwd="/tmp")
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["?"])[-1][:200]
        return None, f"skipped: worker failed: {tail}"
    return json.loads(res.stdout.strip().splitlines()[-1]), ""
