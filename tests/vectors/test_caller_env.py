"""A library call that loads an encoder leaves the caller's process settings alone: lakeql loads its
models offline by argument (``local_files_only``), not by setting ``HF_HUB_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` in ``os.environ`` (which huggingface_hub reads once, at import: the caller's own
downloads from the hub would fail for the rest of its process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lakeql

CODE = """
import json, os
from lakeql import embedding
vecs = [embedding.load_model(None, b).encode(["read a csv file"]).shape for b in ("torch", "onnx")]
import huggingface_hub.constants as hub  # (imported by the load: its settings as the load left them)
print(json.dumps({"env": {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")},
                  "hub_offline": bool(hub.HF_HUB_OFFLINE), "shapes": [list(v) for v in vecs]}))
"""


def test_loading_an_encoder_does_not_turn_the_callers_process_offline():
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(lakeql.__file__).parents[1]), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["shapes"] == [[1, 384], [1, 384]]  # both encoders loaded (offline, from the local folder)
    assert got["env"] == {"HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None}
    assert got["hub_offline"] is False
