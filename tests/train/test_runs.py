"""Run folders: self-description, idempotent re-runs, refusing a different run, --init-adapter lineage."""

from __future__ import annotations

import json

import pytest
import yaml

from orgtune.errors import OrgtuneError
from orgtune.train.runfolder import read_run
from orgtune.train.sft import train

FAST = {"training": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "save_steps": 100}}


def fast(model, **training):
    return {"model": {"name": str(model)}, "training": {**FAST["training"], **training}}


def test_run_folder_describes_itself(tiny_model_dir, demo_data, tmp_path):
    overrides = fast(tiny_model_dir, val_fraction=0.2, tensorboard=True)
    run = train(demo_data, tmp_path / "r1", overrides=overrides, log=lambda m: None)
    m = run.manifest
    assert m["status"] == "complete" and run.complete
    assert m["data"]["train"]["sha256"] and m["data"]["val"]["rows"] > 0
    assert {"torch", "transformers", "peft", "trl"} <= m["versions"].keys()
    cfg = yaml.safe_load((run.path / "config.yaml").read_text())
    assert cfg["lora"]["r"] == 16 and cfg["training"]["max_steps"] == 3
    assert (run.adapter_dir / "adapter_model.safetensors").is_file()
    assert (run.adapter_dir / "adapter_config.json").is_file()
    records = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in records)  # validation loss at the (last) epoch end
    best = json.loads((run.path / "checkpoints" / "best.json").read_text())
    assert (run.path / "checkpoints" / best["checkpoint"] / "COMPLETE").is_file()
    # Same command again: nothing retrained.
    msgs = []
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    again = train(demo_data, tmp_path / "r1", overrides=overrides, log=msgs.append)
    assert again.manifest["adapter_sha256"] == m["adapter_sha256"] and "already complete" in msgs[0]
    # A different command into the same folder is refused, and the folder is untouched.
    with pytest.raises(OrgtuneError, match="holds a different run"):
        train(demo_data, tmp_path / "r1", overrides=fast(tiny_model_dir, learning_rate=5e-4), log=lambda m: None)
    assert read_run(tmp_path / "r1").manifest["adapter_sha256"] == m["adapter_sha256"]


def test_init_adapter_continues_from_the_parent(tiny_model_dir, demo_data, tmp_path):
    from safetensors.torch import load_file

    parent = train(demo_data, tmp_path / "parent", overrides=fast(tiny_model_dir), log=lambda m: None)
    nightly = tmp_path / "nightly.jsonl"
    nightly.write_text("\n".join(demo_data.read_text().splitlines()[:8]) + "\n")
    # A vanishing learning rate: the child's adapter must still be the parent's (it started from it).
    child = train(
        nightly,
        tmp_path / "child",
        init_adapter=parent.path,
        overrides={"training": {"max_steps": 1, "learning_rate": 1e-12, "num_epochs": 1}},
        log=lambda m: None,
    )
    a = load_file(parent.adapter_dir / "adapter_model.safetensors")
    b = load_file(child.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-6 for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # the parent really trained
    assert child.manifest["parent"]["run"] == str(parent.path.resolve())
    assert child.manifest["parent"]["adapter_sha256"] == parent.manifest["adapter_sha256"]
    assert child.config.model.name == str(tiny_model_dir)
    grandchild = train(
        nightly,
        tmp_path / "grandchild",
        init_adapter=child.path,
        overrides={"training": {"max_steps": 1}},
        log=lambda m: None,
    )
    assert [x["run"] for x in grandchild.manifest["lineage"]] == [str(parent.path.resolve()), str(child.path.resolve())]
