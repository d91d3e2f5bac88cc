"""Load the lake-wide join index once per connection (memory-mapped) and answer exact overlap queries.

:meth:`JoinIndex.overlaps` is the hot path: the query column's distinct hashes are looked up in the
hash-sorted posting array with two vectorized ``searchsorted`` calls, the matching column ids are
gathered and counted with ``bincount``: exact overlap with every column of the lake, no Python loop
per value or per column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeql.errors import CorruptIndexError

EXACT_LIMIT = 200_000  # query columns with more distinct values are probed with their MinHash sketch
PROBE = 4096  # hashes probed for such columns (the bottom-k of the query: a uniform sample)


@dataclass
class Overlaps:
    cols: Any  # int32 candidate col ids
    overlap: Any  # int64 exact (or sketch-estimated, then verified) overlap counts
    n_query: int  # distinct values of the query


class JoinIndex:
    """The loaded ``joins/lake`` (and ``joins/semantic`` when built)."""

    def __init__(self, root: Path, semantic_dir: Path | None = None) -> None:
        import numpy as np
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(root / "columns.parquet")
            self.bycol = np.load(root / "bycol_hash.npy", mmap_mode="r")
            self.hh = np.load(root / "byhash_hash.npy", mmap_mode="r")
            self.hc = np.load(root / "byhash_col.npy", mmap_mode="r")
        except Exception as exc:  # noqa: BLE001
            raise CorruptIndexError(f"the join index in {str(root)!r} is unreadable "
                                    f"({type(exc).__name__}): run 'lakeql index LAKE' again") from None
        if len(self.hh) != len(self.bycol) or len(self.hc) != len(self.hh):
            raise CorruptIndexError(f"the join index in {str(root)!r} is inconsistent: "
                                    "run 'lakeql index LAKE' again")
        self.columns = t
        d = t.select(["table_name", "column_name", "type", "type_class", "note", "case_class", "pattern"]
                     ).to_pydict()
        self.table_name: list[str] = d["table_name"]
        self.column_name: list[str] = d["column_name"]
        self.type: list[str] = d["type"]
        self.type_class: list[str | None] = d["type_class"]
        self.note: list[str | None] = d["note"]
        self.case_class: list[str | None] = d["case_class"]
        self.pattern: list[str | None] = d["pattern"]

        def arr(name: str, dtype: Any) -> Any:
            col = t.column(name).to_numpy(zero_copy_only=False)
            if col.dtype == object:
                col = np.array([0 if v is None else v for v in col])
            return np.nan_to_num(col.astype(dtype))

        self.indexed = arr("indexed", bool)
        self.n_distinct = arr("n_distinct", np.int64)
        self.nonnull = arr("nonnull", np.int64)
        self.row_count = arr("row_count", np.int64)
        self.uniqueness = arr("uniqueness", np.float64)
        self.offset = arr("offset", np.int64)
        self.n_hashes = arr("n_hashes", np.int64)
        self.int_min = t.column("int_min").to_numpy(zero_copy_only=False).astype(np.float64)
        self.int_max = t.column("int_max").to_numpy(zero_copy_only=False).astype(np.float64)
        tables = sorted(set(self.table_name))
        tid = {n: i for i, n in enumerate(tables)}
        self.table_id = np.array([tid[n] for n in self.table_name], dtype=np.int32)
        self.by_name = {(tn, cn): i for i, (tn, cn) in enumerate(zip(self.table_name, self.column_name,
                                                                    strict=True))}
        self.vectors = None
        self.faiss = None
        if semantic_dir is not None:
            import faiss

            try:
                self.vectors = np.load(semantic_dir / "vectors.npy", mmap_mode="r")
                self.faiss = faiss.read_index(str(semantic_dir / "index.faiss"))
            except Exception as exc:  # noqa: BLE001
                raise CorruptIndexError(f"the semantic join index in {str(semantic_dir)!r} is unreadable "
                                        f"({type(exc).__name__}): run 'lakeql index LAKE' again") from None
            if self.vectors.shape[0] != len(self.table_name):
                raise CorruptIndexError("the semantic join index does not match the join index: "
                                        "run 'lakeql index LAKE' again")

    def __len__(self) -> int:
        return len(self.table_name)

    def hashes(self, col: int):
        """The sorted distinct hashes of column ``col`` (a memory-mapped slice)."""
        o = int(self.offset[col])
        return self.bycol[o:o + int(self.n_hashes[col])]

    def top(self, col: int) -> tuple[list[str], list[int]]:
        """The column's most frequent raw values and their hashes."""
        return (self.columns.column("top_values")[col].as_py() or [],
                self.columns.column("top_hashes")[col].as_py() or [])

    def overlaps(self, col: int | None = None, hashes: Any = None, verify: int = 2000) -> Overlaps:
        """Exact overlap of a column (or of a hash set) with every other indexed column."""
        import numpy as np

        q = self.hashes(col) if hashes is None else np.unique(np.asarray(hashes, dtype=np.uint64))
        n = len(q)
        sampled = n > EXACT_LIMIT
        probe = np.asarray(q[:PROBE]) if sampled else np.asarray(q)
        cols, counts = self.postings(probe)
        if col is not None:
            keep = cols != col
            cols, counts = cols[keep], counts[keep]
        if sampled and len(cols):
            # bottom-k sketch estimate, then exact verification of the best candidates
            est = counts / len(probe)
            best = np.argsort(-est, kind="stable")[:verify]
            cols = cols[best]
            counts = np.array([intersect_count(q, self.hashes(int(c))) for c in cols], dtype=np.int64)
        return Overlaps(cols.astype(np.int32), counts.astype(np.int64), n)

    def postings(self, probe: Any) -> tuple[Any, Any]:
        """(col ids, overlap counts) of every column holding any of the sorted hashes ``probe``."""
        import numpy as np

        if len(probe) == 0 or len(self.hh) == 0:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        lo = np.searchsorted(self.hh, probe, "left")
        hi = np.searchsorted(self.hh, probe, "right")
        lens = hi - lo
        hit = lens > 0
        lo, lens = lo[hit], lens[hit]
        total = int(lens.sum())
        if total == 0:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
        pos = starts + np.arange(total)
        hit_cols = np.asarray(self.hc[pos])
        if total * 8 >= len(self.table_id):
            # many postings: counting into a dense array (O(postings + columns)) beats sorting them
            counts = np.bincount(hit_cols, minlength=len(self.table_id))
            cols = np.flatnonzero(counts)
            return cols.astype(np.int32), counts[cols].astype(np.int64)
        cols, counts = np.unique(hit_cols, return_counts=True)
        return cols.astype(np.int32), counts.astype(np.int64)


def intersect_count(a: Any, b: Any) -> int:
    """Size of the intersection of two sorted unique uint64 arrays."""
    import numpy as np

    if len(a) == 0 or len(b) == 0:
        return 0
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    small = np.asarray(small)
    pos = np.searchsorted(big, small)
    pos[pos >= len(big)] = len(big) - 1
    return int((np.asarray(big[pos]) == small).sum())
