"""The real embedded model trains: loss falls, every LoRA weight changes, the adapter reloads and answers differ."""

from __future__ import annotations

import pytest

from orgtune.data.formats import load_rows
from orgtune.data.tokenize import IGNORE, encode_rows

pytestmark = pytest.mark.slow


def mean_loss(model, tok, rows) -> float:
    import torch

    enc = encode_rows(tok, rows, max_len=512)
    total, n = 0.0, 0
    with torch.inference_mode():
        for r in enc.rows:
            ids = torch.tensor([r.input_ids])
            logits = model(input_ids=ids).logits[0, :-1]
            labels = torch.tensor(r.labels[1:])
            keep = labels != IGNORE
            total += torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum").item()
            n += int(keep.sum())
    return total / n


def test_embedded_model_learns_and_adapter_reloads(demo_data, tmp_path):
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import set_seed

    from orgtune.generate.hf import HFBackend
    from orgtune.models.loading import load_model
    from orgtune.train.components import lora_config
    from orgtune.train.sft import train

    subset = tmp_path / "subset.jsonl"
    subset.write_text("\n".join(demo_data.read_text().splitlines()[:8]) + "\n")
    rows = load_rows(subset).rows
    run = train(
        subset,
        tmp_path / "run",
        log=lambda m: None,
        overrides={
            "training": {"max_steps": 8, "per_device_train_batch_size": 4, "learning_rate": 2e-3, "save_steps": 100}
        },
    )
    assert run.manifest["summary"]["global_step"] == 8

    base, tok, _ = load_model("smollm2-135m")
    before = mean_loss(base, tok, rows)
    # The adapter's initial weights, as TRL created them (seeded before get_peft_model).
    set_seed(run.config.training.seed)
    init = {
        k: v.detach().clone()
        for k, v in get_peft_model(load_model("smollm2-135m")[0], lora_config(run.config)).named_parameters()
        if "lora_" in k
    }
    tuned = PeftModel.from_pretrained(base, run.adapter_dir)
    after = mean_loss(tuned, tok, rows)
    assert after < before * 0.8, (before, after)

    trained = {k: v for k, v in tuned.named_parameters() if "lora_" in k}
    targets = run.config.lora.target_modules
    assert sorted(targets) == ["down_proj", "gate_proj", "up_proj"]  # the preset's default: the MLP projections
    assert len(trained) == 2 * len(targets) * 30  # A and B for each targeted projection in 30 layers
    assert {k.split(".")[-4] for k in trained} == set(targets)
    unchanged = [k for k, v in trained.items() if torch.equal(v, init[k])]
    assert not unchanged, f"{len(unchanged)} LoRA tensors did not change, e.g. {unchanged[:3]}"

    questions = [r.messages[:1] for r in rows[:4]]
    backend = HFBackend(tuned, tok, name="tuned")
    tuned_answers = backend.answer(questions)
    base_answers = backend.with_adapter(False, "base").answer(questions)
    assert tuned_answers != base_answers
    gold = [r.messages[1]["content"] for r in rows[:4]]
    assert overlap(tuned_answers, gold) > overlap(base_answers, gold)


def overlap(answers: list[str], gold: list[str]) -> float:
    """Mean share of the reference answer's words that the answer contains."""
    shares = []
    for a, g in zip(answers, gold, strict=True):
        ref = set(g.lower().split())
        shares.append(len(ref & set(a.lower().split())) / len(ref))
    return sum(shares) / len(shares)
