"""numpy arrays and scipy sparse matrices stored zstd-compressed (``.zst`` files), for index folders.

An index's integer arrays are mostly sorted hashes and small ids: stored as deltas (unsigned, wrapping,
so exact for any order; signed integers through their unsigned view) with their bytes shuffled (every
element's byte 0, then byte 1, ...), zstd packs them to a fraction of the ``.npy`` size. Reading
decompresses into memory (no memory map).

File layout: ``LQZ1``, a little-endian uint32 header length, a JSON header (``dtype``, ``shape``,
``delta``, ``shuffle``, ``raw`` bytes), then one zstd frame (pyarrow's codec: no extra dependency).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

MAGIC = b"LQZ1"
LEVEL = 9


def _encode(arr, delta: bool):  # -> (array, payload bytes, delta used, shuffled)
    import numpy as np

    a = np.ascontiguousarray(arr)
    flat = a.reshape(-1)
    delta = bool(delta and flat.dtype.kind in "iu" and len(flat) > 1)
    if delta:  # differences of the unsigned view: they wrap, and the running sum undoes them exactly
        u = flat.view(f"u{flat.dtype.itemsize}")
        flat = np.diff(u, prepend=u.dtype.type(0))
    size = flat.dtype.itemsize
    raw = flat.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else flat.tobytes()
    return a, raw, delta, size > 1


def pack(arr, delta: bool = False) -> bytes:
    """The ``.zst`` bytes of ``arr`` (``delta``: store unsigned integers as differences)."""
    import pyarrow as pa

    a, raw, delta, shuffle = _encode(arr, delta)
    head = json.dumps({"dtype": a.dtype.str, "shape": list(a.shape), "delta": delta, "shuffle": shuffle,
                       "raw": len(raw)}).encode()
    body = pa.Codec("zstd", compression_level=LEVEL).compress(raw, asbytes=True)
    return MAGIC + struct.pack("<I", len(head)) + head + body


def unpack(data: bytes):
    """The array of :func:`pack`'s bytes (``ValueError`` when they are not such bytes)."""
    import numpy as np
    import pyarrow as pa

    if data[:4] != MAGIC:
        raise ValueError("not a lakeql .zst array")
    (n,) = struct.unpack("<I", data[4:8])
    head: dict[str, Any] = json.loads(data[8:8 + n])
    raw = pa.Codec("zstd").decompress(data[8 + n:], decompressed_size=head["raw"], asbytes=True)
    dt = np.dtype(head["dtype"])
    count = head["raw"] // dt.itemsize
    if head["shuffle"]:
        flat = np.frombuffer(raw, np.uint8).reshape(dt.itemsize, count).T.copy().view(dt).reshape(-1)
    else:
        flat = np.frombuffer(raw, dt).copy()
    if head["delta"]:
        u = np.dtype(f"u{dt.itemsize}")
        flat = np.cumsum(flat.view(u), dtype=u).view(dt)
    return flat.reshape(head["shape"])


def save(path: Path, arr, delta: bool = False) -> None:
    Path(path).write_bytes(pack(arr, delta))


def load(path: Path):
    return unpack(Path(path).read_bytes())


def save_sparse(path: Path, m) -> None:
    """A scipy CSR/CSC matrix as one file: its format, shape and three packed arrays."""
    import numpy as np

    parts = [pack(np.asarray(m.data)), pack(np.asarray(m.indices), delta=True),
             pack(np.asarray(m.indptr), delta=True)]
    head = json.dumps({"format": m.format, "shape": list(m.shape), "sizes": [len(p) for p in parts]}).encode()
    Path(path).write_bytes(MAGIC + struct.pack("<I", len(head)) + head + b"".join(parts))


def load_sparse(path: Path):
    import scipy.sparse as sp

    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError("not a lakeql .zst matrix")
    (n,) = struct.unpack("<I", data[4:8])
    head = json.loads(data[8:8 + n])
    off, arrs = 8 + n, []
    for size in head["sizes"]:
        arrs.append(unpack(data[off:off + size]))
        off += size
    cls = sp.csr_matrix if head["format"] == "csr" else sp.csc_matrix
    return cls(tuple(arrs), shape=tuple(head["shape"]))
