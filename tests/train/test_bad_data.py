"""Malformed data of every kind: line-numbered errors, non-zero exit, and no run folder left behind."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orgtune.cli import app

GOOD = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
CASES = {
    "invalid-json": (GOOD + "\n" + '{"messages": [' + "\n", 2, "invalid JSON"),
    "not-utf8": (GOOD + "\n" + GOOD + "\n", 2, "UTF-8"),
    "missing-messages": (GOOD + "\n" + '{"messages": []}' + "\n", 2, "messages"),
    "unknown-role": (GOOD + "\n" + '{"messages": [{"role": "bot", "content": "x"}]}' + "\n", 2, "unknown role"),
    "empty-content": (GOOD + "\n" + GOOD.replace('"a"', '"  "') + "\n", 2, "empty"),
    "no-assistant": ('{"messages": [{"role": "user", "content": "q"}]}' + "\n", 1, "assistant"),
    "mixed-formats": (GOOD + "\n" + '{"instruction": "i", "output": "o"}' + "\n", 2, "mixed"),
    "empty-file": ("\n\n", None, "empty"),
    "alpaca-empty-output": ('{"instruction": "i", "output": ""}' + "\n", 1, "output"),
    "sharegpt-bad-from": ('{"conversations": [{"from": "robot", "value": "x"}]}' + "\n", 1, "robot"),
    "one-row": (GOOD + "\n", None, "at least 2 are needed"),
    "assistant-first": (
        GOOD + "\n" + '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}, '
        '{"role": "user", "content": "q"}]}' + "\n",
        2,
        "message 0 is assistant where user was expected",
    ),
    "preference-for-sft": ('{"prompt": "p", "chosen": "a", "rejected": "b"}' + "\n", None, "--method dpo"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_refuses_bad_data_before_anything(case, tmp_path):
    text, line, reason = CASES[case]
    f = tmp_path / "train.jsonl"
    data = text.encode()
    if case == "not-utf8":  # line 2 carries a byte that is not UTF-8
        data = (GOOD + "\n").encode() + GOOD.encode().replace(b'"a"', b'"\xff"') + b"\n"
    f.write_bytes(data)
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(f), "--out", str(out)])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert reason.lower() in r.output.lower()
    if line is not None:
        assert f"{f}:{line}:" in r.output
    assert "Fix:" in r.output
    assert not out.exists()


def test_bad_config_key_names_file_and_line(tmp_path, demo_data):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  name: smollm2-135m\ntraining:\n  num_epochs: 1\n  learnin_rate: 0.1\n")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(demo_data), "--out", str(out), "--config", str(cfg)])
    assert r.exit_code == 2 and f"{cfg}:5" in r.output and "learnin_rate" in r.output
    assert not out.exists()


def test_qlora_without_bitsandbytes_or_cuda_is_clear(tmp_path, demo_data):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(demo_data), "--out", str(out), "--qlora"])
    assert r.exit_code == 2 and ("bitsandbytes" in r.output or "CUDA" in r.output)
    assert not out.exists()
