"""The code store of one embedded column: packed 1-bit codes in Parquet plus a rescoring tier.

Files in the index folder (``LAKE/.lakeql/embed/<slug>/``)::

    codes.parquet     __rowid BIGINT, code BLOB (ceil(d/8) bytes), [factor, add FLOAT: rabitq],
                      table_name, column_name; one row per non-empty text, in rowid order; readable by
                      any engine (pure-SQL macros in the stock duckdb CLI scan it with bit_hamming)
    rescore.npy       (n, d) float16 (default) or int8 (per-dimension scales): the rescoring tier, mmapped
    scales.npy        (d,) float32 per-dimension scales of the int8 tier
    binarizer.npz     the binarizer's fitted arrays (medians, centroid, rotation)
    meta.json         model, backend, method and binarizer params, dim, counts, tier, format version

:class:`CodeIndex` loads a folder once (codes into memory as uint64 words, tier memory-mapped) and is
cached per connection; it validates shapes and turns any read failure into :class:`CorruptIndexError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lakeql.errors import CorruptIndexError

FORMAT = 1
TIERS = ("int8", "float16", "float32")
DEFAULT_TIER = "float16"
ROW_GROUP = 131_072


def quantize_tier(x: np.ndarray, tier: str, scales: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The rescoring tier of ``x``: int8 with per-dimension scales (fitted if not given), or a float cast."""
    if tier == "int8":
        if scales is None:
            scales = (np.abs(x).max(axis=0) / 127.0).astype(np.float32) if len(x) else np.ones(
                x.shape[1], np.float32)
            scales[scales == 0] = 1.0
        return np.clip(np.rint(x / scales), -127, 127).astype(np.int8), scales
    if tier == "float16":
        return x.astype(np.float16), None
    return x.astype(np.float32), None


def write(folder: Path, *, rowids: np.ndarray, codes: np.ndarray, factors: dict[str, np.ndarray],
          tier_values: np.ndarray, scales: np.ndarray | None, binarizer: Any, meta: dict[str, Any],
          table_name: str, column_name: str) -> None:
    """Write every file of one code store into ``folder`` (a fresh temp folder of ``atomic_dir``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, nbytes = codes.shape
    code_arr = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(nbytes), n, [None, pa.py_buffer(np.ascontiguousarray(codes).tobytes())])
    cols: dict[str, Any] = {"__rowid": pa.array(rowids.astype(np.int64)),
                            "code": code_arr.cast(pa.binary())}
    for name, arr in factors.items():
        cols[name] = pa.array(arr.astype(np.float32))
    cols["table_name"] = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [table_name])
    cols["column_name"] = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [column_name])
    # Sequential rowids delta-encode to ~1 bit/row and the float factors byte-split: measured 53 vs 59
    # bytes/row for (rowid, 48-byte code, factor) against the default dictionary/plain encodings.
    encodings = {"__rowid": "DELTA_BINARY_PACKED", "code": "PLAIN"}
    encodings.update({name: "BYTE_STREAM_SPLIT" for name in factors})
    pq.write_table(pa.table(cols), folder / "codes.parquet", compression="zstd",
                   row_group_size=ROW_GROUP, use_dictionary=["table_name", "column_name"],
                   column_encoding=encodings)
    np.save(folder / "rescore.npy", tier_values)
    if scales is not None:
        np.save(folder / "scales.npy", scales.astype(np.float32))
    np.savez(folder / "binarizer.npz", **binarizer.arrays())
    (folder / "meta.json").write_text(json.dumps({**meta, "format": FORMAT, "rows": int(n),
                                                  "binarizer": binarizer.params()}, indent=1))


@dataclass
class CodeIndex:
    """One loaded code store: what a search needs, loaded once per connection."""

    path: Path
    meta: dict[str, Any]
    rowids: np.ndarray  # (n,) int64, ascending
    words: np.ndarray  # (n, w) uint64 packed codes
    factors: dict[str, np.ndarray]
    tier: np.ndarray  # (n, d) int8/float16/float32, memory-mapped
    scales: np.ndarray | None
    binarizer: Any
    _pos: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def n(self) -> int:
        return int(self.rowids.shape[0])

    @classmethod
    def load(cls, folder: Path, label: str) -> CodeIndex:
        """Load and validate a code store; ``label`` ('table.column') names it in errors."""
        import pyarrow.parquet as pq

        from lakeql.vectors import binarizers, kernels

        try:
            meta = json.loads((folder / "meta.json").read_text())
            tbl = pq.read_table(folder / "codes.parquet", columns=None)
            rowids = tbl.column("__rowid").to_numpy().astype(np.int64, copy=False)
            dim = int(meta["dim"])
            nbytes = -(-dim // 8)
            code_col = tbl.column("code").combine_chunks()
            buf = code_col.buffers()[2]
            offsets = np.frombuffer(code_col.buffers()[1], np.int32)[code_col.offset:
                                                                     code_col.offset + len(code_col) + 1]
            raw = np.frombuffer(buf, np.uint8)[offsets[0]:offsets[-1]] if len(code_col) else np.zeros(
                0, np.uint8)
            if raw.size != len(code_col) * nbytes:
                raise ValueError(f"codes are not all {nbytes} bytes")
            codes = raw.reshape(len(code_col), nbytes)
            factors = {name: tbl.column(name).to_numpy().astype(np.float32)
                       for name in ("factor", "add") if name in tbl.column_names}
            with np.load(folder / "binarizer.npz") as z:
                arrays = {k: z[k] for k in z.files}
            binz = binarizers.from_state(meta["binarizer"], arrays)
            tier = np.load(folder / "rescore.npy", mmap_mode="r")
            scales = np.load(folder / "scales.npy") if meta.get("tier") == "int8" else None
            words, factors = kernels.scan_inputs(codes, factors, binz.scan)
            if tier.shape != (len(rowids), dim) or int(meta["rows"]) != len(rowids):
                raise ValueError(f"rescoring tier has shape {tier.shape}, expected ({len(rowids)}, {dim})")
        except CorruptIndexError:
            raise
        except Exception as exc:  # noqa: BLE001 - any read/shape failure means a corrupt index
            raise CorruptIndexError(
                f"the embed index of {label} is corrupt ({type(exc).__name__}: {exc}): rebuild it with "
                f"'lakeql index LAKE --embed {label}'") from None
        return cls(folder, meta, rowids, words, factors, tier, scales, binz)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """Rescoring-tier vectors (float32) of code positions ``positions``."""
        v = np.asarray(self.tier[np.asarray(positions, np.int64)], np.float32)
        return v * self.scales if self.scales is not None else v

    def positions_of(self, rowids: np.ndarray) -> np.ndarray:
        """Code positions of table rowids (-1 where the row has no code: NULL or empty text)."""
        pos = np.searchsorted(self.rowids, rowids)
        pos = np.minimum(pos, max(self.n - 1, 0))
        ok = (self.n > 0) & (self.rowids[pos] == rowids) if self.n else np.zeros(len(rowids), bool)
        return np.where(ok, pos, -1)
