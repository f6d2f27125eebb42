"""`orgtune train --launch 2`: two gloo ranks on the CPU (torch.distributed.run) train what one process trains
on the same global batch: the same loss at every step and the same adapter. Rank 0 alone owns the run folder
(manifest, metrics, lock); each rank writes its RNG state into the one checkpoint folder, which is complete and
verifies. Bad strategy input fails once, in the launching process, before any rank starts."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file

from orgtune import atomic
from orgtune.train import distributed
from tests.conftest import run_cli

# 8 rows, global batch 8 (one process: 4 × 2 accumulation; two ranks: 2 × 2 × 2): every optimizer step sees
# every row, whichever rank draws which, so the two runs must agree up to float summation order.
CONFIG = """training:
  general_replay: 0
  val_fraction: 0
  num_epochs: 3
  learning_rate: 0.01
  warmup_ratio: 0
  logging_steps: 1
lora:
  dropout: 0
"""


@pytest.fixture
def eight_rows(tmp_path, demo_data):
    data = tmp_path / "eight.jsonl"
    data.write_text("".join(demo_data.read_text().splitlines(keepends=True)[:8]))
    (tmp_path / "run.yaml").write_text(CONFIG)
    return data, tmp_path / "run.yaml"


def _losses(run) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_two_gloo_ranks_match_one_process(tmp_path, tiny_model_dir, eight_rows):
    data, config = eight_rows
    common = ["train", "--data", str(data), "--model", str(tiny_model_dir), "--config", str(config), "--device", "cpu"]
    one = run_cli(*common, "--out", str(tmp_path / "one"), "--batch-size", "4", "--grad-accum", "2")
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(*common, "--out", str(tmp_path / "two"), "--batch-size", "2", "--grad-accum", "2", "--launch", "2")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "launching 2 processes" in two.stderr
    assert two.stdout.count("run complete") == 1  # rank 0 speaks for the run

    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(a) == len(b) == 3
    assert b == pytest.approx(a, rel=1e-4)
    assert a[-1] < a[0]  # it trained: the matching is not two untouched adapters

    wa = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-3, atol=1e-5)

    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["distributed"] == {"world_size": 2, "strategy": "ddp"}
    assert manifest["summary"]["global_step"] == 3
    ckpt = tmp_path / "two" / "checkpoints" / "checkpoint-3"
    assert {p.name for p in ckpt.iterdir()} >= {"rng_state_0.pth", "rng_state_1.pth", "adapter_model.safetensors"}
    assert atomic.verify(ckpt) is None  # the marker rank 0 wrote vouches for both ranks' files
    assert not (tmp_path / "two" / "adapter" / "training_args.bin").exists()
    assert not [p for p in (tmp_path / "two").rglob(".partial-*")]

    again = run_cli(*common, "--out", str(tmp_path / "two"), "--batch-size", "2", "--grad-accum", "2", "--launch", "2")
    assert again.returncode == 0 and "already complete" in again.stderr  # a finished run is left alone, by every rank


def test_bad_strategies_fail_before_any_rank_starts(tmp_path, eight_rows):
    data, _ = eight_rows
    base = ["train", "--data", str(data), "--out", str(tmp_path / "r")]
    r = run_cli(*base, "--launch", "2", "--strategy", "zero9")
    assert r.returncode == 2 and "--strategy zero9: neither a shipped strategy nor a file" in r.stderr
    assert "launching" not in r.stderr
    bad = tmp_path / "mine.json"
    bad.write_text("[1, 2]")
    r = run_cli(*base, "--launch", "2", "--strategy", str(bad))
    assert r.returncode == 2 and "a strategy is a JSON object" in r.stderr
    r = run_cli(*base, "--strategy", "ddp")
    assert r.returncode == 2 and "--strategy ddp needs several processes" in r.stderr
    r = run_cli(*base, "--launch", "2", "--method", "dpo")
    assert r.returncode == 2 and "orgtune dpo trains in one process" in r.stderr
    if importlib.util.find_spec("deepspeed") is None:
        r = run_cli(*base, "--launch", "2", "--strategy", "zero3")
        assert r.returncode == 2 and "needs DeepSpeed, which is not installed" in r.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", distributed.STRATEGIES)
def test_shipped_strategies_are_trainer_fields(name):
    import dataclasses

    from transformers import TrainingArguments

    text = json.loads(distributed.strategy_file(name).read_text())
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    assert set(text) - {"_comment"} <= fields
    assert distributed.sharded(text) == (name in ("zero3", "fsdp2"))
