"""Loading from the embedded wheel, a local folder, and a hub id through the HF cache (offline)."""

from __future__ import annotations

import shutil

import pytest

from orgtune.errors import OrgtuneError
from orgtune.models.loading import load_model, pick_device, pick_dtype, resolve_source


def test_embedded_is_cached_as_safetensors_and_answers(embedded_dir):
    import torch

    assert (embedded_dir / "model.safetensors").is_file() and (embedded_dir / "COMPLETE").is_file()
    model, tok, info = load_model("smollm2-135m")
    assert info["kind"] == "embedded" and info["device"] == "cpu" and info["dtype"] == "float32"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_local_folder(tiny_model_dir):
    model, tok, info = load_model(str(tiny_model_dir))
    assert info["kind"] == "folder" and model.config.num_hidden_layers == 2
    assert tok.chat_template


def test_hub_id_resolves_through_the_local_hf_cache(tiny_model_dir, tmp_path, monkeypatch):
    # Lay the tiny model out exactly as huggingface_hub caches a download.
    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny-chat" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model_dir, snap)
    (cache / "models--acme--tiny-chat" / "refs").mkdir(parents=True)
    (cache / "models--acme--tiny-chat" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    model, _, info = load_model("acme/tiny-chat")
    assert info["kind"] == "hub" and model.config.hidden_size == 64


def test_missing_hub_model_names_the_offline_presets(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OrgtuneError) as e:
        resolve_source("qwen2.5-3b")
    assert "Qwen/Qwen2.5-3B-Instruct" in str(e.value) and "smollm2-135m" in str(e.value)


def test_bad_specs(tmp_path, tiny_model_dir):
    with pytest.raises(OrgtuneError, match="no config.json"):
        resolve_source(str(tmp_path))
    with pytest.raises(OrgtuneError, match="neither a preset"):
        resolve_source("./no/such/folder")
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(OrgtuneError, match="safetensors"):
        load_model(str(pickled))


def test_device_and_dtype_choice():
    import torch

    assert pick_device("auto") == "cpu"
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cpu", "bfloat16") == torch.bfloat16
    with pytest.raises(OrgtuneError, match="no CUDA GPU"):
        pick_device("cuda")
