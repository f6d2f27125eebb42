"""Training throughput: orgtune's trainer vs a plain TRL SFTTrainer + PEFT script with default padding.

    .venv/bin/python benchmarks/train_throughput.py                      # bundled demo data, embedded model
    .venv/bin/python benchmarks/train_throughput.py --data my.jsonl --batch-size 8 --repeats 2

Both arms train the same tokenized rows (assistant-only labels) in the same order with the same LoRA
config, seed, precision and optimizer, each in its own fresh process (so peak memory is its own); the
only difference is how a batch is laid out (padded rows vs rows concatenated without padding). Printed per arm: trained
(non-pad) tokens per second, wall time of `trainer.train()`, peak resident memory, and the loss per
trained token; then the speed ratio and the largest per-step loss difference between the arms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "orgtune" / "data" / "samples" / "demo_chat.jsonl"


def run_arm(arm: str, a: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from orgtune.config import resolve_config
    from orgtune.data.formats import load_rows
    from orgtune.data.tokenize import encode_rows
    from orgtune.models.loading import load_model
    from orgtune.train.components import lora_config
    from orgtune.train.sft import sft_args
    from orgtune.train.trainer import OrgtuneSFTTrainer

    torch.set_num_threads(a.threads or torch.get_num_threads())
    cfg = resolve_config(
        overrides={
            "model": {"name": a.model, "max_seq_length": a.max_seq_length},
            "lora": {"dropout": a.lora_dropout},
            "training": {
                "num_epochs": a.epochs,
                "per_device_train_batch_size": a.batch_size,
                "learning_rate": a.lr,
                "precision": a.precision,
            },
        }
    )
    model, tok, info = load_model(cfg.model.name)
    enc = encode_rows(tok, load_rows(a.data).rows, max_len=cfg.model.max_seq_length)
    dataset = Dataset.from_dict({"input_ids": [r.input_ids for r in enc.rows], "labels": [r.labels for r in enc.rows]})
    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    out = Path(a.workdir) / arm
    if arm == "orgtune":
        args = sft_args(cfg, out, device=info["device"], has_eval=False)
        args.save_strategy = "no"
        trainer = OrgtuneSFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            peft_config=lora_config(cfg),
            callbacks=[Losses()],
        )
    else:  # the plain script: TRL's default padded batches. Precision, activation checkpointing and the
        # optimizer are set like orgtune's (TRL would default to bf16 autocast + checkpointing + fused AdamW),
        # so that batching is the only difference between the arms.
        ours = sft_args(cfg, out, device=info["device"], has_eval=False)
        args = SFTConfig(
            output_dir=str(out),
            num_train_epochs=a.epochs,
            per_device_train_batch_size=a.batch_size,
            learning_rate=a.lr,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=cfg.training.seed,
            use_cpu=info["device"] == "cpu",
            max_length=None,
            bf16=ours.bf16,
            fp16=ours.fp16,
            gradient_checkpointing=ours.gradient_checkpointing,
            optim=ours.optim,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            peft_config=lora_config(cfg),
            callbacks=[Losses()],
        )
    if info["device"].startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    trained = sum(r.n_trained for r in enc.rows) * a.epochs
    peak = (
        torch.cuda.max_memory_allocated()
        if info["device"].startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "arm": arm,
        "device": info["device"],
        "steps": trainer.state.global_step,
        "trained_tokens": trained,
        "wall_s": wall,
        "tokens_per_s": trained / wall,
        "peak_bytes": peak,
        "losses": losses,
        "mean_loss": sum(losses) / max(1, len(losses)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument(
        "--lora-dropout",
        type=float,
        default=0.05,
        help="0 makes both arms draw no random masks, so their per-step losses must agree to float noise",
    )
    ap.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="both arms use it; auto = bf16 on CUDA, fp32 elsewhere",
    )
    ap.add_argument(
        "--repeats", type=int, default=1, help="alternate the arms this many times; report the best of each"
    )
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--workdir", default="/tmp/orgtune-bench")
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.arm:
        print("RESULT " + json.dumps(run_arm(a.arm, a)))
        return

    results: dict[str, list[dict]] = {"trl-padded": [], "orgtune": []}
    for _ in range(a.repeats):
        for arm in results:
            cmd = [sys.executable, __file__, "--arm", arm] + [x for x in sys.argv[1:]]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{arm} failed:\n{proc.stderr[-4000:]}")
            results[arm].append(json.loads(line[len("RESULT ") :]))
    best = {arm: max(rs, key=lambda r: r["tokens_per_s"]) for arm, rs in results.items()}
    print(
        f"data {a.data}  model {a.model}  device {best['orgtune']['device']}  batch {a.batch_size}  "
        f"epochs {a.epochs}  lora dropout {a.lora_dropout}  repeats {a.repeats}"
    )
    print(
        f"{'arm':<12}{'steps':>7}{'trained tok':>13}{'wall s':>9}{'trained tok/s':>15}{'peak MB':>10}{'loss/token':>12}"
    )
    for arm, r in best.items():
        print(
            f"{arm:<12}{r['steps']:>7}{r['trained_tokens']:>13.0f}{r['wall_s']:>9.1f}{r['tokens_per_s']:>15.1f}"
            f"{r['peak_bytes'] / 1e6:>10.0f}{r['mean_loss']:>12.4f}"
        )
    base, ours = best["trl-padded"], best["orgtune"]
    diffs = [abs(x - y) for x, y in zip(base["losses"], ours["losses"], strict=False)]
    print(f"speed-up (trained tokens/s): {ours['tokens_per_s'] / base['tokens_per_s']:.2f}x")
    print(
        f"per-step loss: max |difference| {max(diffs):.2e} over {len(diffs)} steps; "
        f"mean loss {base['mean_loss']:.5f} (trl) vs {ours['mean_loss']:.5f} (orgtune)"
    )


if __name__ == "__main__":
    main()
