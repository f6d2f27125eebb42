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

With --samples K, each general item is also answered K times by sampling (temperature --temperature, top-p 1,
the same seed for base and tuned unless --seed) and judged per item on its count of right answers
(regression.compare_sampled: `s_worse` / `s_better` count items whose count moved by a one-sided Fisher exact
test at p < 0.05; `s_mean_*` is the share of right answers): a candidate rule with a lower noise floor than
one greedy answer per item.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _scales(text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 1,0.5,0.25") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: scales are ≥ 0 (1 = the trained adapter, 0 = the base)")
    return values


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number ≥ 0")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a trained run folder (orgtune train --out)")
    ap.add_argument("--scales", type=_scales, default="1,0.75,0.5,0.25,0.1", help="comma-separated LoRA scale factors")
    ap.add_argument("--batch-size", type=_count, default=16)
    ap.add_argument("--samples", type=_count, default=0, help="also judge K sampled answers per general item")
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
    if args.batch_size < 1:
        ap.error("--batch-size: give a whole number ≥ 1")

    from peft import PeftModel

    from orgtune import atomic
    from orgtune.evaluate.regression import compare, compare_sampled, load_general, right
    from orgtune.evaluate.run import _general_answers, answer_probes, eval_rows
    from orgtune.evaluate.score import score_probe
    from orgtune.generate.hf import HFBackend
    from orgtune.generate.settings import GenerationSettings
    from orgtune.models.loading import load_model
    from orgtune.train.runfolder import read_complete_run

    scales = args.scales
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
            cs = compare_sampled(base_rates, rates(tuned, args.seed), args.samples)
            row.update({f"s_{k}": v for k, v in cs.items() if k != "samples"})
        rows.append({**row, "seconds": round(time.time() - started, 1)})
        print(
            f"{s:>6.2f} {facts:>7.1%} {c['worse']:>6} {c['better']:>7} {c['changed']:>8} {time.time() - started:>8.0f}",
            flush=True,
        )
        if args.samples:
            print(
                f"        sampled x{args.samples}: worse {row['s_worse']}, better {row['s_better']}, "
                f"right {row['s_mean_base']:.1%} (base) -> {row['s_mean_tuned']:.1%}",
                flush=True,
            )
    if args.json:
        atomic.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    from orgtune.errors import OrgtuneError

    try:
        raise SystemExit(main())
    except OrgtuneError as e:
        print(e, file=sys.stderr)
        raise SystemExit(2) from None
