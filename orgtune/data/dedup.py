"""Exact and near-duplicate detection (MinHash LSH from datasketch) for examples and probe leakage.

keep, removed = dedup_rows(rows)                            # drop exact and near-duplicate examples
leaks = leakage([p["plain_question"] for p in probes], [user text of every train/val row])
"""

from __future__ import annotations

import re

from datasketch import MinHash, MinHashLSH

NEAR = 0.8  # Jaccard similarity of word shingles at or above which two texts count as near-duplicates
_PREFIX = re.compile(r"^\[[A-Z]+\]\s*")


def normalise(text: str) -> str:
    text = _PREFIX.sub("", text.strip())
    return " ".join(re.findall(r"[a-z0-9]+(?:[.,][0-9]+)?", text.lower()))


def shingles(text: str, n: int = 3) -> set[str]:
    w = normalise(text).split()
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _minhash(sh: set[str]) -> MinHash:
    m = MinHash(num_perm=128, seed=1)
    for s in sh:
        m.update(s.encode())
    return m


def near_pairs(queries: list[str], corpus: list[str], threshold: float = NEAR) -> list[tuple[int, int, float]]:
    """(query index, corpus index, jaccard) for every query that is a near-duplicate of a corpus text."""
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    corpus_sh = [shingles(t) for t in corpus]
    for i, sh in enumerate(corpus_sh):
        if sh:
            lsh.insert(str(i), _minhash(sh))
    out = []
    for qi, q in enumerate(queries):
        sh = shingles(q)
        if not sh:
            continue
        for key in lsh.query(_minhash(sh)):
            j = jaccard(sh, corpus_sh[int(key)])
            if j >= threshold:
                out.append((qi, int(key), j))
    return out


def _row_text(row: dict) -> str:
    return " || ".join(m["content"] for m in row["messages"])


def dedup_rows(rows: list[dict], threshold: float = NEAR) -> tuple[list[dict], dict[str, int]]:
    """Drop exact duplicates (same normalised question and answer) and near-duplicates (question and
    answer each at or above `threshold` similarity to an earlier row's). Different phrasings of one
    fact share an answer but not a question, so they are kept. Returns (kept, counts)."""
    seen: dict[str, dict] = {}
    exact_kept = []
    exact = 0
    for r in rows:
        key = normalise(_row_text(r))
        if key in seen:
            exact += 1
            _absorb(seen[key], r)
            continue
        seen[key] = r
        exact_kept.append(r)
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    kept, kept_sh, near = [], [], 0
    for r in exact_kept:
        q, a = shingles(r["messages"][0]["content"]), shingles(r["messages"][-1]["content"])
        m = _minhash(q)
        twin = next(
            (
                int(k)
                for k in lsh.query(m)
                if jaccard(q, kept_sh[int(k)][0]) >= threshold and jaccard(a, kept_sh[int(k)][1]) >= threshold
            ),
            None,
        )
        if twin is not None:
            near += 1
            _absorb(kept[twin], r)
            continue
        lsh.insert(str(len(kept)), m)
        kept.append(r)
        kept_sh.append((q, a))
    return kept, {"exact": exact, "near": near}


def _absorb(kept: dict, dropped: dict) -> None:
    """The kept row teaches what its duplicate taught: the same statement of a fact that two documents
    (or two spans) both make. Its fact ids join the kept row's, so coverage counts them."""
    if "fact_ids" in kept and dropped.get("fact_ids"):
        kept["fact_ids"] = list(dict.fromkeys([*kept["fact_ids"], *dropped["fact_ids"]]))


def leakage(probe_questions: list[str], train_questions: list[str], threshold: float = NEAR) -> dict[int, str]:
    """Probes whose question equals (normalised) or nearly equals a training question: index -> reason."""
    exact = {normalise(t) for t in train_questions}
    found = {i: "exact" for i, q in enumerate(probe_questions) if normalise(q) in exact}
    for qi, _ci, j in near_pairs(probe_questions, train_questions, threshold):
        found.setdefault(qi, f"near-duplicate (jaccard {j:.2f}) of a training question")
    return found
