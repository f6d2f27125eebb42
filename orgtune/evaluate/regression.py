"""Did fine-tuning break general ability? A small bundled set of general instructions, answered by the
base and the tuned model, compared by one simple rule.

    result = compare(base_answers, tuned_answers, items)   # items from load_general()

Rule: an answer is right when it contains one of the item's keywords (whole word, any case) and does
not degenerate (the same 4-word sequence three or more times). A tuned answer is *worse* when the base
answer was right and the tuned one is not; *better* the other way round. On a small model many greedy
answers sit near a tie and any change of the weights flips some either way, so the result also carries
`sign_p`: the two-sided exact sign test of worse against better (a small p: the flips lean one way more
than chance would make them; p near 1: as many got better as worse).
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
