"""Options of exact n-gram search (``--ngram TABLE.COLUMN`` and the FM-index layout)."""

from __future__ import annotations

from dataclasses import dataclass

from lakeql.options import option


@dataclass
class NgramOptions:
    """Which text columns get an FM-index, and how it is cut and built."""

    ngram: list[str] = option([], "build an exact substring index of this text column (repeatable)",
                              metavar="TABLE.COLUMN", repeat=True)
    ngram_case: str = option("sensitive", "insensitive: index a Unicode case-folded copy (str.casefold)",
                             choices=("sensitive", "insensitive"))
    ngram_words: bool = option(True, "also index the column's word sequence (\\w+ runs) for unit := 'word' "
                                     "queries (about 0.3x the text, plus 0.25x with --ngram-scan)")
    # Off by default so that the index stays smaller than the text (character + word index: about 0.7x
    # measured on Python source); on, the rows of very frequent phrases come faster than DuckDB's scan.
    ngram_scan: bool = option(False, "keep the indexed text as LZ4 blocks (about 0.3x the text per unit) "
                                     "so the rows of very frequent phrases are found by a multi-threaded "
                                     "scan, faster than DuckDB's own")
    ngram_mode: str = option("compressed", "fast: also keep the full suffix array (about 4 bytes per "
                                           "text byte) for instant row lookups; compressed: about 0.4x "
                                           "the text", choices=("compressed", "fast"))
    ngram_jobs: int = option(0, "shards built in parallel (0: the number of CPUs)", metavar="N",
                             bounds=(0, 4096))
    ngram_shard_mb: float = option(64.0, "text per shard in MB (at most 3500)", metavar="N")
