"""Transformation joins (Auto-Join, He et al. VLDB 2017): values that match after a string program.

``'b. ruth'`` and ``'babe ruth'``, ``'ruth, babe'`` and ``'babe ruth'``, ``'republic of chad'`` and
``'chad'``, ``'00123'`` and ``'123'`` share no normalized value, so the value index cannot join them. Here:

1. **blocking**: sampled values of both columns become TF-IDF vectors of character 3-grams; each query
   value is paired with its most similar candidate value (a sparse product, no Python loop per pair);
2. **learning**: for each pair, every program that turns one value into the other is enumerated
   (both directions). A program is a concatenation of pieces: the whole value, ``split_part`` by a
   delimiter (from the start or the end), its ``trim``, its first letter (``left(.., 1)``), the value
   without leading zeros, and constant strings between pieces; values are compared lower-cased and
   trimmed (so case changes are free). Programs are counted over the pairs;
3. **verification**: the most supported programs are applied to every sampled value; the one that
   matches the most query values wins, and a second one is kept when it adds at least 5% more
   (Auto-Join's greedy cover). A program that joins fewer than 2 values, or no more than plain
   equality, is not returned.

The winning program is rendered as a DuckDB expression (the ``transform`` column of ``joinable``) and
used in ``join_sql``. A third direction, ``both``, maps each side to a common key (one piece each:
``split_part(q, ';', 1) = trim(split_part(c, '(', 1))``) when neither value derives the other.
:func:`extend` is the hook ``joinable`` calls (see sqlapi.py) to add ``method = 'transform'`` rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lakeql import arrays
from lakeql.lake import key_sql_name, quote_ident, quote_literal

DELIMS = (" ", ",", ".", "-", "_", "@", "/", ";", ":", "(", ")", "|", "'")
MAX_PARTS_EACH_SIDE = 4
MAX_PROGRAMS_PER_PAIR = 400
MAX_PIECES = 5
LEARN_QUERY = 300  # query values paired for learning
LEARN_CAND = 5000  # candidate values they are paired against
VERIFY_QUERY = 2000
VERIFY_CAND = 20000
TOP_PROGRAMS = 6  # per direction, verified on the full samples
MIN_MATCHED = 2
CANDIDATE_COLUMNS = 8
BLOCK_CHARS = 100  # characters of a value whose 3-grams pair it with similar values for learning
SEARCH_BUDGET_S = 5.0  # mode 'transform': candidate columns are tried until this is spent
AUTO_BUDGET_S = 1.0  # mode 'auto' adds at most this much to a joinable call
AUTO_MIN_CONTAINMENT = 0.3  # and only transformations joining this share of the query values
BOTH_MIN_UNIQUENESS = 0.9  # a common key of both sides must be this unique
BOTH_WEIGHT = 0.8  # and is preferred only when it joins clearly more than a one-sided program

Piece = tuple  # ("w",) | ("z",) | ("sp", delim, index, op) with op '' / 't' / 'f' | ("c", text)
Program = tuple  # of pieces


def norm(v: str) -> str:
    """The join normalization in Python (``lower(trim(v))``, DuckDB's trim strips spaces)."""
    return v.strip(" ").lower()


# ---------------------------------------------------------------------- programs
def pieces_of(s: str) -> dict[str, list[Piece]]:
    """Every piece value derivable from ``s`` -> the pieces that derive it."""
    out: dict[str, list[Piece]] = {}

    def add(v: str, p: Piece) -> None:
        if v:
            out.setdefault(v, []).append(p)

    add(s, ("w",))
    if s.startswith("0") and s.lstrip("0"):
        add(s.lstrip("0"), ("z",))
    for d in DELIMS:
        if d not in s:
            continue
        parts = s.split(d)
        n = len(parts)
        for j, part in enumerate(parts):
            idxs = []
            if j < MAX_PARTS_EACH_SIDE:
                idxs.append(j + 1)
            if n - j <= MAX_PARTS_EACH_SIDE:
                idxs.append(-(n - j))
            st = part.strip(" ")
            for i in idxs:
                add(part, ("sp", d, i, ""))
                if st != part:
                    add(st, ("sp", d, i, "t"))
                if st:
                    add(st[:1], ("sp", d, i, "f"))
    return out


def programs_for(src: str, tgt: str) -> set[Program]:
    """All programs (up to a cap) that produce ``tgt`` from ``src`` (both normalized)."""
    pieces = pieces_of(src)
    starts: dict[int, list[tuple[int, Piece]]] = {}
    for v, ps in pieces.items():
        i = tgt.find(v)
        while i >= 0:
            for p in ps:
                starts.setdefault(i, []).append((i + len(v), p))
            i = tgt.find(v, i + 1)
    if not starts:
        return set()
    breaks = sorted(set(starts) | {len(tgt)})
    n_alnum = sum(ch.isalnum() for ch in tgt) or 1
    out: set[Program] = set()

    def walk(p: int, acc: list[Piece], covered: int) -> None:
        if len(out) >= MAX_PROGRAMS_PER_PAIR or len(acc) > MAX_PIECES:
            return
        if p == len(tgt):
            if covered * 3 >= n_alnum and any(x[0] != "c" for x in acc):
                out.add(tuple(acc))
            return
        for end, piece in starts.get(p, ()):
            walk(end, acc + [piece], covered + sum(ch.isalnum() for ch in tgt[p:end]))
        if not acc or acc[-1][0] != "c":
            nxt = next((b for b in breaks if b > p), len(tgt))
            walk(nxt, acc + [("c", tgt[p:nxt])], covered)

    walk(0, [], 0)
    return out


def compile_program(prog: Program) -> Callable[[str], str]:
    """A Python function applying ``prog`` with DuckDB's semantics (``split_part`` out of range -> '')."""
    fns: list[Callable[[str], str]] = []
    for p in prog:
        kind = p[0]
        if kind == "w":
            fns.append(lambda s: s)
        elif kind == "z":
            fns.append(lambda s: s.lstrip("0"))
        elif kind == "c":
            fns.append(lambda s, c=p[1]: c)
        else:
            _, d, i, op = p

            def part(s: str, d: str = d, i: int = i) -> str:
                xs = s.split(d)
                j = i - 1 if i > 0 else len(xs) + i
                return xs[j] if 0 <= j < len(xs) else ""

            if op == "t":
                fns.append(lambda s, f=part: f(s).strip(" "))
            elif op == "f":
                fns.append(lambda s, f=part: f(s).strip(" ")[:1])
            else:
                fns.append(part)
    return lambda s: "".join(f(s) for f in fns)


def program_sql(prog: Program, base: str) -> str:
    """``prog`` as a DuckDB expression over the normalized text ``base``."""
    parts = []
    for p in prog:
        kind = p[0]
        if kind == "w":
            parts.append(base)
        elif kind == "z":
            parts.append(f"ltrim({base}, '0')")
        elif kind == "c":
            parts.append(quote_literal(p[1]))
        else:
            _, d, i, op = p
            e = f"split_part({base}, {quote_literal(d)}, {int(i)})"
            if op == "t":
                e = f"trim({e})"
            elif op == "f":
                e = f"left(trim({e}), 1)"
            parts.append(e)
    return " || ".join(parts)


def norm_expr(ref: str, typ: str) -> str:
    """``lower(trim(ref))`` (with a cast for non-text columns)."""
    inner = ref if typ.upper() == "VARCHAR" else f"CAST({ref} AS VARCHAR)"
    return f"lower(trim({inner}))"


# ---------------------------------------------------------------------- learning
@dataclass
class Learned:
    """The chosen program(s). ``direction``: 'c->q' maps candidate values onto query values, 'q->c'
    the reverse, 'both' maps each side to a common key (``programs`` then holds (query, candidate)
    program pairs)."""

    direction: str
    programs: list[Any]
    matched: int  # query values (of the sample) joined
    n_query: int
    key_uniqueness: float  # distinct transformed keys / transformed values (collisions lower it)
    equal: int  # query values that plain equality already joins
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (query value, candidate value)


def _grams(values: list[str]) -> tuple[Any, Any]:
    """(row of each distinct 3-gram occurrence, its 24-bit code) of ``'#' + value + '#'`` per value.

    Byte 3-grams of the UTF-8 text of the first ``BLOCK_CHARS`` characters (long texts such as
    docstrings would cost millions of grams and are not what a transformation join maps), computed in
    numpy over all values at once (a Python set per value was most of a ``joinable`` call); every gram
    counts once per value.
    """
    import numpy as np

    encoded = [f"#{v[:BLOCK_CHARS]}#".encode("utf-8", "surrogatepass") for v in values]
    b = np.frombuffer(b"".join(encoded), np.uint8).astype(np.int64)
    if len(b) < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    row = np.repeat(np.arange(len(encoded), dtype=np.int64), np.fromiter(map(len, encoded), np.int64,
                                                                        len(encoded)))
    ok = row[:-2] == row[2:]  # grams inside one value only
    codes = (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]
    key = arrays.unique(row[:-2][ok] << 24 | codes[ok])
    return key >> 24, key & 0xFFFFFF


def block_pairs(qvals: list[str], cvals: list[str], limit: int = LEARN_QUERY) -> list[tuple[str, str]]:
    """Each (sampled) query value with its most 3-gram-similar candidate value (TF-IDF cosine)."""
    import numpy as np
    import scipy.sparse as sp

    qs, cs = qvals[:limit], cvals[:LEARN_CAND]
    if not qs or not cs:
        return []
    (qr, qg), (cr, cg) = _grams(qs), _grams(cs)
    grams, col = np.unique(np.concatenate([qg, cg]), return_inverse=True)
    df = np.bincount(col, minlength=len(grams))
    idf = (np.log((len(qs) + len(cs) + 1) / (df + 1)) + 1.0).astype(np.float32)
    ones = np.ones(len(col), np.float32)
    q = sp.csr_matrix((ones[:len(qg)], (qr, col[:len(qg)])), shape=(len(qs), len(grams)))
    c = sp.csr_matrix((ones[len(qg):], (cr, col[len(qg):])), shape=(len(cs), len(grams)))

    def l2(m):
        m = m @ sp.diags(idf)
        n = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        n[n == 0] = 1
        return sp.diags(1 / n) @ m

    sim = (l2(q) @ l2(c).T).tocsr()
    out = []
    for i in range(len(qs)):
        a, b = sim.indptr[i], sim.indptr[i + 1]
        if a == b:
            continue
        j = int(sim.indices[a + int(np.argmax(sim.data[a:b]))])
        if sim.data[a:b].max() >= 0.15 and qs[i] != cs[j]:
            out.append((qs[i], cs[j]))
    return out


def common_keys(qv: str, cv: str) -> set[tuple[Program, Program]]:
    """(query piece, candidate piece) pairs deriving one common value (of 3+ characters)."""
    pq, pc = pieces_of(qv), pieces_of(cv)
    out = set()
    for v in pq.keys() & pc.keys():
        if len(v) >= 3 and any(ch.isalpha() for ch in v):
            for a in pq[v]:
                for b in pc[v]:
                    if not (a == ("w",) and b == ("w",)):
                        out.add(((a,), (b,)))
    return out


def _uniq(keys: list[str]) -> float:
    nonempty = [k for k in keys if k]
    return len(set(nonempty)) / len(nonempty) if nonempty else 0.0


def _verify(direction: str, prog: Any, qvals: list[str], cvals: list[str], qset: set[str], cset: set[str]
            ) -> tuple[set[str], float]:
    """(query values the program joins, uniqueness of its keys) on the samples."""
    if direction == "c->q":
        f = compile_program(prog)
        keys = [f(v) for v in cvals]
        return qset.intersection(keys), _uniq(keys)
    if direction == "q->c":
        f = compile_program(prog)
        keys = [f(v) for v in qvals]
        return {qv for qv, k in zip(qvals, keys, strict=True) if k and k in cset}, _uniq(keys)
    fq, fc = compile_program(prog[0]), compile_program(prog[1])
    ckeys = [fc(v) for v in cvals]
    cks = set(ckeys)
    qkeys = [fq(v) for v in qvals]
    return ({qv for qv, k in zip(qvals, qkeys, strict=True) if k and k in cks},
            min(_uniq(ckeys), _uniq(qkeys)))


def learn(qvals_raw: list[str], cvals_raw: list[str]) -> Learned | None:
    """The best transformation program(s) joining query values to candidate values, or None."""
    qvals = list(dict.fromkeys(x for x in (norm(str(v)) for v in qvals_raw) if x))[:VERIFY_QUERY]
    cvals = list(dict.fromkeys(x for x in (norm(str(v)) for v in cvals_raw) if x))[:VERIFY_CAND]
    if len(qvals) < MIN_MATCHED or not cvals:
        return None
    pairs = block_pairs(qvals, cvals)
    if not pairs:
        return None
    support: dict[str, Counter] = {"c->q": Counter(), "q->c": Counter(), "both": Counter()}
    for qv, cv in pairs:
        support["c->q"].update(programs_for(cv, qv))
        support["q->c"].update(programs_for(qv, cv))
        support["both"].update(common_keys(qv, cv))
    cset, qset = set(cvals), set(qvals)
    equal = len(qset & cset)
    best: Learned | None = None
    best_rank = (0.0, 0.0)
    for direction, cnt in support.items():
        progs = [p for p, n in cnt.most_common(TOP_PROGRAMS * 4) if n >= 2 and p != (("w",),)][:TOP_PROGRAMS]
        if not progs:
            continue
        hits = [(p, *_verify(direction, p, qvals, cvals, qset, cset)) for p in progs]
        # the program joining the most values, discounted by key collisions (a first-name key joins
        # many values, wrongly); shorter programs first on ties
        hits.sort(key=lambda h: (-len(h[1]) * h[2] ** 2, _size(h[0])))
        p0, h0, u0 = hits[0]
        chosen, covered, uniq = [p0], set(h0), u0
        for p, h, u in hits[1:] if direction != "both" else []:  # one common key only: precision
            if len(h - covered) >= max(2, 0.05 * len(qvals)) and u >= 0.8 * u0:
                chosen.append(p)
                covered |= h
                break
        if len(covered) < MIN_MATCHED or len(covered) <= equal:
            continue
        if direction == "both" and uniq < BOTH_MIN_UNIQUENESS:
            continue  # a shared first name or last word: too many wrong rows
        rank = (len(covered) * uniq ** 2 * (BOTH_WEIGHT if direction == "both" else 1.0), -float(len(chosen)))
        if best is None or rank > best_rank:
            best, best_rank = Learned(direction, chosen, len(covered), len(qvals), uniq, equal), rank
    if best is not None:
        best.pairs = sample_pairs(best, qvals, cvals)
    return best


_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _changes_numbers(lr: Learned) -> bool:
    """Whether ``lr`` maps numbers onto other numbers (``'1' || x``: a delay of 0 minutes "joins" flight
    10, trial13): between numeric values only a change of format (``7`` ~ ``007``, ``7.0``) is a join."""
    nums = [(a, b) for a, b in lr.pairs if _NUMBER.match(a) and _NUMBER.match(b)]
    # Decimal, not float: ids of 17+ digits differing in their last digits are equal floats (review37)
    return bool(nums) and len(nums) == len(lr.pairs) and any(Decimal(a) != Decimal(b) for a, b in nums)


def _size(prog: Any) -> int:
    return sum(len(p) for p in prog) if prog and isinstance(prog[0][0], tuple) else len(prog)


def sample_pairs(lr: Learned, qvals: list[str], cvals: list[str], n: int = 3) -> list[tuple[str, str]]:
    """A few (query value, candidate value) pairs the program joins (for ``sample_matches``)."""
    out: list[tuple[str, str]] = []
    if lr.direction == "c->q":
        qset = set(qvals)
        fs = [compile_program(p) for p in lr.programs]
        for cv in cvals:
            k = next((k for k in (f(cv) for f in fs) if k in qset and k != cv), None)
            if k is not None:
                out.append((k, cv))
            if len(out) >= n:
                break
        return out
    if lr.direction == "q->c":
        cset = set(cvals)
        fs = [compile_program(p) for p in lr.programs]
        for qv in qvals:
            k = next((k for k in (f(qv) for f in fs) if k in cset and k != qv), None)
            if k is not None:
                out.append((qv, k))
            if len(out) >= n:
                break
        return out
    for pq, pc in lr.programs:
        fq, fc = compile_program(pq), compile_program(pc)
        by_key = {}
        for cv in cvals:
            by_key.setdefault(fc(cv), cv)
        for qv in qvals:
            k = fq(qv)
            if k and k in by_key:
                out.append((qv, by_key[k]))
            if len(out) >= n:
                return out
    return out


# ---------------------------------------------------------------------- SQL
def _name(t: str, tables: dict | None = None) -> str:
    return key_sql_name(t, tables)


def key_exprs(lr: Learned, qref: str, qtype: str, cref: str, ctype: str) -> tuple[list[str], list[str]]:
    """(query-side key expressions, candidate-side key expressions), one per program (or shared)."""
    qn, cn = norm_expr(qref, qtype), norm_expr(cref, ctype)
    if lr.direction == "c->q":
        return [qn], [program_sql(p, cn) for p in lr.programs]
    if lr.direction == "q->c":
        return [program_sql(p, qn) for p in lr.programs], [cn]
    return [program_sql(p, qn) for p, _ in lr.programs], [program_sql(p, cn) for _, p in lr.programs]


def transform_text(lr: Learned, qcol: str, qtype: str, ccol: str, ctype: str) -> str:
    """The join condition in readable SQL (``q`` the query table, ``c`` the candidate)."""
    qk, ck = key_exprs(lr, f"q.{quote_ident(qcol)}", qtype, f"c.{quote_ident(ccol)}", ctype)
    if lr.direction == "both":
        return " OR ".join(f"{a} = {b}" for a, b in zip(qk, ck, strict=True))
    if len(qk) == 1 and len(ck) == 1:
        return f"{qk[0]} = {ck[0]}"
    if len(qk) == 1:
        return f"{qk[0]} IN ({', '.join(ck)})"
    return f"{ck[0]} IN ({', '.join(qk)})"


def join_sql(lr: Learned, qt: str, qcol: str, qtype: str, ct: str, ccol: str, ctype: str,
             tables: dict | None = None) -> str:
    """A runnable join of the two tables through the learned program(s): an equality (hash) join on
    one key per side; several programs unnest their keys first."""
    qk, ck = key_exprs(lr, quote_ident(qcol), qtype, quote_ident(ccol), ctype)
    if lr.direction == "both" or (len(qk) == 1 and len(ck) == 1):
        qkey = qk[0] if len(qk) == 1 else "unnest(list_distinct([" + ", ".join(qk) + "]))"
        ckey = ck[0] if len(ck) == 1 else "unnest(list_distinct([" + ", ".join(ck) + "]))"
        if len(qk) == 1 and len(ck) == 1:
            qk1, ck1 = key_exprs(lr, f"q.{quote_ident(qcol)}", qtype, f"c.{quote_ident(ccol)}", ctype)
            return (f"SELECT * FROM {_name(qt, tables)} AS q JOIN {_name(ct, tables)} AS c "
                    f"ON {qk1[0]} = {ck1[0]}")
        return (f"SELECT q.* EXCLUDE (__key), c.* EXCLUDE (__key) FROM (SELECT *, {qkey} AS __key FROM "
                f"{_name(qt, tables)}) AS q JOIN (SELECT *, {ckey} AS __key FROM {_name(ct, tables)}) AS c "
                "ON q.__key = c.__key")
    if len(qk) == 1:  # several candidate-side programs
        return (f"SELECT q.*, c.* EXCLUDE (__key) FROM {_name(qt, tables)} AS q JOIN (SELECT *, "
                f"unnest(list_distinct([{', '.join(ck)}])) AS __key FROM {_name(ct, tables)}) AS c "
                f"ON {norm_expr('q.' + quote_ident(qcol), qtype)} = c.__key")
    return (f"SELECT q.* EXCLUDE (__key), c.* FROM (SELECT *, unnest(list_distinct([{', '.join(qk)}])) "
            f"AS __key FROM {_name(qt, tables)}) AS q JOIN {_name(ct, tables)} AS c "
            f"ON q.__key = {norm_expr('c.' + quote_ident(ccol), ctype)}")


# ---------------------------------------------------------------------- joinable hook
def candidate_columns(ctx, s, q: int, found: list[Any]) -> list[int]:
    """Join-index ids of columns worth a transformation search: those sharing the most value words
    with the query (discovery token postings), then the semantic/equi candidates already found."""
    import zlib

    import numpy as np

    ix = s.ix
    out: list[int] = []
    try:
        from lakeql.joins.union_store import load

        dix = load(ctx)
    except Exception:  # noqa: BLE001 - without the discovery index, use the candidates found
        dix = None
    if dix is not None and len(dix.tok_hash):
        from lakeql.joins import union_text as tx

        vals = s.distinct_values(q, LEARN_QUERY)
        toks = sorted({zlib.crc32(w.encode()) for v in vals for w in tx.value_words(str(v)) if len(w) >= 2})
        if toks:
            probe = np.asarray(toks, dtype=np.uint32)
            lo = np.searchsorted(dix.tok_hash, probe, "left")
            hi = np.searchsorted(dix.tok_hash, probe, "right")
            lens = hi - lo
            if lens.sum():
                idx = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True) if b > a])
                cols, counts = np.unique(np.asarray(dix.tok_col[idx]), return_counts=True)
                qtab = ix.table_name[q]
                for dc in cols[np.argsort(-counts, kind="stable")]:
                    key = (dix.table_name[int(dc)], dix.column_name[int(dc)])
                    c = ix.by_name.get(key)
                    if c is None or key[0] == qtab or not ix.indexed[c] or ix.excluded[c] or c in out:
                        continue  # excluded: a table changed or removed since the build
                    out.append(c)
                    if len(out) >= CANDIDATE_COLUMNS:
                        break
    for cand in found:
        c = ix.by_name.get((cand.table, cand.columns[0])) if len(cand.columns) == 1 else None
        if c is not None and c not in out and len(out) < CANDIDATE_COLUMNS + 4:
            out.append(c)
    return out


def search(ctx, s, q: int, k: int, found: list[Any], budget_s: float = SEARCH_BUDGET_S) -> list[Any]:
    """``method = 'transform'`` candidates of join-index column ``q`` (Candidate objects of search.py);
    candidate columns are tried best first until ``budget_s`` seconds are spent."""
    import time

    from lakeql.joins import rank
    from lakeql.joins.search import QUERY_VALUES, Candidate

    ix = s.ix
    if ix.type_class[q] not in ("text", "int"):
        return []
    t0 = time.perf_counter()
    qvals = s.distinct_values(q, QUERY_VALUES)
    out = []
    for c in candidate_columns(ctx, s, q, found):
        if time.perf_counter() - t0 > budget_s:
            break
        if ix.type_class[c] not in ("text", "int"):
            continue
        lr = learn(qvals, s.distinct_values(c, VERIFY_CAND))
        if lr is None or _changes_numbers(lr):
            continue
        cont = lr.matched / lr.n_query
        ev = rank.name_similarity(ix.column_name[q], ix.column_name[c], ix.table_name[c])
        uniq = min(float(ix.uniqueness[c]) if lr.direction == "c->q" else 1.0, lr.key_uniqueness)
        sc = float(rank.score(cont, uniq, ev)) * 0.97
        qt, ct = ix.table_name[q], ix.table_name[c]
        key = transform_text(lr, ix.column_name[q], ix.type[q], ix.column_name[c], ix.type[c])
        sql = join_sql(lr, qt, ix.column_name[q], ix.type[q], ct, ix.column_name[c], ix.type[c], s.tables)
        cand = Candidate(ct, [ix.column_name[c]], sc, cont, float(ix.uniqueness[c]), "transform",
                         list(lr.pairs), sql)
        cand.transform = key
        out.append(cand)
    out.sort(key=lambda x: (-x.score, -x.containment))
    return out[:k]


def extend(ctx, s, ids: list[int], k: int, mode: str, found: list[Any]) -> list[Any]:
    """The ``joinable`` hook: add transformation candidates to ``found`` (mode 'transform', or 'auto'
    when no strong equi candidate exists); a transform row replaces an equal-column row it beats."""
    if len(ids) != 1 and mode == "transform":
        from lakeql.errors import LakeqlError

        raise LakeqlError("joinable: transformations are learned for one column; search a composite key "
                          "with mode 'equi' or 'auto'")
    if len(ids) != 1 or mode not in ("auto", "transform"):
        return found
    q = ids[0]
    if mode == "auto":
        strong = sum(1 for c in found if c.method == "equi" and c.containment >= 0.9 and c.uniqueness >= 0.9)
        if strong >= min(k, 3) or s.ix.type_class[q] != "text":
            return found
    if mode == "transform":
        return search(ctx, s, q, k, found)
    extra = [c for c in search(ctx, s, q, k, found, AUTO_BUDGET_S) if c.containment >= AUTO_MIN_CONTAINMENT]
    best = {(c.table, ", ".join(c.columns)): c for c in found}
    for c in extra:
        key = (c.table, ", ".join(c.columns))
        old = best.get(key)
        if old is None or c.containment > old.containment + 0.05:
            best[key] = c
    return sorted(best.values(), key=lambda x: (-x.score, -x.containment))[:k]
