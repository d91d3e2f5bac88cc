"""Options of joinable-table discovery (``lakeql index`` flags and ``lakeql.index()`` keywords)."""

from __future__ import annotations

from dataclasses import dataclass

from lakeql.options import option


@dataclass
class JoinOptions:
    """How the join index is built: exact value index always, semantic column embeddings optionally."""

    joins: bool = option(True, "build the join index (value index, sketches, join graph)")
    # opt-in: embedding one text per column dominated the default build (see joins/builder.py)
    joins_semantic: bool = option(False, "embed each column's DeepJoin text for semantic joins "
                                         "(mode 'semantic'; slow: about 20-50 columns/s on 2 CPU cores)")
    joiner_model: str | None = option(None, "sentence-transformers model for the column embeddings "
                                            "(default: a model trained by 'lakeql train-joiner' in the "
                                            "index dir, else all-MiniLM-L6-v2)", metavar="PATH")
    joins_embed_backend: str = option("auto", "encoder of the column embeddings and of find_tables' table "
                                              "summaries: auto (default: onnx, the float32 ONNX Runtime "
                                              "export of the model: torch's vectors, no torch import; torch "
                                              "for models it does not handle), onnx, onnx-int8, "
                                              "onnx-int8-token, onnx-int8-outlier, torch, torch-int8",
                                      choices=("auto", "onnx", "onnx-int8", "onnx-int8-token",
                                               "onnx-int8-outlier", "torch", "torch-int8"))
    joins_min_score: float = option(0.6, "keep join-graph edges scoring at least S", metavar="S",
                                    bounds=(0, 1))
    # discovery (union_index.py): unionable, find_tables, transformation blocking
    discovery: bool = option(True, "build the discovery index (union search, table search)")
    discovery_embed: bool = option(False, "embed table summaries for find_tables (semantic + BM25 fusion)")
