"""Optional ANN first stage (``--embed-ann``): a binary IVF over the codes, for tables of millions of rows.

Build (:func:`build`, inside the code store's atomic temp folder, so the file appears with the codes or
not at all): the codes' bits as +-1 floats are clustered by k-means (faiss, on a sample of
``TRAIN_PER_LIST`` rows a list, ``NITER`` iterations); every code is assigned to the list whose
binarized centroid is nearest in Hamming distance (faiss ``IndexBinaryFlat``, in chunks). Stored in
``ann.npz``: ``centroids`` (lists, d) float16, ``offsets`` (lists + 1) int64 and ``ids`` (rows) int32 or
int64 code positions grouped by list. With the rescoring tier given (the builder passes it), ``ann_tier.npy``
(:data:`TIER_FILE`) holds a second copy of the tier with its rows in list order (row ``t`` = tier row
``ids[t]``): the rows one query rescores are near-duplicates sitting in a few probed lists, which the copy
keeps in a few short spans instead of scattered over the whole tier (at 10M rows the tier is 3.84 GB and the
~16,000 rows a query rescores cost 8.4 ms scattered vs 3.5 ms contiguous, benchmarks/results/annspeed.md).
It costs the tier's bytes again on disk. Indexes without the file (built before it existed) are searched
as before, through the table-order tier. The builder also writes the rest of what the bounded search reads
in list order (:func:`write_list_rows`: code words, scan factors, rowids, int8 scales; ``ROWS_FILE`` names
them), so that a connection which has not loaded the index answers an unfiltered ANN search from those
memory-mapped files (:func:`open_mapped`), reading the probed lists' spans only: at 10M rows a new
process's first ANN query no longer loads 10M codes and copies them into list order
(benchmarks/results/annfirst.md).

Search (:func:`search`): the lists are ranked by the inner product of their centroid with the query's
rotated residual ``(q - c) R`` (the space the code bits live in; the query stays float, as in the
asymmetric scan), and the rows of the best ``nprobe`` lists go through the usual adaptive search
(:func:`lakeql.vectors.search.search` over a sub-index view). With a pre-filter the probe widens
(doubling ``nprobe``) until at least ``k`` qualifying rows are inside the probed lists, or every list is
probed; a filter leaving few rows (<= ``EXHAUSTIVE_BELOW``) scans exhaustively. So a filtered search
still returns ``k`` rows when ``k`` rows qualify.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakeql.errors import CorruptIndexError, LakeqlError
from lakeql.vectors.codes import RowReader

FILE = "ann.npz"
TIER_FILE = "ann_tier.npy"
# The list-order rows a bounded search reads besides the tier (:func:`write_list_rows`): a new connection's
# ANN search memory-maps them and reads only the probed lists' spans (:func:`open_mapped`)
ROWS_FILE = "ann_rows.json"  # what the files below hold (small: read in one go)
WORDS_FILE = "ann_words.npy"  # (n, w) uint64 code words in list order
FACTORS_FILE = "ann_factors.npy"  # (factors, n) float64 scan factors in list order, one row per factor
ROWIDS_FILE = "ann_rowids.npy"  # (1, n) int64 table rowids in list order
SCALES_FILE = "ann_scales.npy"  # (1, n) float32 per-row scales of the int8 tier in list order
# The list-order codes blocked for the scan (kernels.blocked_codes), optional (indexes built before them
# scan ann_words.npy row by row, same results): (blocks * words, 64) uint64 and (blocks * 3, 64) float32
BLOCKS_FILE = "ann_blocks.npy"
BLOCKF_FILE = "ann_blockf.npy"
ROWS_FORMAT = 1
# one list-order build at a time (DuckDB, DB-API cursors and MCP search from several threads; at 10M rows
# a build is ~1.5 GB and seconds of CPU: concurrent first queries must not each build their own copy)
_ORDER_LOCK = threading.Lock()
TIER_CHUNK = 65_536  # rows of the list-order tier copy gathered at a time (25 MB of a 384-dim uint8 tier)
TRAIN_PER_LIST = 32
NITER = 12
ASSIGN_CHUNK = 262_144
MIN_ROWS = 4_096  # below this an ANN stage buys nothing: build() writes no file and search stays exact
DEFAULT_PROBE_FRACTION = 1 / 32  # share of the lists probed by default
EXHAUSTIVE_BELOW = 50_000  # a filter keeping fewer rows is scanned exhaustively (cheaper than probing)
# Out-of-distribution queries: when the best list's centroid is this far from the query (cosine with the
# query's rotated residual below WIDEN_BELOW), its neighbours sit in lists ranked far down, so the probe is
# WIDEN_FACTOR times wider. Chosen on 100 real MiniLM queries over 500k re-sampled rows (recall@10 vs the
# exhaustive search 0.953 -> 0.982 at 2x the mean probe); see benchmarks/results/ann10m.md.
WIDEN_BELOW = 0.40
WIDEN_FACTOR = 8


def default_lists(n: int) -> int:
    """Lists of the IVF for ``n`` rows: about ``sqrt(n)``, a power of two, 16 to 4,096."""
    target = np.sqrt(max(n, 1))
    return int(min(4096, max(16, 2 ** int(round(np.log2(target))))))


def default_nprobe(nlist: int) -> int:
    return max(8, int(round(nlist * DEFAULT_PROBE_FRACTION)))


def _pm1(codes_u8: np.ndarray, dim: int) -> np.ndarray:
    """Packed codes (little-endian bit order, as the binarizers pack) as +-1 float32 rows."""
    bits = np.unpackbits(codes_u8, axis=1, count=dim, bitorder="little")
    return bits.astype(np.float32) * 2 - 1


def build(
    folder: Path,
    codes_u8: np.ndarray,
    dim: int,
    nlist: int | None = None,
    seed: int = 0,
    tier: Any = None,
) -> dict[str, Any] | None:
    """Cluster ``codes_u8`` ((n, nbytes) packed codes) and write ``folder/ann.npz``; returns its meta
    (lists, rows) or None when the column is too small for an ANN stage to help. ``tier`` (optional, the
    (n, d) rescoring tier, any row-indexable array such as a memory map): also written in list order to
    ``folder/ann_tier.npy`` (:func:`write_tier`)."""
    import faiss

    n = int(codes_u8.shape[0])
    if n < MIN_ROWS and not nlist:  # lists named explicitly: built at any size (tests, small columns)
        return None
    nl = int(nlist) if nlist else default_lists(n)
    nl = max(1, min(nl, n // 8))
    rng = np.random.default_rng(seed)
    m = min(n, nl * TRAIN_PER_LIST)
    sample = codes_u8[np.sort(rng.choice(n, m, replace=False))] if m < n else codes_u8
    km = faiss.Kmeans(
        dim,
        nl,
        niter=NITER,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=TRAIN_PER_LIST,
        min_points_per_centroid=1,
    )
    km.train(_pm1(np.ascontiguousarray(sample), dim))
    cent = np.asarray(km.centroids, np.float32)
    binary = faiss.IndexBinaryFlat(codes_u8.shape[1] * 8)
    cbits = np.packbits(cent > 0, axis=1, bitorder="little")
    if cbits.shape[1] != codes_u8.shape[1]:  # dims not a multiple of 8 bits: pad like the codes
        pad = np.zeros((nl, codes_u8.shape[1]), np.uint8)
        pad[:, : cbits.shape[1]] = cbits[:, : codes_u8.shape[1]]
        cbits = pad
    binary.add(cbits)
    assign = np.empty(n, np.int64)
    # One faiss thread: on a loaded machine OpenMP's spinning threads made this 9x slower in wall time
    # (50,000 codes x 4,096 lists: 17.8 s with 2 threads vs 1.9 s with 1, load 7 on 2 cores).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for s in range(0, n, ASSIGN_CHUNK):
            _, a = binary.search(np.ascontiguousarray(codes_u8[s : s + ASSIGN_CHUNK]), 1)
            assign[s : s + ASSIGN_CHUNK] = a[:, 0]
    finally:
        faiss.omp_set_num_threads(threads)
    order = np.argsort(assign, kind="stable")
    counts = np.bincount(assign, minlength=nl)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids = order.astype(np.int32 if n < 2**31 else np.int64)
    with open(folder / FILE, "wb") as fh:
        np.savez(fh, centroids=cent.astype(np.float16), offsets=offsets, ids=ids)
    if tier is not None:
        write_tier(folder, tier, ids)
    return {"lists": nl, "rows": n}


def write_tier(folder: Path, tier: Any, ids: np.ndarray) -> Path:
    """Write ``folder/ann_tier.npy``: the rows of ``tier`` ((n, d), row-indexable) in the list order
    ``ids``, ``TIER_CHUNK`` rows at a time (each chunk's source rows read in ascending order), appended
    to the file with plain writes (:func:`write_rows`), never all in memory."""
    n = int(len(ids))
    if tuple(tier.shape[:1]) != (n,):
        raise ValueError(f"the rescoring tier has {tier.shape[0]} rows, the lists {n}")
    dtype, d = np.dtype(tier.dtype), int(tier.shape[1])

    def chunks():
        for s in range(0, n, TIER_CHUNK):
            part = np.asarray(ids[s : s + TIER_CHUNK], np.int64)
            order = np.argsort(part, kind="stable")
            rows = np.empty((len(part), d), dtype)
            rows[order] = np.asarray(tier[part[order]])
            yield rows

    return write_rows(folder / TIER_FILE, dtype, (n, d), chunks())


def write_list_rows(folder: Path, index: Any, ids: np.ndarray) -> bool:
    """Write the list-order rows a bounded search reads besides the tier (``ROWS_FILE`` and the files it
    names): ``index``'s code words, scan factors, rowids and int8 scales with row ``t`` = code position
    ``ids[t]``, ``TIER_CHUNK`` rows at a time. A new connection then searches through the lists without
    loading the codes (:func:`open_mapped`): it reads the probed lists' spans of these memory-mapped files
    and the list-order tier, nothing else. False (nothing written) for an index whose scan is not the
    bounded one, which :func:`open_mapped` could not search exactly as the loaded index does."""
    from lakeql.vectors.search import bounded_scan

    if not bounded_scan(index.binarizer, index.factors) or index.refine_bits:
        return False
    if any(np.asarray(v).dtype != np.float64 for v in index.factors.values()):
        return False
    ids = np.asarray(ids, np.int64)
    n = int(len(ids))
    if n != index.n:
        raise ValueError(f"{n} list ids for {index.n} codes")

    def rows(arr: Any):
        for s in range(0, n, TIER_CHUNK):
            part = ids[s : s + TIER_CHUNK]
            yield np.asarray(arr[part]).reshape(len(part), -1)

    def line(arr: Any, dtype: Any):
        yield np.asarray(arr, dtype)[ids][None, :]

    keys = list(index.factors)
    words = np.asarray(index.words)
    write_rows(folder / WORDS_FILE, words.dtype, (n, words.shape[1]), rows(words))
    write_rows(
        folder / FACTORS_FILE,
        np.float64,
        (len(keys), n),
        (block for k in keys for block in line(index.factors[k], np.float64)),
    )
    write_rows(folder / ROWIDS_FILE, np.int64, (1, n), line(index.rowids, np.int64))
    if index.scales is not None:
        write_rows(folder / SCALES_FILE, np.float32, (1, n), line(index.scales, np.float32))
    spec = {"format": ROWS_FORMAT, "rows": n, "factors": keys, "scales": index.scales is not None}
    spec["blocked"] = write_blocked(folder, words, index.factors, ids)
    (folder / ROWS_FILE).write_text(json.dumps(spec))
    return True


def write_blocked(folder: Path, words: np.ndarray, factors: dict[str, np.ndarray], ids: np.ndarray) -> dict:
    """Write ``BLOCKS_FILE`` and ``BLOCKF_FILE``: the :func:`~lakeql.vectors.kernels.blocked_codes` layout
    of the list-order codes (row ``t`` = code position ``ids[t]``), ``TIER_CHUNK`` rows (a whole number of
    blocks) at a time; returns what ``ROWS_FILE`` records of it (the layout's float32 rounding bound)."""
    from lakeql.vectors import kernels

    n, w = int(len(ids)), int(words.shape[1])
    nb = -(-n // kernels.BLOCK)
    names = ("add", "factor", "errc")

    def parts():
        for s in range(0, n, TIER_CHUNK):
            part = ids[s : s + TIER_CHUNK]
            yield kernels.blocked_codes(words[part], {k: np.asarray(factors[k])[part] for k in names})

    write_rows(
        folder / BLOCKS_FILE,
        np.uint64,
        (nb * w, kernels.BLOCK),
        (p.codes.reshape(-1, kernels.BLOCK) for p in parts()),
    )
    write_rows(
        folder / BLOCKF_FILE,
        np.float32,
        (nb * 3, kernels.BLOCK),
        (p.f32.reshape(-1, kernels.BLOCK) for p in parts()),
    )
    bound = sum(float(np.abs(np.asarray(factors[k])).max()) if n else 0.0 for k in names)
    return {"bound": bound, "block": kernels.BLOCK}


def open_blocked(folder: Path, spec: dict, n: int, w: int) -> Any:
    """The memory-mapped ``BLOCKS_FILE`` / ``BLOCKF_FILE`` layout ``spec["blocked"]`` records
    (:func:`write_blocked`) as a :class:`~lakeql.vectors.kernels.BlockedSpans`, or None when the index has
    none (written before them): its spans are then scanned row by row. Raises ValueError on a mismatch."""
    from lakeql.vectors import kernels

    info = spec.get("blocked")
    if info is None:
        return None
    if not isinstance(info, dict) or int(info.get("block", 0)) != kernels.BLOCK:
        raise ValueError(f"blocked layout {info!r}, this version reads blocks of {kernels.BLOCK}")
    bound = float(info["bound"])
    if not np.isfinite(bound) or bound < 0:
        raise ValueError(f"blocked layout bound {bound!r}")
    nb = -(-n // kernels.BLOCK)
    codes = np.load(folder / BLOCKS_FILE, mmap_mode="r")
    f32 = np.load(folder / BLOCKF_FILE, mmap_mode="r")
    if codes.shape != (nb * w, kernels.BLOCK) or codes.dtype != np.uint64:
        raise ValueError(f"blocked codes have shape {codes.shape} {codes.dtype}")
    if f32.shape != (nb * 3, kernels.BLOCK) or f32.dtype != np.float32:
        raise ValueError(f"blocked factors have shape {f32.shape} {f32.dtype}")
    return kernels.BlockedSpans(
        np.asarray(codes).reshape(nb, w, kernels.BLOCK), np.asarray(f32).reshape(nb, 3, kernels.BLOCK), bound
    )


def check_probed_finite(index: Any, ivf: IVF, lo: Any, lists: np.ndarray) -> None:
    """Raise :class:`CorruptIndexError` when a scan factor (or a rescoring scale or float tier value) of the
    probed ``lists`` of an :func:`open_mapped` index is not finite (NaN, inf): a damaged or hostile file
    gave wrong hits silently (the builder writes finite values only). Each list is checked once per opened
    index, on the first query that reads it, so a query checks only what it reads (the mapped path exists
    so as not to read the whole file) and the later ones nothing: about 28-40 bytes a new row with an int8
    tier (leftovers6, review32: the scales; a float tier adds its row). Not locked: two threads may check
    one list both, and a failed check marks nothing, so a damaged list never makes others refused."""
    done = index._pos.get("ann_checked")
    if done is None or len(done) != ivf.nlist:
        done = index._pos["ann_checked"] = np.zeros(ivf.nlist, bool)
    lists = np.asarray(lists, np.int64)
    new = lists[~done[lists]]
    if not len(new):
        return
    starts, ends = lo.spans(ivf, new)
    blocked = getattr(lo, "blocked", None)
    from lakeql.vectors import kernels

    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):  # a loop over merged lists, not rows
        bad = [k for k, v in lo.factors.items() if not np.isfinite(v[s:e]).all()]
        if blocked is not None and e > s and not np.isfinite(
                blocked.f32[s // kernels.BLOCK: -(-e // kernels.BLOCK)]).all():
            bad.append("blocked factors")
        # the rescoring tier's int8 scales (or a float tier's values): a NaN there dropped the row from
        # the hits, silently (review32); an int8 tier's codes are always numbers
        if index.scales is not None and not np.isfinite(index.scales[s:e]).all():
            bad.append("int8 rescoring scales")
        if index.tier.dtype.kind == "f" and not np.isfinite(index.tier[s:e]).all():
            bad.append("rescoring tier")
        if bad:
            label = index._pos.get("ann_label", "this column")
            raise CorruptIndexError(
                f"the ANN lists of {label} are corrupt (a value that is not a number: "
                f"{', '.join(bad)} of list rows {s:,}-{e:,}): rebuild with 'lakeql index LAKE --embed "
                f"{label} --embed-ann', or search with exact := true")
    done[new] = True


def open_mapped(folder: Path, label: str) -> Any:
    """The code store at ``folder`` opened for ANN searches only, without loading its codes: a
    :class:`~lakeql.vectors.codes.CodeIndex` whose per-row arrays are the memory-mapped list-order files
    of :func:`write_list_rows` (positions are list-order positions; rowids are not ascending), with its
    IVF (centroids and offsets only) and list order attached, so :func:`search` without a filter runs on
    it exactly as on the loaded index: the probed lists are read in place, the rest of the files never.
    None when the index has no such files (built before them, or not a bounded rabitq index): load it
    whole (``CodeIndex.load``). A damaged file is a :class:`CorruptIndexError` naming the rebuild."""
    from lakeql.vectors import binarizers
    from lakeql.vectors.codes import CodeIndex

    if not (folder / ROWS_FILE).exists() or not (folder / TIER_FILE).exists() or not (folder / FILE).exists():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        spec = json.loads((folder / ROWS_FILE).read_text())
        if int(spec.get("format", 0)) != ROWS_FORMAT:
            return None  # another layout: the whole index is loaded instead
        n, dim = int(meta["rows"]), int(meta["dim"])
        if int(spec["rows"]) != n:
            raise ValueError(f"{spec['rows']} list-order rows, {n} in meta.json")
        words = np.load(folder / WORDS_FILE, mmap_mode="r")
        if words.ndim != 2 or words.shape[0] != n or words.dtype != np.uint64 or words.shape[1] * 64 < dim:
            raise ValueError(f"code words have shape {words.shape} {words.dtype}")
        keys = [str(k) for k in spec["factors"]]
        fac = np.load(folder / FACTORS_FILE, mmap_mode="r")
        if fac.shape != (len(keys), n) or fac.dtype != np.float64:
            raise ValueError(f"scan factors have shape {fac.shape} {fac.dtype}")
        rowids = np.load(folder / ROWIDS_FILE, mmap_mode="r")
        if rowids.shape != (1, n) or rowids.dtype != np.int64:
            raise ValueError(f"rowids have shape {rowids.shape} {rowids.dtype}")
        if spec["scales"] is not (meta.get("tier") == "int8"):  # the loaded index's rule (CodeIndex.load)
            raise ValueError(f"scales {spec['scales']!r} for a {meta.get('tier')!r} rescoring tier")
        scales = None
        if spec["scales"]:
            scales = np.load(folder / SCALES_FILE, mmap_mode="r")
            if scales.shape != (1, n) or scales.dtype != np.float32:
                raise ValueError(f"int8 scales have shape {scales.shape} {scales.dtype}")
            scales = np.asarray(scales[0])
        tier = np.load(folder / TIER_FILE, mmap_mode="r")
        if tier.ndim != 2 or tier.shape != (n, dim):
            raise ValueError(f"list-order tier has shape {tier.shape}, expected {(n, dim)}")
        with np.load(folder / "binarizer.npz") as z:
            arrays = {k: z[k] for k in z.files}
        binz = binarizers.from_state(meta["binarizer"], arrays)
        if binz.dim != dim:  # the kernels index the query's rotation by the tier's dimension
            raise ValueError(f"binarizer of dimension {binz.dim}, the index {dim}")
        # the factors and words the loaded index would hold (CodeIndex.load: encode, scan inputs, bounds),
        # from one encoded row: a rows file naming others read one factor as another (or crashed later)
        want_words, want = expected_scan_inputs(binz, dim)
        if not isinstance(spec["factors"], list) or len(set(keys)) != len(keys) or set(keys) != want:
            raise ValueError(f"factors {spec['factors']!r}, the scan reads {sorted(want)}")
        if words.shape[1] != want_words:
            raise ValueError(f"code words have {words.shape[1]} words a row, the codes {want_words}")
        blocked = open_blocked(folder, spec, n, int(words.shape[1]))
    except Exception as exc:  # noqa: BLE001 - any read/shape failure means a corrupt index
        raise CorruptIndexError(
            f"the ANN lists of {label} ({ROWS_FILE} and its files) are corrupt "
            f"({type(exc).__name__}: {exc}): rebuild with 'lakeql index LAKE --embed {label} --embed-ann', "
            "or search with exact := true"
        ) from None
    factors = {k: np.asarray(fac[i]) for i, k in enumerate(keys)}
    index = CodeIndex(
        folder, meta, np.asarray(rowids[0]), np.asarray(words), factors, np.asarray(tier), scales, binz
    )
    ivf = IVF.load(folder, n, dim, label, ids=False)
    ivf.tier = index.tier
    # charged to the cache budget: the files it maps (their pages, when hot) and the arrays it holds, not
    # the folder (the Parquet codes, the table-order tier and BM25 it never reads: annfirst.md)
    index.nbytes = mapped_bytes(folder, bool(spec["scales"]), blocked is not None) + sum(
        int(a.nbytes) for a in (ivf.centroids, ivf.offsets, *arrays.values())
    )
    order = ListOrder.__new__(ListOrder)  # the rows are already in list order: nothing to copy
    order.ids, order.words, order.factors = None, index.words, factors
    # the view shares every array but not ``_pos`` (no reference cycle: the maps close with the index)
    order.rowids, order.view = index.rowids, dataclasses.replace(index, _pos={})
    order.blocked = blocked
    index._pos.update(ann=ivf, ann_order=order, ann_mapped=True, ann_label=label)
    return index


def mapped_bytes(folder: Path, scales: bool, blocked: bool = False) -> int:
    """Bytes of the list-order files :func:`open_mapped` maps (words, factors, rowids, scales, tier, and
    the blocked layout when the index has one)."""
    names = (WORDS_FILE, FACTORS_FILE, ROWIDS_FILE, TIER_FILE, *((SCALES_FILE,) if scales else ()))
    names += (BLOCKS_FILE, BLOCKF_FILE) if blocked else ()
    return sum((folder / name).stat().st_size for name in names)


def expected_scan_inputs(binz: Any, dim: int) -> tuple[int, set[str]]:
    """(uint64 words a row, names of the scan factors) a loaded bounded index of ``binz`` holds (as
    :meth:`lakeql.vectors.codes.CodeIndex.load` makes them), from one encoded row."""
    from lakeql.vectors import kernels
    from lakeql.vectors.search import bounded_scan

    packed, factors = binz.encode(np.eye(1, dim, dtype=np.float32))  # one unit row
    words, factors = kernels.scan_inputs(np.asarray(packed, np.uint8), factors, binz.scan)
    if getattr(binz, "bounded", False):
        factors["errc"] = binz.error_coefficients(factors)
    if not bounded_scan(binz, factors):
        raise ValueError("the binarizer has no bounded scan: its index has no list-order rows")
    return int(words.shape[1]), set(factors)


def write_rows(path: Path, dtype: Any, shape: tuple[int, int], chunks: Any) -> Path:
    """Write a ``.npy`` file of ``shape`` from ``chunks`` (consecutive row blocks) with plain sequential
    writes - the bytes ``np.save`` of the whole array writes - instead of through a writable memory map.

    How the file enters the page cache decides what mapping it costs a reader: stores through a memory
    map leave it in 4 KB pages, each mapped separately by a reader's page faults, while large writes let
    the file system keep large folios when free memory allows (ext4 on Linux 6.16+, xfs), which a fault
    maps whole: 3,000 random rows of a 230 MB, 384-byte-row tier read the first time in a process cost
    7.9 ms of CPU written through a memory map and 1.1 ms written like this; under memory pressure the
    kernel falls back to 4 KB pages and both cost the same (benchmarks/results/ann.md). Also twice as
    fast to write, and a full disk is an ``OSError`` here (a memory-mapped store is a SIGBUS)."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    rows = 0
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for block in chunks:
            block = np.ascontiguousarray(block, dtype)
            if block.ndim != 2 or block.shape[1] != shape[1]:
                raise ValueError(f"a block of shape {block.shape} for rows of {shape[1]}")
            rows += block.shape[0]
            if rows > shape[0]:
                raise ValueError(f"more than the {shape[0]} rows announced")
            fh.write(block.reshape(-1).view(np.uint8))
        if rows != shape[0]:
            raise ValueError(f"{rows} rows written, {shape[0]} announced")
    return path


@dataclass
class IVF:
    centroids: np.ndarray  # (lists, d) float32
    offsets: np.ndarray  # (lists + 1,) int64
    ids: np.ndarray | None  # (rows,) code positions grouped by list (None: not read, see load)
    tier: np.ndarray | None = None  # (rows, d) the rescoring tier in list order (memory-mapped), if built

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def load(cls, folder: Path, n: int, dim: int, label: str, ids: bool = True) -> IVF | None:
        """The IVF of a code store (None when it has none); a damaged file is a CorruptIndexError.
        ``ids=False``: the centroids and offsets only (``ids`` None: a search over the list-order rows
        of :func:`open_mapped` needs no code positions; ``ids`` are 4-8 bytes a row)."""
        path = folder / FILE
        if not path.exists():
            return None
        try:
            with np.load(path) as z:  # an .npz member is read only when asked for
                cent = np.asarray(z["centroids"], np.float32)
                offsets = np.asarray(z["offsets"], np.int64)
                ids = np.asarray(z["ids"]) if ids else None
            nl = cent.shape[0]
            if cent.ndim != 2 or cent.shape[1] != dim or nl < 1:
                raise ValueError(f"centroids have shape {cent.shape}, expected (lists, {dim})")
            if (
                offsets.shape != (nl + 1,)
                or offsets[0] != 0
                or offsets[-1] != n
                or np.any(np.diff(offsets) < 0)
            ):
                raise ValueError("list offsets do not cover the rows")
            if ids is not None and (
                ids.shape != (n,) or ids.dtype.kind != "i" or (n and (ids.min() < 0 or ids.max() >= n))
            ):
                raise ValueError("list ids are not code positions")
            if not np.all(np.isfinite(cent)):
                raise ValueError("centroids hold NaN or infinite values")
        except Exception as exc:  # noqa: BLE001 - any read/shape failure means a corrupt file
            raise CorruptIndexError(
                f"the ANN lists of {label} ({FILE}) are corrupt ({type(exc).__name__}: {exc}): rebuild with "
                f"'lakeql index LAKE --embed {label} --embed-ann', or search with exact := true"
            ) from None
        return cls(cent, offsets, ids)

    @staticmethod
    def load_tier(folder: Path, tier: Any, label: str) -> np.ndarray | None:
        """The list-order copy of the rescoring tier (memory-mapped), None when the index has none (built
        before it existed); it must match ``tier`` (the table-order tier) in shape and type."""
        path = folder / TIER_FILE
        if not path.exists():
            return None
        try:
            copy = np.load(path, mmap_mode="r")
            if copy.shape != tuple(tier.shape) or copy.dtype != tier.dtype:
                raise ValueError(
                    f"shape {copy.shape} {copy.dtype}, expected {tuple(tier.shape)} {tier.dtype}"
                )
        except Exception as exc:  # noqa: BLE001 - any read/shape failure means a corrupt file
            raise CorruptIndexError(
                f"the list-order rescoring tier of {label} ({TIER_FILE}) is corrupt ({type(exc).__name__}: "
                f"{exc}): rebuild with 'lakeql index LAKE --embed {label} --embed-ann', or search with "
                "exact := true"
            ) from None
        return copy

    def probe_order(self, index, q: np.ndarray) -> np.ndarray:
        """Lists best first for query ``q`` (inner product with the query's rotated residual)."""
        return self.probe(index, q)[0]

    def probe(self, index, q: np.ndarray, rotated: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """(lists best first, cosine of the best list's centroid with the query's rotated residual);
        ``rotated``: that residual (``binarizer.rotated(q)``), if already computed."""
        ranking, best = self.rank(index, q, rotated)
        return np.argsort(-ranking.scores, kind="stable"), best

    def rank(self, index, q: np.ndarray, rotated: np.ndarray | None = None) -> tuple[Ranking, float]:
        """:meth:`probe` without sorting every list: a :class:`Ranking` (its prefixes are the sets of
        :meth:`probe`'s prefixes, cut on demand) and the best list's cosine."""
        b = index.binarizer
        c, rot = getattr(b, "centroid", None), getattr(b, "rotation", None)
        from lakeql.vectors import kernels

        q = np.asarray(q, np.float32)
        if rotated is not None and c is not None and rot is not None:
            qr = rotated
        else:
            qr = kernels.vecmat(q - c, rot) if c is not None and rot is not None else q
        sc = kernels.matvec(self.centroids, qr)  # not BLAS: see kernels.matvec
        ranking = Ranking(sc)
        top = int(ranking[:1][0])
        norm = float(np.linalg.norm(self.centroids[top])) * float(np.linalg.norm(qr))
        return ranking, float(sc[top]) / norm if norm > 0 else 0.0

    def positions(self, lists: np.ndarray) -> np.ndarray:
        """Sorted code positions of the rows in ``lists``."""
        parts = [self.ids[self.offsets[i] : self.offsets[i + 1]] for i in lists]
        out = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        out.sort()
        return out


class Ranking:
    """Lists ranked by score ``scores`` (descending, ties by list: ``np.argsort(-scores, kind="stable")``)
    cut on demand: ``ranking[:m]`` is the set of the best ``m`` lists in list order (the search probes a
    prefix and reads its lists by position; sorting all 4,096 lists per query cost ~0.1 ms for the 128
    probed)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self._neg = -np.asarray(scores, np.float64)  # (exact: float32 -> float64, then negated)

    def __getitem__(self, cut: slice) -> np.ndarray:
        from lakeql.vectors.rounds import smallest

        if not isinstance(cut, slice) or cut.start not in (None, 0) or cut.step not in (None, 1):
            raise TypeError("a Ranking is cut by a prefix: ranking[:m]")
        m = len(self._neg) if cut.stop is None else max(0, min(int(cut.stop), len(self._neg)))
        if m >= len(self._neg):
            return np.arange(len(self._neg))
        return smallest(m, self._neg)


class SubIndex:
    """A view of a :class:`~lakeql.vectors.codes.CodeIndex` restricted to some rows: what
    :func:`lakeql.vectors.search.search` reads (words, factors, rowids, score, binarizer). ``pos`` are
    the rows' code positions in the parent; ``words``/``factors`` may be passed already gathered."""

    def __init__(
        self,
        index,
        pos: np.ndarray,
        words: np.ndarray | None = None,
        factors: dict[str, np.ndarray] | None = None,
        rowids: np.ndarray | None = None,
    ) -> None:
        self.parent, self.pos = index, pos
        self.binarizer = index.binarizer
        self.words = index.words[pos] if words is None else words
        self.factors = {k: v[pos] for k, v in index.factors.items()} if factors is None else factors
        self.rowids = index.rowids[pos] if rowids is None else rowids
        self.meta = index.meta

    @property
    def n(self) -> int:
        return int(self.pos.shape[0])

    @property
    def dim(self) -> int:
        return self.parent.dim

    def score(self, positions: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.parent.score(self.pos[np.asarray(positions, np.int64)], q)


class ListOrder:
    """The codes and scan factors of an index copied into list order, once per loaded index: probing a
    list is then a contiguous slice (a random gather of 32,000 rows out of 1M cost 4.6 ms of CPU,
    cache misses; slices cost a copy). Memory: the codes, factors and rowids twice (about 90 bytes a
    row). With the IVF's list-order tier (``ivf.tier``), :attr:`view` is the whole index in list order
    (a :class:`~lakeql.vectors.codes.CodeIndex` over the copies: positions are list-order positions), so
    rescoring the probed lists' rows reads a few contiguous spans of the tier."""

    def __init__(self, index, ivf: IVF) -> None:
        ids = ivf.ids.astype(np.int64)
        self.ids = ids
        self.words = np.ascontiguousarray(index.words[ids])
        self.factors = {k: np.ascontiguousarray(v[ids]) for k, v in index.factors.items()}
        self.rowids = np.ascontiguousarray(index.rowids[ids])
        self.view = None if ivf.tier is None else self._view(index, ivf.tier)
        self.blocked = blocked_layout(self.words, self.factors)

    def _view(self, index, tier: np.ndarray):
        """``index`` with every per-row array in list order and the tier replaced by its list-order copy.

        Per-row arrays are the fields holding one entry per code (first dimension ``n``): in-memory ones
        are copied in list order; memory-mapped or sharded ones (the refinement planes, read for a few
        rows a query) are wrapped to read row ``ids[t]`` for list-order row ``t`` (:class:`ListOrderRows`),
        never gathered whole. The scales of format-1 'dims' indexes are per column and stay as they are."""
        import dataclasses

        n = index.n
        changes: dict[str, Any] = {
            "rowids": self.rowids,
            "words": self.words,
            "factors": self.factors,
            "tier": tier,
            "_pos": {},
            "_blocked": None,  # the index's blocked copy is of its table-order codes (built on demand)
        }
        for f in dataclasses.fields(index):
            v = getattr(index, f.name)
            if f.name in changes or not hasattr(v, "shape") or len(v.shape) < 1 or v.shape[0] != n:
                continue
            if f.name == "scales" and index.space == "dims":
                continue
            if isinstance(v, (np.memmap, RowReader)):
                changes[f.name] = ListOrderRows(v, self.ids)
            elif isinstance(v, np.ndarray):
                changes[f.name] = np.ascontiguousarray(v[self.ids])
        return dataclasses.replace(index, **changes)

    @staticmethod
    def spans(ivf: IVF, lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of ``lists`` in list order, adjacent lists merged into one span."""
        lists = np.sort(np.asarray(lists, np.int64))
        if not len(lists):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        brk = np.flatnonzero(np.diff(lists) != 1) + 1
        starts, ends = lists[np.r_[0, brk]], lists[np.r_[brk - 1, len(lists) - 1]] + 1
        return ivf.offsets[starts], ivf.offsets[ends]

    def sub(self, index, ivf: IVF, lists: np.ndarray) -> SubIndex:
        """The rows of ``lists`` cut into a :class:`SubIndex` (binarizers without the bounded span scan)."""
        starts, ends = self.spans(ivf, lists)

        def cut(v: np.ndarray) -> np.ndarray:
            if not len(starts):
                return v[:0]
            return np.concatenate([v[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)])

        factors = {k: cut(v) for k, v in self.factors.items()}
        return SubIndex(index, cut(self.ids), cut(self.words), factors, cut(self.rowids))


def blocked_layout(words: np.ndarray, factors: dict[str, np.ndarray]) -> Any:
    """The list-order codes' :func:`~lakeql.vectors.kernels.blocked_codes` layout, which the probed spans
    are scanned through (:func:`~lakeql.vectors.kernels.asym4_bounded_blocked_spans`: the spans kernel's
    result, about half its CPU); None when the scan is not the bounded one (no ``errc``) or the layout would
    pass ``LAKEQL_BLOCKED_MAX_MB`` (the row-by-row spans kernel runs then, same results)."""
    from lakeql.vectors import kernels
    from lakeql.vectors.codes import blocked_budget

    n, w = words.shape
    if "errc" not in factors or -(-n // kernels.BLOCK) * kernels.BLOCK * (8 * w + 12) > blocked_budget():
        return None
    return kernels.blocked_codes(words, factors)


class ListOrderRows(RowReader):
    """A memory-mapped (or otherwise row-read) per-row array read in list order: ``rows[t]`` is
    ``base[ids[t]]``, a few rows at a time (a :class:`~lakeql.vectors.codes.RowReader`)."""

    def __init__(self, base: Any, ids: np.ndarray) -> None:
        self.base, self.ids = base, ids
        self.shape = tuple(base.shape)
        self.dtype = np.dtype(base.dtype)

    def __getitem__(self, positions: Any) -> np.ndarray:
        pos = np.asarray(positions, np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.shape[0]):
            raise IndexError("code position out of range")
        return np.asarray(self.base[self.ids[pos]])


def ivf_of(index, label: str) -> IVF | None:
    """The loaded IVF of ``index`` (cached on it), or None when it was built without ``--embed-ann``."""
    if "ann" not in index._pos:
        ivf = IVF.load(index.path, index.n, index.dim, label)
        if ivf is not None:
            ivf.tier = IVF.load_tier(index.path, index.tier, label)
        index._pos["ann"] = ivf
    return index._pos["ann"]


def search(
    index,
    ivf: IVF,
    q: np.ndarray,
    k: int,
    oversample: int = 4,
    allowed: np.ndarray | None = None,
    nprobe: int | None = None,
    stats: dict[str, Any] | None = None,
    adaptive: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (rowids, scores) through the IVF: probe the best ``nprobe`` lists (widened for a filter,
    see the module docstring, and with ``adaptive`` ``WIDEN_FACTOR`` times for a query whose best list
    centroid has cosine below ``WIDEN_BELOW``), then the adaptive two-stage search over their rows."""
    from lakeql.vectors import kernels
    from lakeql.vectors import search as vsearch
    from lakeql.vectors.search import bounded_scan
    from lakeql.vectors.search import search as exhaustive

    npr = default_nprobe(ivf.nlist) if nprobe is None else int(nprobe)
    if npr <= 0:
        raise LakeqlError(f"nprobe must be a positive integer, got {nprobe}")
    npr = min(npr, ivf.nlist)
    if allowed is not None:
        total = int(np.count_nonzero(allowed))
        if total <= max(EXHAUSTIVE_BELOW, k):
            if stats is not None:
                stats.update(nprobe=0, probed_rows=index.n)
            return exhaustive(index, q, k, oversample, allowed, stats=stats)
    binz = index.binarizer
    # the query's rotated residual once: the lists are ranked by it and the scan quantizes it
    rotated = binz.rotated(q) if hasattr(binz, "rotated") and vsearch.FUSED_ROUNDS else None
    if vsearch.FUSED_ROUNDS:
        order, best = ivf.rank(index, q, rotated)  # order[:npr]: the same lists as probe's, unsorted
    else:
        order, best = ivf.probe(index, q, rotated)
    widened = adaptive and best < WIDEN_BELOW
    if widened:
        npr = min(ivf.nlist, npr * WIDEN_FACTOR)
    lo = index._pos.get("ann_order")
    if lo is None:
        with _ORDER_LOCK:  # built once: the other threads wait for it and share it
            lo = index._pos.get("ann_order")
            if lo is None:
                lo = index._pos["ann_order"] = ListOrder(index, ivf)
    if lo.ids is None and allowed is not None:  # open_mapped's index: no code positions to filter by
        raise LakeqlError(
            "a filtered search needs the loaded index (CodeIndex.load), not its list-order rows"
        )
    while True:
        starts, ends = lo.spans(ivf, order[:npr])
        if allowed is None:
            found = int((ends - starts).sum())
        else:
            found = int(kernels.count_allowed(allowed, lo.ids, starts, ends))
        if found >= k or npr >= ivf.nlist:
            break
        npr = min(ivf.nlist, npr * 2)
    if stats is not None:
        stats.update(
            nprobe=int(npr), probed_rows=int((ends - starts).sum()), best_list_cos=best, widened=widened
        )
    if index._pos.get("ann_mapped"):
        check_probed_finite(index, ivf, lo, order[:npr])
    if bounded_scan(binz, lo.factors):
        # the probed lists are contiguous spans of the list-order copy: scanned in place, no sub-index cut
        def scan(kk: int, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows, ub, est = binz.candidates(
                q,
                lo.words,
                lo.factors,
                kk,
                allowed,
                cap,
                spans=(starts, ends),
                mask_ids=None if allowed is None else lo.ids,
                blocked=getattr(lo, "blocked", None),
                rotated=rotated,
            )
            return (rows if lo.view is not None else lo.ids[rows]), ub, est

        if lo.view is not None:  # rescoring reads the list-order tier: positions stay list-order ones
            # (the filter is applied by the scan, through the list-order ids)
            return exhaustive(lo.view, q, k, oversample, None, stats=stats, scan=scan)
        return exhaustive(index, q, k, oversample, allowed, stats=stats, scan=scan)
    sub = lo.sub(index, ivf, order[:npr])
    return exhaustive(sub, q, k, oversample, None if allowed is None else allowed[sub.pos], stats=stats)
