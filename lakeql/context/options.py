"""Options of the schema files for agents (written into ``INDEX_DIR/schemas`` by ``lakeql index``)."""

from __future__ import annotations

from dataclasses import dataclass

from lakeql.options import option

FORMATS = ("yaml", "md", "json", "toon")
DOMAIN_SIZE = 250


@dataclass
class ContextOptions:
    """Whether and how schema files are written, and whether they are embedded at index time."""

    schemas: bool = option(True, "write schema files for agents")
    schemas_format: str = option("yaml", "format of the table files", choices=FORMATS)
    schemas_embed: bool = option(False, "embed the schema files at index time (default: the first "
                                        "schema_context call embeds them and caches the vectors)")
    schemas_embed_backend: str = option("auto", "encoder of the schema-file embeddings: auto (default: "
                                        "onnx, the float32 ONNX Runtime export of MiniLM: torch's vectors, "
                                        "faster, no torch import; torch if the export fails), onnx, "
                                        "onnx-int8, onnx-int8-token, onnx-int8-outlier, torch, torch-int8",
                                        choices=("auto", "onnx", "onnx-int8", "onnx-int8-token",
                                                 "onnx-int8-outlier", "torch", "torch-int8"))
    schemas_domain_size: int = option(DOMAIN_SIZE, "split flat lakes (and bigger domains) into "
                                                   "domains of at most N tables", metavar="N",
                                      bounds=(2, 10**9))
