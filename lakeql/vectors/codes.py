"""The code store of one embedded column: packed 1-bit codes in Parquet plus a rescoring tier.

Files in the index folder (``LAKE/.lakeql/embed/<slug>/``)::

    codes.parquet     __rowid BIGINT, code BLOB (ceil(d/8) bytes), [factor, add FLOAT: rabitq],
                      table_name, column_name; one row per non-empty text, in rowid order; readable by
                      any engine (pure-SQL macros in the stock duckdb CLI scan it with bit_hamming)
    rescore.npy       (n, d) int8 (default, per-dimension scales), float16 or float32: the rescoring
                      tier, memory-mapped
    scales.npy        (d,) float32 per-dimension scales of the int8 tier
    binarizer.npz     the binarizer's fitted arrays (medians, centroid, a float16 ITQ rotation from
                      50,000 rows; smaller columns use a random rotation rebuilt from its seed)
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
DEFAULT_TIER = "int8"
ROW_GROUP = 131_072


def tier_space(x: np.ndarray, binarizer: Any = None) -> tuple[np.ndarray, str]:
    """The rows in the space the int8 tier stores: RaBitQ's rotated residual ``(x - c) R`` when the
    binarizer has a centroid and rotation ('rotated'), else the rows themselves ('raw')."""
    c, rot = getattr(binarizer, "centroid", None), getattr(binarizer, "rotation", None)
    if c is not None and rot is not None:
        return (np.asarray(x, np.float32) - c) @ rot, "rotated"
    return np.asarray(x, np.float32), "raw"


def quantize_tier(x: np.ndarray, tier: str, binarizer: Any = None
                  ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The rescoring tier of ``x``: (values, scales, space).

    int8 stores each row's rotated residual (:func:`tier_space`) with one scale per row. Centring removes
    the part every row shares and the rotation spreads each row evenly over the dimensions; for rabitq the
    signs are the code bits, so the byte holds the magnitude only (``uint8``, scale = largest / 255): a
    step ~5x finer than signed int8 with per-dimension scales on raw MiniLM rows (recall@10 on
    near-duplicate clusters 0.946 -> see benchmarks/results/vectors.md). float16/float32 store the rows.
    """
    if tier == "int8":
        r, space = tier_space(x, binarizer)
        if space == "rotated":  # the 1-bit code already holds each sign: 8 bits of magnitude ('unsigned')
            mag = np.abs(r)
            scales = (mag.max(axis=1) / 255.0).astype(np.float32) if len(r) else np.zeros(0, np.float32)
            scales[scales == 0] = 1.0
            return np.clip(np.rint(mag / scales[:, None]), 0, 255).astype(np.uint8), scales, space
        scales = (np.abs(r).max(axis=1) / 127.0).astype(np.float32) if len(r) else np.zeros(0, np.float32)
        scales[scales == 0] = 1.0
        return np.clip(np.rint(r / scales[:, None]), -127, 127).astype(np.int8), scales, space
    if tier == "float16":
        return np.asarray(x).astype(np.float16), None, "raw"
    return np.asarray(x).astype(np.float32), None, "raw"


def write(folder: Path, *, rowids: np.ndarray, codes: np.ndarray, factors: dict[str, np.ndarray],
          tier_values: np.ndarray, scales: np.ndarray | None, space: str, binarizer: Any,
          meta: dict[str, Any], table_name: str, column_name: str) -> None:
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
                                                  "tier_space": space, "binarizer": binarizer.params()},
                                                 indent=1))


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
    def space(self) -> str:
        """How the int8 tier is stored: 'rotated', 'raw' (per-row scales) or 'dims' (per-dimension
        scales of format-1 indexes)."""
        return str(self.meta.get("tier_space", "dims"))

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
            if scales is not None and scales.shape != ((dim,) if meta.get("tier_space", "dims") == "dims"
                                                       else (int(meta["rows"]),)):
                raise ValueError(f"int8 scales have shape {scales.shape}")
            words, factors = kernels.scan_inputs(codes, factors, binz.scan)
            if getattr(binz, "bounded", False):
                factors["errc"] = binz.error_coefficients(factors)
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
        """Rescoring-tier vectors (float32, back in the rows' space) of code positions ``positions``."""
        pos = np.asarray(positions, np.int64)
        v = np.asarray(self.tier[pos], np.float32)
        if self.scales is None:
            return v
        if self.space == "dims":
            return v * self.scales
        v = v * self.scales[pos][:, None]
        if self.space == "rotated":
            return (v * self.signs(pos)) @ self.binarizer.rotation.T + self.binarizer.centroid
        return v

    def signs(self, pos: np.ndarray) -> np.ndarray:
        """+1/-1 per dimension of code positions ``pos`` (the code bits: signs of the rotated residual)."""
        raw = self.words[pos].view(np.uint8)
        return np.unpackbits(raw, axis=1, count=self.dim, bitorder="little").astype(np.float32) * 2 - 1

    def score(self, positions: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Tier inner products ``<x_i, q>`` of code positions (no per-row dequantized copy for int8)."""
        pos = np.asarray(positions, np.int64)
        if self.scales is None or self.space == "dims":
            return self.vectors(pos) @ q
        if self.space == "rotated":
            b = self.binarizer
            q32 = np.asarray(q, np.float32)
            mags = np.asarray(self.tier[pos], np.float32) * self.signs(pos)
            return float(q32 @ b.centroid) + (mags @ (q32 @ b.rotation)) * self.scales[pos]
        return (np.asarray(self.tier[pos], np.float32) @ q) * self.scales[pos]

    def positions_of(self, rowids: np.ndarray) -> np.ndarray:
        """Code positions of table rowids (-1 where the row has no code: NULL or empty text)."""
        pos = np.searchsorted(self.rowids, rowids)
        pos = np.minimum(pos, max(self.n - 1, 0))
        ok = (self.n > 0) & (self.rowids[pos] == rowids) if self.n else np.zeros(len(rowids), bool)
        return np.where(ok, pos, -1)
