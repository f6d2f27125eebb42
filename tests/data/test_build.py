"""`orgtune data build` on the bundled documents: provenance, no duplicates, no probe leakage, bad files."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from orgtune.cli import app
from orgtune.data.build import BuildSettings, build, load_docs, read_jsonl
from orgtune.data.stats import data_stats
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "halvo"
    result = build([SAMPLES / "docs"], out, BuildSettings(), log=lambda m: None)
    return result


def _norm(s: str) -> str:
    return " ".join(s.split()).lower()


def test_every_example_is_traced_to_a_span_holding_its_value(built):
    docs = load_docs(built.out)
    facts = {f["fact_id"]: f for f in read_jsonl(built.out / "facts.jsonl")}
    rows = read_jsonl(built.out / "train.jsonl") + read_jsonl(built.out / "val.jsonl")
    assert len(rows) > 200
    for r in rows:
        src = r["source"]
        text = _norm(docs[src["doc_id"]].text[src["span"][0] : src["span"][1]])
        answer = _norm(r["messages"][-1]["content"])
        assert r["fact_ids"] or r["task"] == "RECALL", r["id"]
        for fid in r["fact_ids"]:
            f = facts[fid]
            if f["kind"] == "procedure":
                assert all(_norm(s) in text for s in f["steps"]), r["id"]
            elif f["kind"] != "summary":
                assert _norm(f["value"]) in text, (r["id"], f["value"])
        if r["task"] != "RECALL" and facts[r["fact_ids"][0]]["kind"] not in ("procedure", "summary"):
            assert _norm(facts[r["fact_ids"][0]]["value"]) in answer, r["id"]
        assert re.match(r"^\[(SPEC|PROCEDURE|EXPLAIN|TROUBLESHOOT|RECALL)\] ", r["messages"][0]["content"])


def test_held_out_facts_have_no_example_and_probes_never_leak(built):
    facts = read_jsonl(built.out / "facts.jsonl")
    rows = read_jsonl(built.out / "train.jsonl") + read_jsonl(built.out / "val.jsonl")
    probes = read_jsonl(built.out / "probes.jsonl")
    held = {f["fact_id"] for f in facts if f["held_out"]}
    assert held and 0.08 <= len(held) / len(facts) <= 0.25
    assert not held & {fid for r in rows for fid in r["fact_ids"]}
    assert any(p["held_out"] for p in probes) and any(not p["held_out"] for p in probes)
    questions = {_norm(r["messages"][0]["content"]) for r in rows}
    assert not any(_norm(p["question"]) in questions for p in probes)
    stats = data_stats(built.out, model=None)
    assert stats["exact_duplicates_now"] == 0 and stats["probe_leakage"] == 0
    assert stats["duplicates_removed_at_build"]["exact"] + stats["duplicates_removed_at_build"]["near"] > 0
    assert stats["facts_covered"] == stats["facts_trainable"]


def test_abstain_holdout_keeps_a_second_slice_out_of_training_and_probes(built, tmp_path):
    """--abstain-holdout: facts `data prefs` asks as never-seen ones. Not trained (no example, no passage
    of recall text over their span), not probed, disjoint from the held-out slice; the rest is unchanged."""
    out = build([SAMPLES / "docs"], tmp_path / "d", BuildSettings(abstain_holdout=0.2), log=lambda m: None).out
    facts = read_jsonl(out / "facts.jsonl")
    rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl")
    unknown = [f for f in facts if f.get("abstain_holdout")]
    assert unknown and not any(f["held_out"] for f in unknown)
    # drawn per kind: every kind of question a probe asks is met (a random draw gave only specs and sentences)
    assert {f["kind"] for f in unknown} >= {"spec", "table_cell", "procedure", "sentence", "default"}
    ids = {f["fact_id"] for f in unknown}
    assert not ids & {fid for r in rows for fid in r["fact_ids"]}
    assert not ids & {p["fact_id"] for p in read_jsonl(out / "probes.jsonl")}
    docs = load_docs(out)
    said = [_norm(docs[f["doc_id"]].text[f["span"][0] : f["span"][1]]) for f in unknown]
    for r in (r for r in rows if r["task"] == "RECALL"):  # (a section summary may still quote one: prefs skips those)
        assert not any(s in _norm(r["messages"][-1]["content"]) for s in said), r["id"]
    # The held-out slice is the same as without the option (same seed), so evaluations stay comparable.
    assert {f["fact_id"] for f in facts if f["held_out"]} == {
        f["fact_id"] for f in read_jsonl(built.out / "facts.jsonl") if f["held_out"]
    }
    stats = data_stats(out, model=None)
    assert stats["abstain_holdout_facts"] == len(unknown) and stats["facts_covered"] == stats["facts_trainable"]
    assert not any("abstain_holdout" in f for f in read_jsonl(built.out / "facts.jsonl"))


def test_hold_out_shares_that_leave_nothing_to_train_are_refused_before_work(tmp_path):
    from orgtune.errors import OrgtuneError

    with pytest.raises(OrgtuneError, match="--abstain-holdout 0.9") as e:
        build([SAMPLES / "docs"], tmp_path / "d", BuildSettings(abstain_holdout=0.9), log=lambda m: None)
    assert "sum is below 1" in e.value.fix and not (tmp_path / "d").exists()


def test_probes_carry_what_scoring_needs(built):
    for p in read_jsonl(built.out / "probes.jsonl"):
        assert p["expected"] and p["question"].startswith(f"[{p['task']}] ")
        if p["kind"] == "procedure":
            assert len(p["expected_steps"]) >= 2


def test_trace_and_stats_cli(built):
    row = read_jsonl(built.out / "train.jsonl")[0]
    r = CliRunner().invoke(app, ["data", "trace", row["id"], "--data", str(built.out)])
    assert r.exit_code == 0, r.output
    assert "⟦" in r.output and row["messages"][0]["content"] in r.output
    r = CliRunner().invoke(app, ["data", "stats", str(built.out), "--json"])
    s = json.loads(r.output)
    assert s["probe_leakage"] == 0 and s["exact_duplicates_now"] == 0 and s["tokens"]["max"] < 512
    r = CliRunner().invoke(app, ["data", "trace", "ex-000000000000", "--data", str(built.out)])
    assert r.exit_code == 2 and "no example" in r.output


def test_bad_files_are_reported_and_the_rest_is_built(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Pump P-7\n\nFlow rate: 40 l/min\n\nThe default speed is 1450 rpm.\n")
    (docs / "junk.pdf").write_bytes(bytes(range(256)) * 40)
    (docs / "empty.txt").write_text("")
    (docs / "latin1.txt").write_bytes("Caf\xe9 menu\n\nPrice: 3 EUR\n".encode("latin-1"))
    with open(docs / "huge.txt", "wb") as f:  # 50 MB, sparse: rejected by size before it is read
        f.truncate(50 * 2**20)
    out = tmp_path / "out"
    messages = []
    result = build([docs], out, BuildSettings(max_file_mb=20), log=messages.append)
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in result.manifest["skipped"]}
    assert set(reasons) == {"junk.pdf", "empty.txt", "latin1.txt", "huge.txt"}
    assert "PDF" in reasons["junk.pdf"] and "empty" in reasons["empty.txt"]
    assert "UTF-8" in reasons["latin1.txt"] and "line 1" in reasons["latin1.txt"]
    assert "MB" in reasons["huge.txt"] and "--max-file-mb" in reasons["huge.txt"]
    assert len(messages) == 4
    facts = read_jsonl(out / "facts.jsonl")
    assert {("spec", "40 l/min"), ("default", "1450 rpm")} <= {(f["kind"], f["value"]) for f in facts}


def test_build_refuses_a_foreign_folder_and_keeps_it(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = CliRunner().invoke(app, ["data", "build", str(SAMPLES / "docs"), "--out", str(out)])
    assert r.exit_code == 2 and "not an orgtune data folder" in r.output
    assert (out / "notes.txt").read_text() == "keep me"
