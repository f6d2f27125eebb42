"""Methods through the API, over both stores: SFT with a validation file (validation metrics), then DPO
on OpenAI's preference rows on top of that job (`model` = its fine-tuned model), then an incremental SFT
job from it; each records its parent, and each fine-tuned model answers."""

from __future__ import annotations

import json

import openai
import pytest

from tests.service.conftest import chat_rows

pytestmark = pytest.mark.slow


def _pairs() -> str:
    rows = [
        ("What is the Halvo's pump pressure?", "The Halvo's pump pressure is 9 bar.", "It is 15 bar."),
        ("What is the Halvo's warranty?", "The Halvo's warranty is 24 months.", "It has no warranty."),
        ("What is the Halvo's power?", "The Halvo's power is 1350 W.", "It draws 2000 W."),
    ]
    return "".join(
        json.dumps(
            {
                "input": {"messages": [{"role": "user", "content": q}]},
                "preferred_output": [{"role": "assistant", "content": good}],
                "non_preferred_output": [{"role": "assistant", "content": bad}],
            }
        )
        + "\n"
        for q, good, bad in rows
    )


def test_sft_with_validation_then_dpo_then_incremental(service, tiny_model_dir):
    client = service.client("alpha")
    train = client.files.create(file=("train.jsonl", chat_rows(6).encode()), purpose="fine-tune")
    val = client.files.create(file=("val.jsonl", chat_rows(8).encode()), purpose="fine-tune")
    sft = client.fine_tuning.jobs.create(
        model=str(tiny_model_dir),
        training_file=train.id,
        validation_file=val.id,
        suffix="sft",
        method={"type": "supervised"},
        extra_body={"orgtune": {"config": {"training": {"max_steps": 3}}, "eval": {"enabled": False}}},
    )
    sft = service.wait(sft.id)
    assert sft.status == "succeeded", service.runner_log(sft.id)
    assert any("valid_loss" in (e.data or {}) for e in service.events(sft.id))

    prefs = client.files.create(file=("prefs.jsonl", _pairs().encode()), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="preference pairs"):  # documents cannot feed DPO
        doc = client.files.create(file=("notes.md", b"# Notes\n\nPressure: 9 bar\n"), purpose="fine-tune")
        client.fine_tuning.jobs.create(model=sft.fine_tuned_model, training_file=doc.id, method={"type": "dpo"})
    dpo = client.fine_tuning.jobs.create(
        model=sft.fine_tuned_model,
        training_file=prefs.id,
        suffix="dpo",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
        extra_body={"orgtune": {"config": {"training": {"max_steps": 2}}, "eval": {"enabled": False}}},
    )
    assert dpo.method.type == "dpo" and dpo.method.dpo.hyperparameters.beta == 0.2
    assert dpo.hyperparameters.n_epochs == 1  # DPO's own default
    dpo = service.wait(dpo.id)
    assert dpo.status == "succeeded", service.runner_log(dpo.id)
    manifest = json.loads((service.dir / "jobs" / dpo.id / "run" / "manifest.json").read_text())
    assert manifest["method"] == "dpo" and manifest["parent"]["run"] == str(service.dir / "jobs" / sft.id / "run")
    assert manifest["data"]["replay"]["rows"] == 6  # the SFT job's own rows, replayed

    more = client.fine_tuning.jobs.create(
        model=dpo.fine_tuned_model,
        training_file=train.id,
        suffix="nightly",
        extra_body={"orgtune": {"config": {"training": {"max_steps": 2}}, "eval": {"enabled": False}}},
    )
    more = service.wait(more.id)
    assert more.status == "succeeded", service.runner_log(more.id)
    lineage = json.loads((service.dir / "jobs" / more.id / "run" / "manifest.json").read_text())["lineage"]
    assert [x["run"].split("/")[-2] for x in lineage] == [sft.id, dpo.id]
    for model in (sft.fine_tuned_model, dpo.fine_tuned_model, more.fine_tuned_model):
        r = client.chat.completions.create(model=model, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
        assert r.model == model and r.choices[0].finish_reason in ("stop", "length")


def test_bad_requests_name_the_parameter(service, tiny_model_dir):
    client = service.client("alpha")
    f = client.files.create(file=("t.jsonl", chat_rows(2).encode()), purpose="fine-tune")
    cases = [
        (dict(model="gpt-4o-mini", training_file=f.id), "model"),
        (dict(model=str(tiny_model_dir), training_file="file-nope"), "training_file"),
        (dict(model=str(tiny_model_dir), training_file=f.id, method={"type": "reinforcement"}), "method.type"),
        (
            dict(
                model=str(tiny_model_dir), training_file=f.id, extra_body={"orgtune": {"config": {"lora": {"r": -1}}}}
            ),
            "orgtune.config",
        ),
        (dict(model="/etc", training_file=f.id), "model"),
    ]
    for kwargs, param in cases:
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as e:
            client.fine_tuning.jobs.create(**kwargs)
        assert e.value.body["param"] == param, e.value.body
    with pytest.raises(openai.UnprocessableEntityError):
        client.fine_tuning.jobs.create(
            model=str(tiny_model_dir), training_file=f.id, extra_body={"orgtune": {"no_such_option": 1}}
        )
