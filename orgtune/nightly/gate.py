"""The eval gate: a night's candidate is scored on the probes of every document so far (new and old)
and on the general check, next to the promoted model (whose figures on the same probes were recorded at
its own gate, so only the candidate answers), and promoted only if

    new documents' trained-fact accuracy  ≥ threshold
    earlier documents' accuracy drop      ≤ old_margin     (accuracy points, against the promoted model)
    general check                         ≤ general_margin (share of its items, against the promoted model,
                                                            or the base model on the first night): items worse
                                                            by the sampled rule (general_samples answers per
                                                            item, as `orgtune eval`), or with general_samples
                                                            0 the drop in greedy right answers

Held-out facts' confident-wrong rate is reported, and for every fact whose value changed, whether the
candidate's answer still states the old value.
"""

from __future__ import annotations

import time
from pathlib import Path

from orgtune.data.probes import value_in_text
from orgtune.evaluate.regression import compare_sampled, load_general, right
from orgtune.evaluate.run import answer_probes
from orgtune.evaluate.score import score_probe
from orgtune.generate.hf import HFBackend
from orgtune.generate.settings import GenerationSettings


def general_items(limit: int | None) -> list[dict]:
    items = load_general()
    return items[:limit] if limit else items


def general_check(
    model, tok, items: list[dict], *, use_adapter: bool, samples: int = 0, temperature: float = 0.7
) -> dict:
    """One greedy answer per item, judged right or not; with `samples`, also that many sampled answers per item
    (seed 0 for every model, as `orgtune eval` draws them) and each item's count of right ones."""
    backend = HFBackend(
        model,
        tok,
        name="general",
        use_adapter=use_adapter,
        settings=GenerationSettings(max_new_tokens=64, batch_size=16),
    )
    asks = [[{"role": "user", "content": g["question"]}] for g in items]
    answers = backend.answer(asks)
    per_item = {g["id"]: right(g, a) for g, a in zip(items, answers, strict=True)}
    out = {
        "items": len(items),
        "right": sum(per_item.values()),
        "per_item": per_item,
        "answers": dict(zip((g["id"] for g in items), answers, strict=True)),
    }
    if samples:
        drawn = backend.answer(
            [a for a in asks for _ in range(samples)],
            GenerationSettings(max_new_tokens=64, batch_size=16, temperature=temperature, seed=0),
        )
        out["samples"] = samples
        out["sampled_right"] = {
            g["id"]: sum(right(g, a) for a in drawn[i * samples : (i + 1) * samples]) for i, g in enumerate(items)
        }
    return out


def general_figures(general: dict, ref: dict) -> dict:
    """The candidate's general check against the reference's: greedy right counts and items worse; when both
    hold sampled counts of the same K, the sampled rule's items worse and better (regression.compare_sampled)."""
    out = {
        "items": general["items"],
        "right": general["right"],
        "reference": ref["right"],
        "worse": sum(1 for k, ok in ref["per_item"].items() if ok and not general["per_item"].get(k, False)),
    }
    k = general.get("samples")
    if k and ref.get("samples") == k and ref["sampled_right"].keys() == general["sampled_right"].keys():
        ids = list(ref["sampled_right"])
        c = compare_sampled([ref["sampled_right"][i] for i in ids], [general["sampled_right"][i] for i in ids], k)
        out["sampled"] = {key: c[key] for key in ("samples", "worse", "better", "mean_base", "mean_tuned")}
    return out


def score_candidate(model, tok, probes: list[dict]) -> dict[str, dict]:
    backend = HFBackend(model, tok, name="candidate", settings=GenerationSettings(batch_size=16))
    answers = answer_probes(backend, probes, GenerationSettings(batch_size=16))
    out = {}
    for p, a in zip(probes, answers, strict=True):
        s = score_probe(p, a)
        out[p["probe_id"]] = {"correct": s.correct, "abstained": s.abstained, "answer": a}
    return out


def _acc(results: dict[str, dict], ids: list[str]) -> float | None:
    return sum(results[i]["correct"] for i in ids) / len(ids) if ids else None


def decide(
    *,
    probes: list[dict],
    candidate: dict[str, dict],
    reference: dict[str, dict] | None,
    general: dict,
    general_ref: dict,
    changed: list[dict],
    settings,
) -> dict:
    trained = [p for p in probes if not p["held_out"]]
    new = [p["probe_id"] for p in trained if p["nightly"]["group"] == "new"]
    old = [p["probe_id"] for p in trained if p["nightly"]["group"] == "old"]
    held = [p["probe_id"] for p in probes if p["held_out"]]
    figures = {
        "new": {"n": len(new), "accuracy": _acc(candidate, new)},
        "old": {
            "n": len(old),
            "accuracy": _acc(candidate, old),
            "promoted": _acc(reference, old) if reference and all(i in reference for i in old) else None,
        },
        "general": general_figures(general, general_ref),
        "held_out": {
            "n": len(held),
            "confident_wrong": sum(not candidate[i]["correct"] and not candidate[i]["abstained"] for i in held),
        },
    }
    by_fact = {p["fact_id"]: p for p in probes}
    stale = []
    for c in changed:
        p = by_fact.get(c["fact_id"])
        if p is not None and len(c["old"]) <= 40 and value_in_text(c["old"], candidate[p["probe_id"]]["answer"]):
            stale.append({**c, "answer": candidate[p["probe_id"]]["answer"]})
    figures["changed_facts"] = {
        "n": len(changed),
        "probed": sum(c["fact_id"] in by_fact for c in changed),
        "old_value_survives": stale,
    }
    reasons = []
    if new and figures["new"]["accuracy"] < settings.threshold:
        reasons.append(
            f"new documents' accuracy {figures['new']['accuracy']:.1%} is under the threshold {settings.threshold:.0%}"
        )
    o = figures["old"]
    if o["accuracy"] is not None and o["promoted"] is not None and o["promoted"] - o["accuracy"] > settings.old_margin:
        reasons.append(
            f"earlier documents' accuracy fell from {o['promoted']:.1%} to {o['accuracy']:.1%} "
            f"(margin {settings.old_margin:.0%})"
        )
    g = figures["general"]
    if "sampled" in g:
        if g["sampled"]["worse"] / g["items"] > settings.general_margin:
            reasons.append(
                f"general check: {g['sampled']['worse']} of {g['items']} items worse by the sampled rule "
                f"(margin {settings.general_margin:.0%})"
            )
    elif (g["reference"] - g["right"]) / g["items"] > settings.general_margin:
        reasons.append(
            f"general check fell from {g['reference']} to {g['right']} of {g['items']} "
            f"(margin {settings.general_margin:.0%})"
        )
    return {
        "promote": not reasons,
        "reasons": reasons,
        "figures": figures,
        "decided": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def load_candidate(run_dir: Path):
    from peft import PeftModel

    from orgtune.models.loading import load_model
    from orgtune.train.runfolder import read_complete_run

    run = read_complete_run(run_dir)
    base, tok, _ = load_model(run.base_model, dtype=run.config.model.dtype)
    model = PeftModel.from_pretrained(base, run.adapter_dir)
    model.eval()
    return model, tok
