"""`orgtune eval` end to end on a tiny model: report.md, metrics.json (every figure), plots, answers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from orgtune.cli import app
from orgtune.data.build import BuildSettings, build
from orgtune.evaluate.regression import load_general, right
from orgtune.evaluate.report import summary_table
from orgtune.home import home
from orgtune.train.sft import train
from tests.conftest import SAMPLES


def test_eval_writes_a_report_built_from_metrics(tmp_path, tiny_model_dir):
    data = build([SAMPLES / "docs"], tmp_path / "data", BuildSettings(), log=lambda m: None).out
    run = train(
        data,
        tmp_path / "run",
        log=lambda m: None,
        overrides={"model": {"name": str(tiny_model_dir)}, "training": {"max_steps": 2, "save_steps": 100}},
    )
    r = CliRunner().invoke(app, ["eval", str(run.path), "--max-probes", "24", "--general-items", "20"])
    assert r.exit_code == 0, r.output
    m = json.loads((run.path / "metrics.json").read_text())
    report = (run.path / "report.md").read_text()
    assert summary_table(m) in report and summary_table(m) in r.output
    for name in ("base", "tuned"):
        b = m["backends"][name]
        assert b["probes"]["trained"]["overall"]["n"] + b["probes"]["held_out"]["overall"]["n"] == 24
        assert b["val"]["tokens"] > 0 and b["val"]["perplexity"] > 1
    assert len(load_general()) >= 100 and m["regression"]["total"] == 20 and "rule" in m["regression"]
    sr = m["regression"]["sampled"]  # 8 sampled answers per item, by default
    assert sr["samples"] == 8 and sr["total"] == len(sr["rows"]) == m["regression"]["total"]
    assert all(0 <= x["base_right"] <= 8 and 0 <= x["tuned_right"] <= 8 for x in sr["rows"])
    assert sr["mean_base"] == round(sum(x["base_right"] for x in sr["rows"]) / (8 * sr["total"]), 4)
    assert f"### Sampled rule, 8 answers per item: worse {sr['worse']}, better {sr['better']}" in report
    # The base model's sampled answers are cached per base, as its greedy ones are: the counts come from them.
    cached = [json.loads(f.read_text()) for f in (home() / "general").glob("base-answers-*.json")]
    general = load_general()[:20]
    counts = [
        [sum(right(g, a) for a in answers) for g, answers in zip(general, c, strict=True)]
        for c in cached
        if len(c) == len(general) and isinstance(c[0], list)
    ]
    assert [x["base_right"] for x in sr["rows"]] in counts
    for png in m["plots"]:
        assert (run.path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"![{png}]({png})" in report
    answers = [json.loads(x) for x in (run.path / "eval" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 24 and all({"base", "tuned"} <= a["answers"].keys() for a in answers)
    assert len(m["samples"]) >= 6 and "| task | held out |" in report


def test_eval_of_a_dataset_run_without_probes(tmp_path, tiny_model_dir):
    """A run trained on a JSONL dataset has no probes: eval judges it on validation loss and the general
    check, and shows base and tuned answering the validation questions beside their reference answers."""
    rows = (SAMPLES / "demo_chat.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(rows[:50]))
    (tmp_path / "val.jsonl").write_text("".join(rows[50:]))
    run = train(
        tmp_path / "train.jsonl",
        tmp_path / "run",
        val=tmp_path / "val.jsonl",
        log=lambda m: None,
        overrides={"model": {"name": str(tiny_model_dir)}, "training": {"max_steps": 1, "save_steps": 100}},
    )
    r = CliRunner().invoke(app, ["eval", str(run.path), "--general-items", "3", "--general-samples", "0"])
    assert r.exit_code == 0, r.output
    m = json.loads((run.path / "metrics.json").read_text())
    assert m["probes_file"] is None and m["regression"]["total"] == 3 and "sampled" not in m["regression"]
    for name in ("base", "tuned"):
        assert m["backends"][name]["probes"]["trained"]["overall"]["n"] == 0
        assert m["backends"][name]["val"]["rows"] == len(rows) - 50 and m["backends"][name]["val"]["tokens"] > 0
    val = [json.loads(x)["messages"] for x in rows[50:58]]
    assert [s["reference"] for s in m["samples"]] == [f"val.jsonl:{i}" for i in range(1, 9)]
    assert [s["expected"] for s in m["samples"]] == [v[-1]["content"] for v in val]
    assert [s["question"] for s in m["samples"]] == [v[-2]["content"] for v in val]
    assert all(isinstance(s["base"], str) and s["base_correct"] is None for s in m["samples"])
    report = (run.path / "report.md").read_text()
    assert "None: the run trained on a JSONL dataset" in report and "| val.jsonl:1 |" in report
    assert "plots/probes.png" not in m["plots"] and "trained-fact" not in summary_table(m)
    assert summary_table(m) in r.output

    r = CliRunner().invoke(app, ["eval", str(run.path), "--probes", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "nope.jsonl: no such probes file" in r.output and "Fix:" in r.output

    # A broken validation row is a file:line error before the model loads; the earlier report stays.
    lines = (tmp_path / "val.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "val.jsonl").write_text("".join(lines[:2]) + '{"messages": [\n' + "".join(lines[3:]))
    r = CliRunner().invoke(app, ["eval", str(run.path), "--general-items", "3"])
    assert r.exit_code == 2 and "val.jsonl:3" in r.output and "Loading weights" not in r.output, r.output
    assert (run.path / "report.md").read_text() == report
