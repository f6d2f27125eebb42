"""The design notes' training config shape is accepted (save_strategy, evaluation_strategy,
load_best_model_at_end, metric_for_best_model), and load-best-at-end ships the adapter of the checkpoint with
the lowest validation loss, recorded in the manifest."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from orgtune.config import resolve_config
from orgtune.errors import OrgtuneError
from orgtune.train.sft import train


def test_the_design_notes_keys_are_accepted(tmp_path):
    y = tmp_path / "train.yaml"
    y.write_text(
        "model:\n  name: smollm2-135m\ntraining:\n  save_strategy: steps\n  evaluation_strategy: steps\n"
        "  load_best_model_at_end: true\n  metric_for_best_model: loss\n"
    )
    t = resolve_config(yaml_path=y).training
    assert (t.save_strategy, t.evaluation_strategy, t.load_best_model_at_end, t.metric_for_best_model) == (
        "steps",
        "steps",
        True,
        "eval_loss",
    )
    y.write_text(
        "model:\n  name: smollm2-135m\ntraining:\n  evaluation_strategy: 'no'\n  load_best_model_at_end: true\n"
    )
    with pytest.raises(OrgtuneError, match="load_best_model_at_end needs evaluations"):
        resolve_config(yaml_path=y)


def test_load_best_ships_the_lowest_validation_loss(tmp_path, tiny_model_dir, demo_data):
    run = train(
        demo_data,
        tmp_path / "run",
        log=lambda m: None,
        overrides={
            "model": {"name": str(tiny_model_dir)},
            "training": {
                "max_steps": 8,
                "save_steps": 2,
                "save_total_limit": 2,
                "evaluation_strategy": "steps",
                "load_best_model_at_end": True,
                "val_fraction": 0.2,
                "learning_rate": 0.05,
            },
        },
    )
    evals = {
        r["step"]: r["eval_loss"]
        for r in map(json.loads, (run.path / "metrics.jsonl").read_text().splitlines())
        if "eval_loss" in r
    }
    assert len(evals) >= 4
    best = min(evals, key=evals.get)
    shipped = run.manifest["summary"]["shipped"]
    assert shipped["chosen"] == "best" and shipped["step"] == best
    assert shipped["eval_loss"] == pytest.approx(evals[best])
    kept = load_file(run.path / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors")
    ours = load_file(run.adapter_dir / "adapter_model.safetensors")
    assert kept.keys() == ours.keys() and all(torch.equal(kept[k], ours[k]) for k in kept)
