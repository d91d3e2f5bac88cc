"""``lakeql train-joiner LAKE``: fine-tune the column-embedding model on the lake itself (DeepJoin).

Positive pairs are (text of column A, text of column B) for every pair whose exact containment is at
least ``min_containment`` (from the value index), plus, as DeepJoin augments, (text, text of the same
column with its values shuffled and subsampled). Other pairs of a batch are the negatives
(multiple-negatives ranking loss). The model is saved under ``<index_dir>/joins/joiner`` and the
semantic index and join graph are rebuilt with it; later ``lakeql index`` runs keep using it.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from lakeql.errors import LakeqlError
from lakeql.progress import bar, say


def training_pairs(searcher, min_containment: float, max_pairs: int, seed: int = 0) -> list[tuple[str, str]]:
    """Positive (anchor, positive) texts: high-containment column pairs and shuffled-value copies."""
    import pyarrow.parquet as pq  # noqa: F401 - keeps the import cost visible here

    from lakeql.joins.lakeindex import deepjoin_text

    ix = searcher.ix
    rng = random.Random(seed)
    cols = ix.columns.select(["table_name", "column_name", "n_distinct", "len_min", "len_max", "len_avg",
                              "text", "text_values", "indexed"]).to_pylist()
    pairs: list[tuple[str, str]] = []
    for q, r in enumerate(cols):
        if not r["indexed"] or not r["text"] or r["n_distinct"] < 2:
            continue
        cands, _, cont, _ = searcher.equi_ranked(q, 5)
        for c, ct in zip(cands, cont, strict=True):
            if ct >= min_containment and cols[int(c)]["text"]:
                pairs.append((r["text"], cols[int(c)]["text"]))
    n_real = len(pairs)
    for r in cols:
        if not r["indexed"] or not r["text"] or len(r["text_values"] or []) < 2:
            continue
        vals = list(r["text_values"])
        rng.shuffle(vals)
        vals = vals[: max(2, int(len(vals) * 0.7))]
        pairs.append((r["text"], deepjoin_text(r["table_name"], r["column_name"], r, vals)))
    rng.shuffle(pairs)
    say(f"train-joiner: {n_real} containment pairs + {len(pairs) - n_real} shuffled copies")
    return pairs[:max_pairs]


def fine_tune(base: str | None, pairs: list[tuple[str, str]], out: Path, epochs: int, batch_size: int,
              lr: float = 2e-5, seed: int = 0, max_seq_length: int = 128) -> dict[str, Any]:
    """Train with MultipleNegativesRankingLoss in a plain torch loop and save the model to ``out``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from lakeql import embedding

    torch.manual_seed(seed)
    model = SentenceTransformer(embedding.resolve_model(base), device="cpu", local_files_only=True)
    model.max_seq_length = min(model.max_seq_length or max_seq_length, max_seq_length)
    loss_fn = MultipleNegativesRankingLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    rng = random.Random(seed)
    steps, total = 0, 0.0
    t0 = time.perf_counter()
    pbar = bar(epochs * ((len(pairs) + batch_size - 1) // batch_size), desc="train-joiner", unit="batch")
    for _ in range(epochs):
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for s in range(0, len(order), batch_size):
            batch = [pairs[i] for i in order[s:s + batch_size]]
            if len(batch) < 2:
                continue
            prep = getattr(model, "preprocess", None) or model.tokenize
            feats = [prep([a for a, _ in batch]), prep([b for _, b in batch])]
            loss = loss_fn(feats, torch.empty(0))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            total += float(loss.detach())
            pbar.update(1)
    pbar.close()
    model.eval()
    model.max_seq_length = 256  # train on 128 word pieces (speed), embed with the full 256
    model.save(str(out))
    return {"steps": steps, "mean_loss": total / max(steps, 1), "seconds": time.perf_counter() - t0}


def train_joiner(lake_path: str, index_dir: str | None = None, epochs: int = 1, batch_size: int = 16,
                 max_pairs: int = 2000, min_containment: float = 0.7, base_model: str | None = None,
                 seed: int = 0, max_seq_length: int = 128) -> dict[str, Any]:
    """Fine-tune, save under the index dir, then rebuild the semantic index and the join graph."""
    from lakeql import embedding
    from lakeql.catalog import Catalog
    from lakeql.indexer import BuildContext
    from lakeql.joins import builder
    from lakeql.joins.search import Searcher
    from lakeql.joins.sqlapi import load_index
    from lakeql.lake import discover
    from lakeql.options import IndexOptions
    from lakeql.store import Store

    if epochs <= 0 or batch_size < 2 or max_pairs < 2:
        raise LakeqlError("train-joiner: --epochs must be >= 1, --batch-size >= 2 and --max-pairs >= 2")
    lake = discover(lake_path)
    store = Store.for_lake(lake, index_dir)
    sem = store.find("join_semantic")
    searcher = Searcher(load_index(store), lake.tables)
    pairs = training_pairs(searcher, min_containment, max_pairs, seed)
    if len(pairs) < 2:
        raise LakeqlError("train-joiner: the lake has fewer than 2 indexed columns to learn from: "
                          "index a lake with more tables first")
    base = base_model or (sem.params_dict.get("model") if sem else None)
    target = store.path("joins", "joiner")
    # the joiner's swap and the semantic index's rebuild record into the manifest as a build does: under
    # the build lock, so a `lakeql index` running meanwhile waits instead of interleaving its records
    with store.build_lock(say=say):
        with store.atomic_dir(target) as tmp:
            info = fine_tune(base, pairs, tmp, epochs, batch_size, seed=seed, max_seq_length=max_seq_length)
        clear = getattr(embedding.load_model, "cache_clear", None)
        if clear is not None:  # a model of the same path loaded earlier in this process is now outdated
            clear()
        say(f"train-joiner: {info['steps']} steps, mean loss {info['mean_loss']:.3f}, "
            f"{info['seconds']:.0f} s -> {target}")
        opts = IndexOptions.from_kwargs(joiner_model=str(target), refresh=True, progress=False,
                                        joins_semantic=True)
        ctx = BuildContext(lake, store, Catalog.open(lake, store), opts)
        builder.build(ctx)
    info["pairs"] = len(pairs)
    info["model"] = str(target)
    return info
