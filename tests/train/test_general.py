"""General self-distillation replay: the prompts never ask a question of the general check; the embedded
model's bundled answers match the prompt file (re-bundle when it changes) and are used without loading the
model; an SFT run mixes the share it asks for and records it in the manifest."""

from __future__ import annotations

import json

from orgtune.evaluate.regression import load_general
from orgtune.train import general
from orgtune.train.sft import train


def test_prompts_are_disjoint_from_the_general_check():
    asked = {g["question"].strip().lower() for g in load_general()}
    prompts = [p["prompt"].strip().lower() for p in general.prompts()]
    assert len(prompts) == len(set(prompts)) >= 400
    assert not asked & set(prompts)


def test_the_embedded_models_bundled_answers_are_current_and_used(tmp_path, monkeypatch, embedded_dir):
    bundled = general._bundled("smollm2-135m")
    assert bundled is not None, (
        "train/general_answers/smollm2-135m.json no longer matches the prompts: run "
        "`.venv/bin/python scripts/make_general_prompts.py --bundle`"
    )
    asked = {p["prompt"] for p in general.prompts()}
    assert len(bundled) >= 300 and all(r["messages"][0]["content"] in asked for r in bundled)
    monkeypatch.setenv("ORGTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("orgtune.models.loading.resolve_source", _same_source(embedded_dir))
    monkeypatch.setattr("orgtune.evaluate.answer.load_backend", _no_model)  # would generate: must not
    lines = []
    path = general.self_distilled("smollm2-135m", log=lines.append)
    assert path.is_relative_to(tmp_path / "home") and "bundled" in lines[0]
    assert [json.loads(x) for x in path.read_text().splitlines()] == bundled
    assert general._bundled("tiny-model") is None


def _same_source(folder):
    from orgtune.models.loading import ModelSource

    return lambda spec: ModelSource(spec, folder, "folder", "smollm2-135m")


def _no_model(*a, **k):
    raise AssertionError("the bundled answers should have been used")


def test_sft_mixes_the_share_and_records_it(tmp_path, tiny_model_dir, demo_data):
    run = train(
        demo_data,
        tmp_path / "run",
        log=lambda m: None,
        overrides={
            "model": {"name": str(tiny_model_dir)},
            "training": {"max_steps": 1, "save_steps": 100, "general_replay": 0.5, "general_loss": "sft"},
        },
    )
    entry = run.manifest["data"]["general_replay"]
    rows = run.manifest["data"]["train"]["rows"]
    assert entry["share"] == 0.5 and 0 <= entry["rows"] <= round(0.5 * rows)
    off = train(
        demo_data,
        tmp_path / "off",
        log=lambda m: None,
        overrides={
            "model": {"name": str(tiny_model_dir)},
            "training": {"max_steps": 1, "save_steps": 100, "general_replay": 0},
        },
    )
    assert "general_replay" not in off.manifest["data"]


def test_kl_general_loss_streams_every_answer_beside_the_batches(tmp_path, demo_data):
    """general_loss kl: the answers stay out of the training rows (same steps as without them) and each step
    adds KL(base ‖ tuned) on a micro-batch of them; at step 1 the new adapter is zero, so tuned = base and the
    KL is 0; once the documents have moved the adapter it is not."""
    overrides = {
        "training": {
            "max_steps": 4,
            "save_steps": 100,
            "general_replay": 0.5,
            "general_loss": "kl",
            "learning_rate": 0.01,
        }
    }
    run = train(demo_data, tmp_path / "kl", log=lambda m: None, overrides=overrides)
    entry = run.manifest["data"]["general_replay"]
    assert entry["loss"] == "kl" and entry["rows"] >= 300  # all of the bundled answers, not a share of the rows
    kl = [
        r["general_kl"]
        for r in map(json.loads, (run.path / "metrics.jsonl").read_text().splitlines())
        if "general_kl" in r
    ]
    assert len(kl) == 4
    assert kl[0] < 1e-6 < kl[-1]
    assert run.manifest["summary"]["global_step"] == 4


def test_general_weight_holds_the_tuned_model_closer_to_the_base(tmp_path, demo_data):
    """The same 6 steps with the KL term weighted 0 (logged, not learnt) and 30: the weighted run ends nearer
    the base on general text, and the manifest records the weight."""

    def final_kl(weight: float) -> tuple[float, dict]:
        overrides = {
            "training": {
                "max_steps": 6,
                "save_steps": 100,
                "general_replay": 0.5,
                "general_loss": "kl",
                "general_weight": weight,
                "learning_rate": 0.01,
            }
        }
        run = train(demo_data, tmp_path / f"w{weight}", log=lambda m: None, overrides=overrides)
        records = map(json.loads, (run.path / "metrics.jsonl").read_text().splitlines())
        return [r["general_kl"] for r in records if "general_kl" in r][-1], run.manifest

    free, _ = final_kl(0)
    held, manifest = final_kl(30)
    assert manifest["data"]["general_replay"]["weight"] == 30
    assert held < free / 2, (held, free)
