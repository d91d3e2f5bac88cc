"""Load the discovery index (``<index_dir>/discovery``) once per connection, and check it is fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lakeql import packed, parquet_io
from lakeql.errors import CorruptIndexError, LakeqlError, NotIndexedError, StaleIndexError

TCLASSES = ("text", "int", "float", "date", "bool", "other")


class DiscoveryIndex:
    """Arrays of ``discovery/`` (see :mod:`lakeql.joins.union_index`), decompressed into memory."""

    def __init__(self, root: Path) -> None:
        import numpy as np

        self.root = root
        if (root / "colvec.npz").exists() and not (root / "colvec.zst").exists():
            raise CorruptIndexError(f"the discovery index in {str(root)!r} is of an older format (.npy "
                                    "arrays): rebuild with lakeql index LAKE")
        try:
            cols = parquet_io.read_table(root / "columns.parquet")
            tabs = parquet_io.read_table(root / "tables.parquet")
            self.colvec = packed.load_sparse(root / "colvec.zst").tocsr()
            self.namevec = packed.load_sparse(root / "namevec.zst").tocsr()
            flat = packed.load(root / "sketch_values.zst")
            self.tok_hash = packed.load(root / "tok_hash.zst")
            self.tok_col = packed.load(root / "tok_col.zst")
        except Exception as exc:  # noqa: BLE001
            raise CorruptIndexError(f"the discovery index in {str(root)!r} is unreadable "
                                    f"({type(exc).__name__}): run 'lakeql index LAKE' again") from None
        d = cols.select(["table_name", "column_name", "type", "tclass", "description"]).to_pydict()
        self.table_name: list[str] = d["table_name"]
        self.column_name: list[str] = d["column_name"]
        self.type: list[str] = d["type"]
        self.description: list[str] = d["description"]
        code = {c: i for i, c in enumerate(TCLASSES)}
        self.tclass = np.array([code.get(c, 5) for c in d["tclass"]], dtype=np.int8)
        self.indexed = cols.column("indexed").to_numpy(zero_copy_only=False).astype(bool)
        self.n_distinct = cols.column("n_distinct").to_numpy(zero_copy_only=False).astype(np.int64)
        self.uniqueness = cols.column("uniqueness").to_numpy(zero_copy_only=False).astype(np.float64)
        self.sketch_len = cols.column("sketch_len").to_numpy(zero_copy_only=False).astype(np.int64)
        self.sketch = padded_sketches(flat, self.sketch_len)
        self.sketch_flat = flat  # the same values ragged (union.sketch_containment_many reads these)
        self.sketch_start = np.cumsum(self.sketch_len) - self.sketch_len
        self.vmin = np.array(cols.column("vmin").to_pylist(), dtype=np.float64)
        self.vmax = np.array(cols.column("vmax").to_pylist(), dtype=np.float64)
        self.samples = cols.column("sample")
        t = tabs.to_pydict()
        self.tables: list[str] = t["table_name"]
        self.col_start = np.asarray(t["col_start"], dtype=np.int64)
        self.col_end = np.asarray(t["col_end"], dtype=np.int64)
        self.row_count = np.asarray(t["row_count"], dtype=np.int64)
        self.table_description: list[str] = t["description"]
        self.fingerprints: dict[str, str] = dict(zip(t["table_name"], t["fingerprint"], strict=True))
        self.table_id = {n: i for i, n in enumerate(self.tables)}
        self.col_table = np.repeat(np.arange(len(self.tables)), self.col_end - self.col_start)
        self.deepjoin = packed.load(root / "deepjoin.zst") if (root / "deepjoin.zst").exists() else None
        self._bm25: dict[str, Any] = {}
        self.words_version: int | None = None  # set by load() from the manifest (None: the current)
        self._vocab: dict[str, int] | None = None
        self._tablevec: Any = None
        self._colvec_t = None
        self._namevec_t = None

    @property
    def colvec_t(self):
        """The column vectors transposed as CSR (features x columns): fast ``Q @ C.T`` products."""
        if self._colvec_t is None:
            self._colvec_t = self.colvec.T.tocsr()
        return self._colvec_t

    @property
    def namevec_t(self):
        if self._namevec_t is None:
            self._namevec_t = self.namevec.T.tocsr()
        return self._namevec_t

    def bm25(self, field: str):
        m = self._bm25.get(field)
        if m is None:
            m = self._bm25[field] = packed.load_sparse(self.root / f"bm25_{field}.zst").tocsc()
        return m

    @property
    def vocab(self) -> dict[str, int]:
        if self._vocab is None:
            terms = parquet_io.read_table(self.root / "vocab.parquet").column("term").to_pylist()
            self._vocab = {w: i for i, w in enumerate(terms)}
        return self._vocab

    @property
    def tablevec(self):
        """Table-summary embeddings (``--discovery-embed``), or None."""
        import numpy as np

        if self._tablevec is None and (self.root / "tablevec.npy").exists():
            self._tablevec = np.load(self.root / "tablevec.npy")
        return self._tablevec

    @property
    def tablevec_backend(self) -> str | None:
        """The encoder backend that made :attr:`tablevec` (None: not recorded, an index built by torch)."""
        return self.recorded_backend(self.root)

    @property
    def tablevec_channels(self) -> str | None:
        """The ``onnx-int8-outlier`` channels that made :attr:`tablevec` (None: not recorded)."""
        from lakeql.joins.deepjoin import recorded_channels

        return recorded_channels(self.root, "tablevec.json")

    @staticmethod
    def recorded_backend(root: Path) -> str | None:
        """The backend recorded in ``root/tablevec.json`` (None: none recorded or unreadable)."""
        import json

        try:
            return json.loads((root / "tablevec.json").read_text()).get("backend")
        except (OSError, ValueError, AttributeError):
            return None

    def columns_of(self, table: str) -> range:
        i = self.table_id[table]
        return range(int(self.col_start[i]), int(self.col_end[i]))


def load(ctx) -> DiscoveryIndex:
    """The connection's discovery index (cached until rebuilt), or a clear error naming the fix."""
    if ctx.store is None:
        raise LakeqlError("no index store: run 'lakeql index LAKE' first")
    entry = ctx.store.find("discovery")
    if entry is None:
        raise NotIndexedError("no discovery index (union and table search): build it with "
                              "'lakeql index LAKE' (without --no-joins)")
    from lakeql.joins.union_index import FORMAT

    if entry.params_dict.get("format", FORMAT) != FORMAT:
        raise StaleIndexError(f"the discovery index is of format {entry.params_dict.get('format')} (this "
                              f"lakeql reads {FORMAT}): rebuild with lakeql index LAKE")
    ix = ctx.load_index("discovery", None, "", lambda path, _e: DiscoveryIndex(path))
    ix.words_version = words_version(entry.params_dict)
    lake = ctx.require_lake()
    if ctx.cache.get("discovery_checked") != entry.built_at:
        from lakeql.joins.sqlapi import built_from_files_of

        # a table refreshed after this connection opened is described as a new connection sees it
        bad = sorted(k for k in lake.tables if not built_from_files_of(lake, k, ix.fingerprints.get(k)))
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            from lakeql.lake import files_word

            raise StaleIndexError(f"the discovery index is older than the {files_word(lake.tables[bad[0]])} "
                                  f"of table {bad[0]}{more}: run 'lakeql index --refresh LAKE'")
        ctx.cache["discovery_checked"] = entry.built_at
    return ix


def words_version(params: dict[str, Any]) -> int:
    """The :data:`lakeql.joins.union_text.WORDS_VERSION` a discovery index was built with: a query's words
    are stemmed the same way (an index of an older lakeql, used before its next refresh, holds the old
    stems: 'countrie'). Recorded since version 4; none recorded: 3."""
    try:
        return int(params.get("words", 3))
    except (TypeError, ValueError):
        return 3


def padded_sketches(flat, lengths):
    """The (columns x SKETCH_K) uint64 bottom-k sketches padded with 2**64-1, from the ragged file."""
    import numpy as np

    from lakeql.joins.union_index import SKETCH_K

    n = len(lengths)
    out = np.full((n, SKETCH_K), np.iinfo(np.uint64).max, dtype=np.uint64)
    if n and len(flat):
        rows = np.repeat(np.arange(n), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(len(flat)) - np.repeat(starts, lengths)
        out[rows, cols] = flat
    return out
