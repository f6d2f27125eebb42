"""`orgtune eval` end to end on a tiny model: report.md, metrics.json (every figure), plots, answers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from orgtune.cli import app
from orgtune.data.build import BuildSettings, build
from orgtune.evaluate.regression import load_general
from orgtune.evaluate.report import summary_table
from orgtune.train.sft import train
from tests.conftest import SAMPLES


def test_eval_writes_a_report_built_from_metrics(tmp_path, tiny_model_dir):
    data = build([SAMPLES / "docs"], tmp_path / "data", BuildSettings(), log=lambda m: None).out
    run = train(data, tmp_path / "run", log=lambda m: None, overrides={
        "model": {"name": str(tiny_model_dir)}, "training": {"max_steps": 2, "save_steps": 100}})
    r = CliRunner().invoke(app, ["eval", str(run.path), "--max-probes", "24"])
    assert r.exit_code == 0, r.output
    m = json.loads((run.path / "metrics.json").read_text())
    report = (run.path / "report.md").read_text()
    assert summary_table(m) in report and summary_table(m) in r.output
    for name in ("base", "tuned"):
        b = m["backends"][name]
        assert b["probes"]["trained"]["overall"]["n"] + b["probes"]["held_out"]["overall"]["n"] == 24
        assert b["val"]["tokens"] > 0 and b["val"]["perplexity"] > 1
    assert m["regression"]["total"] == len(load_general()) >= 100 and "rule" in m["regression"]
    for png in m["plots"]:
        assert (run.path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"![{png}]({png})" in report
    answers = [json.loads(x) for x in (run.path / "eval" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 24 and all({"base", "tuned"} <= a["answers"].keys() for a in answers)
    assert len(m["samples"]) >= 6 and "| task | held out |" in report


def test_eval_needs_probes(tmp_path, tiny_model_dir, demo_data):
    run = train(demo_data, tmp_path / "run", log=lambda m: None, overrides={
        "model": {"name": str(tiny_model_dir)}, "training": {"max_steps": 1, "save_steps": 100}})
    r = CliRunner().invoke(app, ["eval", str(run.path)])
    assert r.exit_code == 2 and "probes" in r.output and "Fix:" in r.output
