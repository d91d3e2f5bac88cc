"""The code store of one embedded column: per-file shards of packed 1-bit codes plus a rescoring tier.

Files in the index folder (``LAKE/.lakeql/embed/<slug>/``, format 2)::

    shards.parquet    one row per shard, in table order: shard (id, :func:`lakeql.shards.shard_id` of
                      its file), file, offset (the file's first ``__rowid`` now), codes, rows
    shards/<shard>/   one folder per data file (see :func:`write_shard`):
        codes.parquet     file_row BIGINT (row number in the file), code BLOB (ceil(d/8) bytes),
                          [factor, add FLOAT: rabitq], table_name, column_name; one row per non-empty
                          text, in row order; readable by any engine (``embed_codes`` adds the offset)
        rescore.npy       (n, d) uint8/int8 (int8 tier), float16 or float32: the rescoring tier,
                          memory-mapped
        scales.npy        (n,) float32 per-row scales of the int8 tier
        refine.npy        (n, b * ceil(d/8)) uint8, only with ``refine_bits`` b > 0 (rotated int8 tier): b
                          bit planes refining each magnitude's rounding (:func:`refine_planes`), read by
                          the final step of a search for the few rows near the ``k``-th score
        bm25.npz, bm25_terms.parquet   term counts of the shard's rows (``--embed-bm25``)
    binarizer.npz     the binarizer's fitted arrays (medians, centroid, a float16 ITQ rotation from
                      50,000 rows; smaller columns use a random rotation rebuilt from its seed), fitted
                      by a full build and kept by ``--refresh`` so that kept shards stay valid
    bm25/             BM25 postings over the union of the shards (:mod:`lakeql.vectors.bm25`)
    meta.json         model, backend, method and binarizer params, dim, counts, tier, format version,
                      refine_bits (absent: 0; indexes written before it exist keep working)

``lakeql index --refresh`` writes shards only for new or changed files and hard-links the others into
the new folder. :class:`CodeIndex` loads a folder once (every shard's codes concatenated into memory as
uint64 words, the tiers memory-mapped per shard) and is cached per connection; it validates shapes and
turns any read failure into :class:`CorruptIndexError`.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lakeql import parquet_io
from lakeql.errors import CorruptIndexError

FORMAT = 2
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


#: most refinement bits a rotated int8 tier may carry (4 make it a 12-bit tier)
MAX_REFINE_BITS = 4


def quantize_tier(
    x: np.ndarray, tier: str, binarizer: Any = None
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The rescoring tier of ``x``: (values, scales, space).

    int8 stores each row's rotated residual (:func:`tier_space`) with one scale per row. Centring removes
    the part every row shares and the rotation spreads each row evenly over the dimensions; for rabitq the
    signs are the code bits, so the byte holds the magnitude only (``uint8``, step = largest / 255, the
    stored scale matching the row's length: :func:`_norm_matched_magnitudes`): a step ~5x finer than
    signed int8 with per-dimension scales on raw MiniLM rows (recall@10 on near-duplicate clusters
    0.946 -> see benchmarks/results/vectors.md). float16/float32 store the rows.
    """
    if tier == "int8":
        r, space = tier_space(x, binarizer)
        if space == "rotated":  # the 1-bit code already holds each sign: 8 bits of magnitude ('unsigned')
            return (*_norm_matched_magnitudes(r), space)
        scales = (np.abs(r).max(axis=1) / 127.0).astype(np.float32) if len(r) else np.zeros(0, np.float32)
        scales[scales == 0] = 1.0
        return np.clip(np.rint(r / scales[:, None]), -127, 127).astype(np.int8), scales, space
    if tier == "float16":
        return np.asarray(x).astype(np.float16), None, "raw"
    return np.asarray(x).astype(np.float32), None, "raw"


def encode_tier(
    x: np.ndarray, tier: str, binarizer: Any = None, refine_bits: int = 0
) -> tuple[np.ndarray, np.ndarray | None, str, np.ndarray | None]:
    """:func:`quantize_tier` plus, with ``refine_bits`` > 0, the tier's refinement planes
    (:func:`refine_planes`; only for the rotated int8 tier, else an error)."""
    if not refine_bits:
        return (*quantize_tier(x, tier, binarizer), None)
    r, space = tier_space(x, binarizer)
    if tier != "int8" or space != "rotated":
        raise ValueError(
            "refinement bits need the int8 tier of the rabitq method (a float tier is exact enough already)"
        )
    values, scales = _norm_matched_magnitudes(r)
    return values, scales, space, refine_planes(r, refine_bits)


def refine_planes(r: np.ndarray, bits: int, block: int = 65_536) -> np.ndarray:
    """``bits`` bit planes refining the uint8 magnitudes of rotated residuals ``r`` (the int8 tier's
    :func:`tier_space`, :func:`_norm_matched_magnitudes`): per dimension
    the rounding left by the tier (``|r| / step - level``, in [-1/2, 1/2]) quantized to ``2**bits`` equal
    cells, the cell number's bits most significant first, each plane packed like the codes
    (little-endian, ``ceil(d/8)`` bytes). The tier plus ``b`` planes is a ``8 + b``-bit magnitude, and the
    first ``b' < b`` planes are the ``b'``-bit refinement (embedded). Shape (n, bits * ceil(d/8))."""
    if not 1 <= bits <= MAX_REFINE_BITS:
        raise ValueError(f"refine bits must be 1..{MAX_REFINE_BITS}, got {bits}")
    n, d = r.shape
    nbytes = -(-d // 8)
    out = np.empty((n, bits * nbytes), np.uint8)
    for s in range(0, n, block):
        mag = np.abs(r[s : s + block])
        step = mag.max(axis=1) / 255.0
        step[step == 0] = 1.0
        f = mag / step[:, None]
        lev = np.clip(np.rint(f), 0, 255)
        cell = np.clip(np.floor((f - lev + 0.5) * (1 << bits)), 0, (1 << bits) - 1).astype(np.uint8)
        for b in range(bits):
            plane = (cell >> (bits - 1 - b)) & 1
            out[s : s + block, b * nbytes : (b + 1) * nbytes] = np.packbits(plane, axis=1, bitorder="little")
    return out


def _norm_matched_magnitudes(r: np.ndarray, block: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 magnitudes, per-row scales) of rotated residuals ``r``: step = the row's largest / 255, and
    the stored scale makes the dequantized row as long as the row (``|r| / |levels|``, not the step).

    The rounding errors then cancel along the row's own direction, the one that shifts its score the
    most: on 1M near-duplicate MiniLM rows (neighbours 0.0002 apart) recall@10 of the tier 0.979 -> 0.985
    against exact float (benchmarks/results/recall1m.md), same bytes, same reader."""
    out = np.empty(r.shape, np.uint8)
    scales = np.ones(len(r), np.float32)
    for s in range(0, len(r), block):  # blocks: a float copy of 1M x 384 rows would be 1.5 GB
        mag = np.abs(r[s : s + block])
        step = mag.max(axis=1) / 255.0
        step[step == 0] = 1.0
        lev = np.clip(np.rint(mag / step[:, None]), 0, 255)
        out[s : s + block] = lev
        norm_lev = np.sqrt(np.einsum("ij,ij->i", lev, lev))
        ok = norm_lev > 0
        scales[s : s + block][ok] = np.sqrt(np.einsum("ij,ij->i", mag, mag))[ok] / norm_lev[ok]
    return out, scales


def write_shard(
    folder: Path,
    *,
    file_rows: np.ndarray,
    codes: np.ndarray,
    factors: dict[str, np.ndarray],
    tier_values: np.ndarray,
    scales: np.ndarray | None,
    table_name: str,
    column_name: str,
    refine: np.ndarray | None = None,
) -> None:
    """Write the files of one shard (the codes of one data file's rows) into ``folder``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    n, nbytes = codes.shape
    code_arr = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(nbytes), n, [None, pa.py_buffer(np.ascontiguousarray(codes).tobytes())]
    )
    cols: dict[str, Any] = {
        "file_row": pa.array(file_rows.astype(np.int64)),
        "code": code_arr.cast(pa.binary()),
    }
    for name, arr in factors.items():
        cols[name] = pa.array(arr.astype(np.float32))
    cols["table_name"] = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [table_name])
    cols["column_name"] = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [column_name])
    # Sequential row numbers delta-encode to ~1 bit/row and the float factors byte-split: measured 53 vs 59
    # bytes/row for (rowid, 48-byte code, factor) against the default dictionary/plain encodings.
    encodings = {"file_row": "DELTA_BINARY_PACKED", "code": "PLAIN"}
    encodings.update({name: "BYTE_STREAM_SPLIT" for name in factors})
    pq.write_table(
        pa.table(cols),
        folder / "codes.parquet",
        compression="zstd",
        row_group_size=ROW_GROUP,
        use_dictionary=["table_name", "column_name"],
        column_encoding=encodings,
    )
    np.save(folder / "rescore.npy", tier_values)
    if scales is not None:
        np.save(folder / "scales.npy", scales.astype(np.float32))
    if refine is not None:
        np.save(folder / "refine.npy", refine)


def write_shard_list(folder: Path, shards: list[dict[str, Any]]) -> None:
    """``shards.parquet``: (shard, file, offset, codes, rows) per shard, in table order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table(
            {
                "shard": pa.array([s["shard"] for s in shards], pa.string()),
                "file": pa.array([s["file"] for s in shards], pa.string()),
                "offset": pa.array([s["offset"] for s in shards], pa.int64()),
                "codes": pa.array([s["codes"] for s in shards], pa.int64()),
                "rows": pa.array([s["rows"] for s in shards], pa.int64()),
            }
        ),
        folder / "shards.parquet",
    )


def read_shard_list(folder: Path) -> list[dict[str, Any]]:
    return parquet_io.read_table(folder / "shards.parquet").to_pylist()


def write_meta(folder: Path, meta: dict[str, Any], rows: int, space: str, binarizer: Any) -> None:
    (folder / "meta.json").write_text(
        json.dumps(
            {
                **meta,
                "format": FORMAT,
                "rows": int(rows),
                "tier_space": space,
                "binarizer": binarizer.params(),
            },
            indent=1,
        )
    )


def old_format_error(folder: Path, label: str) -> CorruptIndexError | None:
    """The error for an index folder written by an older lakeql (one code file, no shards), or None."""
    if (folder / "shards.parquet").exists() or not (folder / "codes.parquet").exists():
        return None
    return CorruptIndexError(
        f"the embed index of {label} was built by an older lakeql (format 1, without "
        f"per-file shards): rebuild it with 'lakeql index LAKE --embed {label}'"
    )


class RowReader:
    """A per-row array read a few rows at a time (``x[positions]`` -> an ndarray), never as a whole: it has
    ``shape`` and ``dtype`` and is not wrapped by ``np.asarray``. Readers of a tier or refinement planes
    check for this base class (:class:`ShardedRows`, the ANN stage's
    :class:`~lakeql.vectors.ann.ListOrderRows`)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, positions: Any) -> np.ndarray:
        raise NotImplementedError


class ShardedRows(RowReader):
    """Row-indexable view of the shards' memory-mapped tiers as one ``(n, d)`` array (``x[positions]``)."""

    def __init__(self, parts: list[np.ndarray], dim: int, dtype: Any) -> None:
        self.parts = parts
        sizes = np.array([len(p) for p in parts], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)])
        self.shape = (int(self.starts[-1]), dim)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, positions: Any) -> np.ndarray:
        pos = np.asarray(positions, np.int64)
        scalar = pos.ndim == 0
        pos = pos.reshape(-1)
        out = np.empty((len(pos), self.shape[1]), self.dtype)
        if len(pos):
            if pos.min() < 0 or pos.max() >= self.shape[0]:
                raise IndexError("code position out of range")
            which = np.searchsorted(self.starts, pos, side="right") - 1
            for s in np.unique(which):  # one fancy-index read per shard touched
                sel = which == s
                out[sel] = self.parts[s][pos[sel] - self.starts[s]]
        return out[0] if scalar else out


_BLOCKED_LOCK = threading.Lock()
BLOCKED_MAX_MB = 2048


def blocked_budget() -> int:
    """``LAKEQL_BLOCKED_MAX_MB`` (default :data:`BLOCKED_MAX_MB`) in bytes: the largest blocked code layout
    :meth:`CodeIndex.blocked` builds; a value that is not a number is the default."""
    raw = os.environ.get("LAKEQL_BLOCKED_MAX_MB", "").strip()
    try:
        mb = float(raw) if raw else BLOCKED_MAX_MB
    except ValueError:
        mb = BLOCKED_MAX_MB
    if mb != mb:  # nan
        mb = BLOCKED_MAX_MB
    return int(min(max(mb, 0.0), 2.0**40) * 2**20)  # inf: no cap


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
    refine: Any = None  # (n, bits * ceil(d/8)) uint8 refinement planes, memory-mapped, or None
    _blocked: Any = None  # fullscan.FullLayout, built by the first exhaustive bounded scan
    #: what a connection's cache charges for this object (:mod:`lakeql.indexcache`): 0 = the index
    #: folder's size; the ANN lists' mapped rows (:func:`lakeql.vectors.ann.open_mapped`) set what they
    #: map and hold, a fraction of the folder
    nbytes: int = 0

    def blocked(self) -> Any:
        """The codes' :func:`~lakeql.vectors.fullscan.full_layout` (the exhaustive bounded scan's, 96 bytes
        a row at 384 dimensions), built on first use and kept with the index; None when the scan
        is not the bounded one (no ``errc`` factors) or when the layout would take more than
        ``LAKEQL_BLOCKED_MAX_MB`` (default 2048; 0: never built): the row scan then runs, same results,
        about 2x the CPU (10M rows: 0.9 GB of layout, 2 s CPU to build)."""
        if self._blocked is None and "errc" in self.factors and self.blocked_bytes() <= blocked_budget():
            from lakeql.vectors import fullscan

            with _BLOCKED_LOCK:  # one build when several DuckDB threads search at once
                if self._blocked is None:
                    self._blocked = fullscan.full_layout(self.words, self.factors)
        return self._blocked

    def blocked_bytes(self) -> int:
        """Bytes :meth:`blocked` would take (:func:`lakeql.vectors.fullscan.layout_bytes`): codes padded
        to whole blocks, 4 float32 and 4 float64 a row."""
        from lakeql.vectors import fullscan

        return fullscan.layout_bytes(*self.words.shape)

    @property
    def refine_bits(self) -> int:
        """Refinement bit planes stored beside the int8 tier (0: none, e.g. an index built before them)."""
        return int(self.meta.get("refine_bits", 0)) if self.refine is not None else 0

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
        from lakeql.vectors import binarizers, kernels

        old = old_format_error(folder, label)
        if old is not None:
            raise old
        try:
            meta = json.loads((folder / "meta.json").read_text())
            dim = int(meta["dim"])
            nbytes = -(-dim // 8)
            shards = read_shard_list(folder)
            id_parts, code_parts, factor_parts, tiers, scale_parts, refines = [], [], [], [], [], []
            refine_bits = int(meta.get("refine_bits", 0))
            if refine_bits and (meta.get("tier") != "int8" or meta.get("tier_space") != "rotated"):
                raise ValueError(f"refine_bits {refine_bits} without a rotated int8 tier")
            for sh in shards:
                sub = folder / "shards" / str(sh["shard"])
                tbl = parquet_io.read_table(sub / "codes.parquet")
                if tbl.num_rows != int(sh["codes"]):
                    raise ValueError(f"shard {sh['shard']} has {tbl.num_rows} codes, {sh['codes']} listed")
                id_parts.append(tbl.column("file_row").to_numpy().astype(np.int64) + int(sh["offset"]))
                code_parts.append(_code_bytes(tbl.column("code").combine_chunks(), nbytes))
                factor_parts.append(
                    {
                        name: tbl.column(name).to_numpy().astype(np.float32)
                        for name in ("factor", "add")
                        if name in tbl.column_names
                    }
                )
                tier_part = np.load(sub / "rescore.npy", mmap_mode="r")
                if tier_part.shape != (tbl.num_rows, dim):
                    raise ValueError(f"rescoring tier of shard {sh['shard']} has shape {tier_part.shape}")
                tiers.append(tier_part)
                if meta.get("tier") == "int8":
                    scale_parts.append(np.load(sub / "scales.npy"))
                    if scale_parts[-1].shape != (tbl.num_rows,):
                        raise ValueError(
                            f"int8 scales of shard {sh['shard']} have shape {scale_parts[-1].shape}"
                        )
                if refine_bits:
                    refines.append(np.load(sub / "refine.npy", mmap_mode="r"))
                    if (
                        refines[-1].shape != (tbl.num_rows, refine_bits * nbytes)
                        or refines[-1].dtype != np.uint8
                    ):
                        raise ValueError(
                            f"refinement planes of shard {sh['shard']} have shape {refines[-1].shape}"
                        )
            rowids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
            if len(rowids) > 1 and not np.all(rowids[1:] > rowids[:-1]):
                raise ValueError("shard rows overlap or are out of order")
            codes = np.concatenate(code_parts) if code_parts else np.zeros((0, nbytes), np.uint8)
            names = factor_parts[0].keys() if factor_parts else ()
            factors = {name: np.concatenate([f[name] for f in factor_parts]) for name in names}
            with np.load(folder / "binarizer.npz") as z:
                arrays = {k: z[k] for k in z.files}
            binz = binarizers.from_state(meta["binarizer"], arrays)
            if binz.dim != dim:  # the kernels index the query's rotation by the tier's dimension
                raise ValueError(f"binarizer of dimension {binz.dim}, the index {dim}")
            tier_dtype = tiers[0].dtype if tiers else np.float32
            tier = tiers[0] if len(tiers) == 1 else ShardedRows(tiers, dim, tier_dtype)
            refine = (
                None
                if not refines
                else refines[0]
                if len(refines) == 1
                else ShardedRows(refines, refine_bits * nbytes, np.uint8)
            )
            scales = (
                (np.concatenate(scale_parts) if scale_parts else np.zeros(0, np.float32))
                if meta.get("tier") == "int8"
                else None
            )
            words, factors = kernels.scan_inputs(codes, factors, binz.scan)
            if getattr(binz, "bounded", False):
                factors["errc"] = binz.error_coefficients(factors)
            if int(meta["rows"]) != len(rowids):
                raise ValueError(f"{len(rowids)} codes in the shards, {meta['rows']} in meta.json")
            check_finite(label, factors, scales)
        except CorruptIndexError:
            raise
        except Exception as exc:  # noqa: BLE001 - any read/shape failure means a corrupt index
            raise CorruptIndexError(
                f"the embed index of {label} is corrupt ({type(exc).__name__}: {exc}): rebuild it with "
                f"'lakeql index LAKE --embed {label}'"
            ) from None
        return cls(folder, meta, rowids, words, factors, tier, scales, binz, refine=refine)

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
            out = self.vectors(pos) @ q
            if self.tier.dtype.kind == "f" and not np.isfinite(out).all():  # the rows just read: a float
                # tier is mapped, never checked whole (an int8 tier's codes are always numbers)
                raise not_a_number(f"{self.meta.get('table')}.{self.meta.get('column')}", "rescoring tier",
                                   pos[~np.isfinite(out)][:1])
            return out
        if self.space == "rotated":
            b = self.binarizer
            q32 = np.asarray(q, np.float32)
            if self.tier.dtype == np.uint8 and self.words.flags.c_contiguous:
                return self._score_fused(pos, q32)
            mags = np.asarray(self.tier[pos], np.float32) * self.signs(pos)
            return float(q32 @ b.centroid) + (mags @ (q32 @ b.rotation)) * self.scales[pos]
        return (np.asarray(self.tier[pos], np.float32) @ q) * self.scales[pos]

    def scorer(self, q: np.ndarray) -> Any:
        """``positions -> self.score(positions, q)`` for many calls with one query (the adaptive search
        rescores in rounds): the uint8 tier's query products (rotation, centroid) are computed once."""
        if (
            self.scales is not None
            and self.space == "rotated"
            and self.tier.dtype == np.uint8
            and self.words.flags.c_contiguous
        ):
            prepared = self._query_products(np.asarray(q, np.float32))
            return lambda positions: self._score_fused(np.asarray(positions, np.int64), None, prepared)
        return lambda positions: self.score(positions, q)

    def kernel_scorer(self, q: np.ndarray) -> Any:
        """:meth:`scorer` for positions known ascending and in range (the fused rounds'), calling the
        uint8 kernel directly: the very call :meth:`_score_fused` makes (same compiled kernel, same
        arguments, so the same bits) without its per-call checks; None when :meth:`score` takes another
        path (float or per-dimension tiers, a tier read through a row reader)."""
        if (
            self.scales is None
            or self.space != "rotated"
            or self.tier.dtype != np.uint8
            or not self.words.flags.c_contiguous
            or isinstance(self.tier, RowReader)
        ):
            return None
        from lakeql.vectors import kernels

        base, qr = self._query_products(np.asarray(q, np.float32))
        tier, codes, scales = np.asarray(self.tier), self.words.view(np.uint8), self.scales
        return lambda pos: kernels.rescore_signed_u8(tier, pos, codes, pos, scales, qr, base)

    def refined_score(self, positions: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Inner products ``<x_i, q>`` from the int8 tier plus its refinement planes (an ``8 + b``-bit
        magnitude per dimension, :func:`refine_planes`): for the few rows a search is unsure of. The
        per-row scale is re-matched to the row's length (``scale |levels| / |refined levels|``, the
        length the stored scale gives the tier's levels). Without planes: :meth:`score`."""
        pos = np.asarray(positions, np.int64)
        bits = self.refine_bits
        if not bits or not len(pos):
            return self.score(pos, q)
        from lakeql.vectors import kernels

        b = self.binarizer
        q32 = np.asarray(q, np.float32)
        tier = self.tier if isinstance(self.tier, RowReader) else np.asarray(self.tier)  # no memmap wrapper
        planes = self.refine if isinstance(self.refine, RowReader) else np.asarray(self.refine)
        lev = tier[pos].astype(np.float32)
        bitv = np.unpackbits(
            planes[pos].reshape(len(pos), bits, -1), axis=2, count=self.dim, bitorder="little"
        )
        weights = (1.0 / (1 << np.arange(1, bits + 1))).astype(np.float32)  # plane i: 2**-(i+1) of a step
        fine = lev + (np.einsum("mbd,b->md", bitv, weights, dtype=np.float32) + (0.5 / (1 << bits) - 0.5))
        len_lev = np.sqrt(np.einsum("ij,ij->i", lev, lev))
        len_fine = np.sqrt(np.einsum("ij,ij->i", fine, fine))
        scale = self.scales[pos] * np.divide(len_lev, len_fine, out=np.ones_like(len_lev), where=len_fine > 0)
        qr = kernels.vecmat(q32, b.rotation)  # not BLAS: see kernels.matvec
        return (float(q32 @ b.centroid) + ((fine * self.signs(pos)) @ qr) * scale).astype(np.float32)

    def _query_products(self, q32: np.ndarray) -> tuple[np.float32, np.ndarray]:
        """(``<q, c>``, the query's rotation ``q R``) for the uint8 tier's scores."""
        from lakeql.vectors import kernels

        b = self.binarizer
        return np.float32(q32 @ b.centroid), kernels.vecmat(q32, b.rotation)  # not BLAS: see kernels.matvec

    def _score_fused(
        self, pos: np.ndarray, q32: np.ndarray | None, prepared: tuple[np.float32, np.ndarray] | None = None
    ) -> np.ndarray:
        """:meth:`score` of the uint8 tier in one numba pass per shard (:func:`kernels.rescore_signed_u8`):
        no float copy of the gathered rows, no unpacked sign matrix. ``prepared``: the query's
        :meth:`_query_products` (else computed from ``q32``)."""
        from lakeql.vectors import kernels

        base, qr = self._query_products(q32) if prepared is None else prepared
        codes = self.words.view(np.uint8)
        if len(pos) and (pos.min() < 0 or pos.max() >= self.n):
            raise IndexError("code position out of range")
        order = None
        if len(pos) > 1 and np.any(pos[1:] < pos[:-1]):  # ascending rows: fewer TLB and cache misses
            order = np.argsort(pos)  # any sort: equal positions have equal scores (vectorized, unstable)
            pos = pos[order]
        out = np.empty(len(pos), np.float32)
        if not isinstance(self.tier, RowReader):
            out = kernels.rescore_signed_u8(np.asarray(self.tier), pos, codes, pos, self.scales, qr, base)
            return out if order is None else _unsort(out, order)
        if not isinstance(self.tier, ShardedRows):  # another row reader: its rows gathered, then one pass
            rows = np.ascontiguousarray(self.tier[pos])
            out = kernels.rescore_signed_u8(rows, np.arange(len(pos)), codes, pos, self.scales, qr, base)
            return out if order is None else _unsort(out, order)
        which = np.searchsorted(self.tier.starts, pos, side="right") - 1  # ascending, as pos is
        shards, cuts = np.unique(which, return_index=True)
        for s, lo, hi in zip(shards, cuts, [*cuts[1:], len(pos)], strict=True):  # a call per shard touched
            sel = pos[lo:hi]
            part, local = np.asarray(self.tier.parts[s]), sel - self.tier.starts[s]
            out[lo:hi] = kernels.rescore_signed_u8(part, local, codes, sel, self.scales, qr, base)
        return out if order is None else _unsort(out, order)

    def positions_of(self, rowids: np.ndarray) -> np.ndarray:
        """Code positions of table rowids (-1 where the row has no code: NULL or empty text)."""
        pos = np.searchsorted(self.rowids, rowids)
        pos = np.minimum(pos, max(self.n - 1, 0))
        ok = (self.n > 0) & (self.rowids[pos] == rowids) if self.n else np.zeros(len(rowids), bool)
        return np.where(ok, pos, -1)


def not_a_number(label: str, what: str, where: np.ndarray) -> CorruptIndexError:
    """The error for a NaN/inf in the ``what`` of a loaded code store (code positions ``where``): the
    wording of the mapped ANN lists' check (:func:`lakeql.vectors.ann.check_probed_finite`)."""
    at = f" of code row {int(where[0]):,}" if len(where) else ""
    return CorruptIndexError(f"the embed index of {label} is corrupt (a value that is not a number: {what}"
                             f"{at}): rebuild it with 'lakeql index LAKE --embed {label}'")


def check_finite(label: str, factors: dict[str, np.ndarray], scales: np.ndarray | None) -> None:
    """Refuse a loaded code store whose scan factors or int8 rescoring scales hold a NaN or inf (the
    builder writes finite values only; the checksums vouch for the bytes, not for what was written): the
    mapped ANN path refuses them per list (leftovers6, review32); here the arrays are in memory already,
    so one pass at load (about 1 ms per million rows and array), nothing per query."""
    for name, v in factors.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise not_a_number(label, f"scan factors {name!r}", np.flatnonzero(~np.isfinite(v))[:1])
    if scales is not None and not np.isfinite(scales).all():
        raise not_a_number(label, "int8 rescoring scales", np.flatnonzero(~np.isfinite(scales))[:1])


def _unsort(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values`` computed for ``positions[order]`` back in the order of ``positions``."""
    out = np.empty_like(values)
    out[order] = values
    return out


def _code_bytes(code_col: Any, nbytes: int) -> np.ndarray:
    """(n, nbytes) uint8 view of an Arrow binary column of equally long codes."""
    buf = code_col.buffers()[2]
    lo = code_col.offset
    offsets = np.frombuffer(code_col.buffers()[1], np.int32)[lo : lo + len(code_col) + 1]
    raw = np.frombuffer(buf, np.uint8)[offsets[0] : offsets[-1]] if len(code_col) else np.zeros(0, np.uint8)
    if raw.size != len(code_col) * nbytes:
        raise ValueError(f"codes are not all {nbytes} bytes")
    return raw.reshape(len(code_col), nbytes)
