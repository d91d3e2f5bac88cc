"""Joinable-table discovery: given a column, find the columns of other lake tables it joins with.

Equi joins from an exact value index (hash of each normalized distinct value -> column, sorted), semantic
joins from DeepJoin column embeddings in faiss plus value-level matching, composite keys, a lake-wide
join graph and an offline fine-tuning command. Nothing heavy is imported here: see builder.py (index),
search.py (queries), sqlapi.py (SQL functions), train.py (``lakeql train-joiner``).
"""

from __future__ import annotations

import argparse
from typing import Any

from lakeql.joins.options import JoinOptions

NAME = "joins"
OPTIONS = JoinOptions
#: manifest kinds this capability makes that others may read (through the store, never its code)
PROVIDES = ("join_graph", "join_pools", "join_index", "join_semantic", "column_profile")


def _norm_sql(expr: str) -> str:
    from lakeql.joins.normalize import norm_sql

    return norm_sql(expr)


#: ``{{norm(x)}}`` in udfs/joins.sql: the value normalization of the join index, from Python
SQL_TEMPLATES = {"norm": _norm_sql}


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("train-joiner", help="fine-tune the column-embedding model of semantic joins "
                                                   "on the lake itself (DeepJoin), then re-embed")
    p.add_argument("lake", help="folder of Parquet files (already indexed)")
    p.add_argument("--index-dir", help="index dir (default: LAKE/.lakeql)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per batch (default 16)")
    p.add_argument("--max-pairs", type=int, default=2000, help="training pairs at most (default 2000)")
    p.add_argument("--min-containment", type=float, default=0.7,
                   help="positive pairs: columns with at least this exact containment (default 0.7)")
    p.add_argument("--max-seq-length", type=int, default=128,
                   help="word pieces per text while training (default 128; embedding uses the model's)")
    p.add_argument("--base-model", help="model to start from (default: the one the index was built with)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or status lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    def handler(args: argparse.Namespace) -> int:
        from lakeql.joins.train import train_joiner

        train_joiner(args.lake, args.index_dir, epochs=args.epochs, batch_size=args.batch_size,
                     max_pairs=args.max_pairs, min_containment=args.min_containment,
                     base_model=args.base_model, max_seq_length=args.max_seq_length)
        return 0

    p.set_defaults(func=handler)


def build(ctx: Any) -> None:
    from lakeql.joins.builder import build as _build

    _build(ctx)


def register(con: Any, ctx: Any) -> None:
    from lakeql.joins.sqlapi import register as _register

    _register(con, ctx)


def demo(con: Any, ctx: Any, out: Any) -> None:
    from lakeql.joins.demo import demo as _demo

    _demo(con, ctx, out)
