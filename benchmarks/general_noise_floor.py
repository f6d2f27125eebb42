"""How much of the general check's "worse" is forgetting, and how much is the check's own noise?

    .venv/bin/python benchmarks/general_noise_floor.py runs/first                    # scales 1, .75, .5, .25, .1
    .venv/bin/python benchmarks/general_noise_floor.py runs/first --scales 1,0.5,0.1
    .venv/bin/python benchmarks/general_noise_floor.py runs/first --scales 1,0.25 --samples 8   # + a sampled rule

Loads the run's base model and adapter once, then, for each scale s, multiplies every LoRA layer's scaling
by s (s = 1: the trained model; s → 0: the base) and measures, side by side on the same weights:
trained-fact probe accuracy (the run's own probes, held-out ones left out) and the general check against
the base model's cached answers (worse / better / answers whose text changed), with the same rule and
generation settings as `orgtune eval`. A scale at which the facts are back at the base's level has learnt
nothing, so the general items it gets worse there are the floor that any change of the weights pays on
this check, not forgetting.

With --samples K, each general item is also answered K times by sampling (temperature --temperature,
top-p 1, the same seed for base and tuned unless --seed) and judged per item on the rate of right answers: `s_worse` /
`s_better` count items whose rate moved significantly (one-sided Fisher exact test, p < 0.05), and
`s_mean` is the mean right rate, base and tuned. That is a candidate for a rule whose noise floor is
lower than one greedy answer's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a trained run folder (orgtune train --out)")
    ap.add_argument("--scales", default="1,0.75,0.5,0.25,0.1", help="comma-separated LoRA scale factors")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--samples", type=int, default=0, help="also judge K sampled answers per general item")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the tuned model's sampling seed (the base's is 0); with --scales 0: "
        "the sampled rule's floor, the base against itself",
    )
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)

    from peft import PeftModel

    from orgtune.evaluate.regression import compare, load_general, right
    from orgtune.evaluate.run import _general_answers, answer_probes, eval_rows
    from orgtune.evaluate.score import score_probe
    from orgtune.generate.hf import HFBackend
    from orgtune.generate.settings import GenerationSettings
    from orgtune.models.loading import load_model
    from orgtune.train.runfolder import read_complete_run

    scales = [float(s) for s in args.scales.split(",")]
    run = read_complete_run(args.run)
    probes = [p for p in eval_rows(run)[0] if not p.get("held_out")]
    general = load_general()
    base_model, tok, info = load_model(run.base_model, device="cpu", dtype=run.config.model.dtype)
    model = PeftModel.from_pretrained(base_model, run.adapter_dir)
    settings = GenerationSettings(batch_size=args.batch_size)
    tuned = HFBackend(model, tok, name="tuned", settings=settings, adapter="default")
    base = _general_answers("base", tuned.with_adapter(False, "base"), general, info, args.batch_size, log=print)
    sampled = GenerationSettings(max_new_tokens=64, batch_size=args.batch_size, temperature=args.temperature, seed=0)
    asks = [[{"role": "user", "content": g["question"]}] for g in general for _ in range(args.samples)]

    def rates(backend, seed: int = 0) -> list[int]:
        """Per general item, how many of its K sampled answers are right."""
        answers = backend.answer(asks, sampled.but(seed=seed))
        k = args.samples
        return [sum(right(g, a) for a in answers[i * k : (i + 1) * k]) for i, g in enumerate(general)]

    base_rates = rates(tuned.with_adapter(False, "base")) if args.samples else []
    layers = [m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict) and "default" in m.scaling]
    trained = [m.scaling["default"] for m in layers]

    rows = []
    print(f"{args.run}: {len(probes)} trained-fact probes, {len(general)} general items, {len(layers)} LoRA layers")
    print(f"{'scale':>6} {'facts':>7} {'worse':>6} {'better':>7} {'changed':>8} {'seconds':>8}")
    for s in scales:
        started = time.time()
        for m, t in zip(layers, trained, strict=True):
            m.scaling["default"] = t * s
        answers = answer_probes(tuned, probes, settings)
        facts = sum(score_probe(p, a).correct for p, a in zip(probes, answers, strict=True)) / max(len(probes), 1)
        c = compare(base, _general_answers("tuned", tuned, general, info, args.batch_size, print), general)
        row = {"scale": s, "facts": round(facts, 4), **{k: c[k] for k in ("worse", "better", "changed", "sign_p")}}
        if args.samples:
            row.update(_sampled(base_rates, rates(tuned, args.seed), args.samples))
            print(f"        sampled x{args.samples}: {row}", flush=True)
        rows.append({**row, "seconds": round(time.time() - started, 1)})
        print(
            f"{s:>6.2f} {facts:>7.1%} {c['worse']:>6} {c['better']:>7} {c['changed']:>8} {time.time() - started:>8.0f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


def _sampled(base: list[int], tuned: list[int], k: int) -> dict:
    """Per-item comparison of right-answer counts out of k samples each: one-sided Fisher exact tests."""
    import math

    def lower(a: int, b: int) -> float:  # P(a count as low as a) given a + b right of 2k, k drawn
        n = a + b
        return sum(math.comb(n, i) * math.comb(2 * k - n, k - i) for i in range(max(0, n - k), a + 1)) / math.comb(
            2 * k, k
        )

    worse = sum(lower(t, b) < 0.05 for b, t in zip(base, tuned, strict=True))
    better = sum(lower(b, t) < 0.05 for b, t in zip(base, tuned, strict=True))
    return {
        "s_worse": worse,
        "s_better": better,
        "s_mean_base": round(sum(base) / (k * len(base)), 4),
        "s_mean_tuned": round(sum(tuned) / (k * len(tuned)), 4),
    }


if __name__ == "__main__":
    raise SystemExit(main())
