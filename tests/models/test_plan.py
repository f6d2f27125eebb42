"""`orgtune plan`: counts equal an independent formula and PEFT on a real model; sizes match real files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orgtune.cli import app
from orgtune.errors import OrgtuneError
from orgtune.models.plan import plan_run
from orgtune.models.presets import all_presets, find_preset

QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL7 = QKVO + ["gate_proj", "up_proj", "down_proj"]


def lora_formula(preset_name: str, r: int, targets: list[str]) -> int:
    """r * (in + out) for every targeted projection in every layer, from config.json values alone."""
    c = find_preset(preset_name).config
    h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    head = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * head, c["num_key_value_heads"] * head
    shapes = {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    return layers * sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)


@pytest.mark.parametrize("targets", [QKVO, ALL7], ids=["qkvo", "all7"])
def test_qwen25_3b_trainable_counts_match_formula(targets):
    p = plan_run("qwen2.5-3b", lora_r=16, lora_targets=targets)
    assert p.trainable_params == lora_formula("qwen2.5-3b", 16, targets)
    assert p.total_params == 3_085_938_688  # Qwen2.5-3B model card: 3.09B (36 layers)


def test_qkvo_count_is_the_design_notes_figure():
    # The design notes quote 7,372,800 trainable (0.24%) for r16 on q,k,v,o of Qwen2.5-3B.
    p = plan_run("qwen2.5-3b", lora_targets=QKVO)
    assert p.trainable_params == 7_372_800
    assert round(p.trainable_percent, 2) == 0.24


@pytest.mark.parametrize("name", sorted(all_presets()))
def test_every_preset_plans_on_meta(name):
    p = plan_run(name, lora_r=8, lora_targets=["q_proj", "v_proj"])
    assert p.trainable_params == lora_formula(name, 8, ["q_proj", "v_proj"])
    lora, qlora = p.memory["lora (16-bit base)"], p.memory["qlora (4-bit nf4 base)"]
    assert qlora.weights < lora.weights / 2  # 4-bit linear weights
    bigger = plan_run(name, lora_r=8, lora_targets=["q_proj", "v_proj"], batch_size=8)
    assert bigger.memory["lora (16-bit base)"].activations == 2 * lora.activations


def test_counts_equal_peft_on_real_weights_and_adapter_size_is_exact(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    p = plan_run(str(tiny_model_dir), lora_r=4, lora_targets=ALL7)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    total_real = sum(x.numel() for x in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=ALL7, task_type="CAUSAL_LM"))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert p.trainable_params == trainable
    assert p.total_params == total_real and total == total_real + trainable
    peft_model.save_pretrained(tmp_path / "fp32")
    assert (tmp_path / "fp32" / "adapter_model.safetensors").stat().st_size == p.adapter_bytes_fp32
    peft_model.to(torch.float16).save_pretrained(tmp_path / "fp16")
    assert (tmp_path / "fp16" / "adapter_model.safetensors").stat().st_size == p.adapter_bytes_fp16


def test_embedded_count_matches_design():
    p = plan_run("smollm2-135m", lora_targets=ALL7)  # the design notes' figure: r16 on all 7 projections
    assert (p.total_params, p.trainable_params) == (134_515_008, 4_884_480)
    # By default the plan counts what `orgtune train` adapts: the preset's targets (the MLP's, for this model).
    p = plan_run("smollm2-135m")
    assert p.trainable_params == lora_formula("smollm2-135m", 16, ["gate_proj", "up_proj", "down_proj"]) == 3_041_280


def test_unknown_target_is_a_clear_error():
    with pytest.raises(OrgtuneError, match="(?s)not found.*choose from.*q_proj"):
        plan_run("qwen2.5-0.5b", lora_targets=["qkv_proj"])


def test_plan_cli_for_the_7b_preset():
    result = CliRunner().invoke(app, ["plan", "qwen2.5-coder-7b", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["total_params"] == 7_615_616_512
    assert d["trainable_params"] == lora_formula("qwen2.5-coder-7b", 16, ALL7)
    table = CliRunner().invoke(app, ["plan", "qwen2.5-3b", "--lora-targets", "q_proj,k_proj,v_proj,o_proj", "--qlora"])
    assert "7,372,800" in table.output and "qlora" in table.output and "lora (16-bit" not in table.output


def test_models_lists_every_preset():
    out = CliRunner().invoke(app, ["models"]).output
    for name, p in all_presets().items():
        assert name in out and p.hub_id in out
