"""Options of binarized vector search (``--embed TABLE.COLUMN`` and how the codes are made)."""

from __future__ import annotations

from dataclasses import dataclass

from lakeql.options import option
from lakeql.vectors.binarizers import DEFAULT_METHOD, METHODS


@dataclass
class VectorOptions:
    """Which text columns to embed, with which model, binarizer and rescoring tier."""

    embed: list[str] = option([], "embed this text column for semantic_search() (repeatable)",
                              metavar="TABLE.COLUMN", repeat=True)
    model: str | None = option(None, "sentence-transformers model folder or name (default: the "
                                     "packaged all-MiniLM-L6-v2)", metavar="PATH_OR_NAME")
    embed_method: str = option(DEFAULT_METHOD, "binarizer of the codes", choices=METHODS)
    embed_backend: str = option("auto", "encoder of the texts: auto (default: onnx for the packaged model "
                                        "and other BERT mean-pooling folders, else torch; a column already "
                                        "embedded keeps its encoder), onnx (float32 ONNX Runtime graph, "
                                        "exported once per machine and cached: torch's vectors within 1e-6, "
                                        "2-3x faster on a CPU, and queries never import torch), onnx-int8 "
                                        "(the same graph quantized: faster still, vectors move slightly "
                                        "with their batch), onnx-int8-token (int8 with a scale per token: "
                                        "batch invariant, mean cosine 0.998 to torch), onnx-int8-outlier "
                                        "(the same with the model's outlier channels in float: mean cosine "
                                        "0.999), torch (float32 PyTorch), torch-int8",
                                choices=("auto", "onnx", "onnx-int8", "onnx-int8-token", "onnx-int8-outlier",
                                         "torch", "torch-int8"))
    device: str = option("auto", "where the encoder runs: auto (a CUDA GPU when usable, else the CPU), cpu "
                                 "or cuda (an error without a GPU)", choices=("auto", "cpu", "cuda"))
    embed_batch_size: int = option(64, "texts per encoder batch", metavar="N", bounds=(1, 65536))
    embed_bm25: bool = option(False, "also index the words of embedded text columns (BM25) for "
                                     "hybrid_search()")
    embed_rescore: str = option("int8", "rescoring tier stored beside the codes (int8: 384 B/row for "
                                        "MiniLM, the index 0.29x float32; float16 768 B/row, 0.54x)",
                                choices=("int8", "float16", "float32"))
    embed_refine_bits: int = option(0, "refinement bits a dimension stored beside the int8 tier (0-4; each "
                                       "48 B/row for MiniLM, 2: +0.06x float32): the final step rescores "
                                       "the rows near the k-th score at 8 + N bits (for lakes of "
                                       "near-duplicates)", metavar="N", bounds=(0, 4))
    embed_ann: bool = option(False, "also build ANN lists (a binary IVF over the codes) so semantic_search "
                                    "probes a few lists instead of every code; for tables of millions of "
                                    "rows (exact := true still scans every code)")
    embed_ann_lists: int = option(0, "lists of the ANN index (0: about sqrt(rows), a power of two)",
                                  metavar="N", bounds=(0, 2**24))
