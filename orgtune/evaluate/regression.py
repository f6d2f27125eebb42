"""Did fine-tuning break general ability? A small bundled set of general instructions, answered by the
base and the tuned model, compared by one simple rule.

    result = compare(base_answers, tuned_answers, items)   # items from load_general()

Rule: an answer is right when it contains one of the item's keywords (whole word, any case) and does
not degenerate (the same 4-word sequence three or more times). A tuned answer is *worse* when the base
answer was right and the tuned one is not; *better* the other way round. On a small model many greedy
answers sit near a tie and any change of the weights flips some either way, so the result also carries
`sign_p`: the two-sided exact sign test of worse against better (a small p: the flips lean one way more
than chance would make them; p near 1: as many got better as worse).

The sampled rule (`compare_sampled_answers`, `orgtune eval`'s headline): each item is answered K times
by sampling, the same seeds for base and tuned, and an item is worse only when its count of right answers
fell by a one-sided Fisher exact test at p < 0.05. One greedy answer per item flips with any change of the
weights (an adapter scaled down until it has learnt nothing still gets 9 of 122 items "worse" on the
embedded model); the sampled rule's floor, the base against itself with other seeds, is 0 items worse.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from orgtune import atomic
from orgtune.home import home

RULE = (
    "right = contains one of the item's keywords (whole word, any case) and no 4-word sequence repeats "
    "3+ times; worse = base right and tuned not; better = tuned right and base not"
)


def load_general() -> list[dict]:
    text = resources.files("orgtune.evaluate").joinpath("general.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def base_answers(
    model_dir: Path, items: list[dict], how: dict, answer: Callable[[], list[str]], log=print
) -> list[str]:
    """The base model's answers to the general check, cached under ORGTUNE_HOME/general/ by its weights,
    the items and the generation settings (`how`): every run on one base is compared with the same answers,
    and evaluating a second run does not answer them again."""
    from orgtune.models.loading import weights_stamp

    key = hashlib.sha256(json.dumps([weights_stamp(model_dir), items, how], sort_keys=True).encode()).hexdigest()[:16]
    path = home() / "general" / f"base-answers-{Path(model_dir).name}-{key}.json"
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, list) and len(cached) == len(items):
            log(f"general check: the base model's answers from {path}")
            return cached
    answers = answer()
    atomic.write_json(path, answers)
    return answers


def degenerate(answer: str) -> bool:
    w = re.findall(r"\w+", answer.lower())
    grams = [" ".join(w[i : i + 4]) for i in range(len(w) - 3)]
    return any(grams.count(g) >= 3 for g in set(grams))


def right(item: dict, answer: str) -> bool:
    return not degenerate(answer) and any(
        re.search(rf"(?<!\w){re.escape(k.lower())}(?!\w)", answer.lower()) for k in item["keywords"]
    )


def sign_test(worse: int, better: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if each flipped item were
    equally likely to go either way. 1.0 when nothing flipped."""
    n, k = worse + better, min(worse, better)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def fisher_lower(a: int, b: int, k: int) -> float:
    """One-sided Fisher exact test for two counts of right answers out of k samples each: the chance that
    the first count is as low as `a` or lower, given a + b right of the 2k answers."""
    n = a + b
    hits = sum(math.comb(n, i) * math.comb(2 * k - n, k - i) for i in range(max(0, n - k), a + 1))
    return hits / math.comb(2 * k, k)


def compare_sampled(base: list[int], tuned: list[int], k: int, alpha: float = 0.05) -> dict:
    """Per item, the count of right answers among k sampled ones, base against tuned: an item is worse (or
    better) only when its count moved by a one-sided Fisher exact test at `alpha`. A steadier rule than
    one greedy answer per item, whose near-ties flip under any change of the weights."""
    pairs = list(zip(base, tuned, strict=True))
    return {
        "samples": k,
        "worse": sum(fisher_lower(t, b, k) < alpha for b, t in pairs),
        "better": sum(fisher_lower(b, t, k) < alpha for b, t in pairs),
        "mean_base": round(sum(base) / (k * len(pairs)), 4) if pairs else None,
        "mean_tuned": round(sum(tuned) / (k * len(pairs)), 4) if pairs else None,
    }


SAMPLED_RULE = (
    "each item answered {k} times by sampling (temperature {t}, top-p 1, the same seeds for base and tuned), each "
    "answer judged right as in the greedy rule; worse = the tuned model's count of right answers is lower than the "
    "base's by a one-sided Fisher exact test at p < {alpha}; better = the same the other way round"
)


def compare_sampled_answers(
    base: list[list[str]], tuned: list[list[str]], items: list[dict], *, temperature: float, alpha: float = 0.05
) -> dict:
    """The sampled rule on K answers per item from each model: the counts compared by `compare_sampled`,
    plus per item its counts, and for items that moved a right base answer and a wrong tuned one."""
    k = len(base[0]) if base else 0
    rows = []
    for item, bs, ts in zip(items, base, tuned, strict=True):
        if len(bs) != k or len(ts) != k:
            raise ValueError(f"general item {item['id']}: {len(bs)} base and {len(ts)} tuned answers, expected {k}")
        b_ok, t_ok = [right(item, a) for a in bs], [right(item, a) for a in ts]
        b, t = sum(b_ok), sum(t_ok)
        row = {"id": item["id"], "question": item["question"], "base_right": b, "tuned_right": t}
        row["worse"], row["better"] = fisher_lower(t, b, k) < alpha, fisher_lower(b, t, k) < alpha
        if row["worse"] or row["better"]:
            row["base_example"] = next((a for a, ok in zip(bs, b_ok, strict=True) if ok == row["worse"]), bs[0])
            row["tuned_example"] = next((a for a, ok in zip(ts, t_ok, strict=True) if ok == row["better"]), ts[0])
        rows.append(row)
    counts = compare_sampled([r["base_right"] for r in rows], [r["tuned_right"] for r in rows], k, alpha)
    return {
        "rule": SAMPLED_RULE.format(k=k, t=temperature, alpha=alpha),
        "total": len(rows),
        "temperature": temperature,
        "alpha": alpha,
        **counts,
        "rows": rows,
    }


def compare(base: list[str], tuned: list[str], items: list[dict]) -> dict:
    rows = []
    for item, b, t in zip(items, base, tuned, strict=True):
        rows.append(
            {
                "id": item["id"],
                "question": item["question"],
                "base": b,
                "tuned": t,
                "base_right": right(item, b),
                "tuned_right": right(item, t),
            }
        )
    worse = sum(r["base_right"] and not r["tuned_right"] for r in rows)
    better = sum(r["tuned_right"] and not r["base_right"] for r in rows)
    return {
        "rule": RULE,
        "total": len(rows),
        "base_right": sum(r["base_right"] for r in rows),
        "tuned_right": sum(r["tuned_right"] for r in rows),
        "worse": worse,
        "better": better,
        "sign_p": round(sign_test(worse, better), 4),
        "changed": sum(r["base"].strip() != r["tuned"].strip() for r in rows),
        "rows": rows,
    }
