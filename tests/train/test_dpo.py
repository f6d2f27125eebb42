"""DPO on top of SFT: preference pairs from documents, TRL's DPOTrainer with the SFT adapter as reference,
held-out margins, eval side by side, and bad preference input."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import yaml

from orgtune.data.build import BuildSettings, build
from orgtune.data.extract import Fact
from orgtune.prefs.build import PrefSettings, build_prefs
from orgtune.prefs.corrupt import borrowed, corrupt
from tests.conftest import SAMPLES, run_cli


def _fact(kind="spec", value="9 bar", unit="bar", steps=None, subject="Halvo", attribute="brew pressure"):
    return Fact("f1", "d", kind, subject, attribute, value, unit, (0, 1), [], steps=steps)


def test_corruptions_are_wrong_and_keep_the_sentence():
    rng = random.Random(0)
    wrong, how = corrupt(_fact(), "The brew pressure of the Halvo is 9 bar.", [], rng)
    assert how == "number" and wrong.startswith("The brew pressure of the Halvo is ") and " 9 bar" not in wrong
    wrong, how = corrupt(
        _fact(value="off", unit=None, attribute="default"), "By default, the cup warmer is off.", [], rng
    )
    assert (wrong, how) == ("By default, the cup warmer is on.", "boolean")
    steps = ["Fill the tank.", "Press Start.", "Rinse twice."]
    answer = 'The procedure "Descaling" has these steps:\n1. Fill the tank.\n2. Press Start.\n3. Rinse twice.'
    wrong, how = corrupt(_fact("procedure", "\n".join(steps), None, steps, "Descaling", "steps"), answer, [], rng)
    assert how == "order" and wrong.split("\n")[0] == answer.split("\n")[0] and wrong != answer
    assert {line[3:] for line in wrong.split("\n")[1:]} == set(steps)
    other = Fact("f2", "d", "spec", "Halvo", "boiler", "1.2 l", "l", (2, 3), [])
    wrong, how = corrupt(
        _fact(value="stainless steel", unit=None, attribute="housing"),
        "The housing of the Halvo is stainless steel.",
        [other],
        rng,
    )
    assert (wrong, how) == ("The housing of the Halvo is 1.2 l.", "neighbour")


def test_a_trained_value_the_model_gave_for_an_unknown_fact_is_borrowed():
    """Anchor pairs go to the trained facts whose value turns up in a wrong answer to an unknown question."""
    steam = Fact("steam", "d", "spec", "Halvo", "steam ready", "20 seconds", "s", (0, 1), [])
    model = Fact("model", "d", "spec", "Halvo", "model", "HV-3120", None, (1, 2), [])
    volts = Fact("volts", "d", "spec", "Halvo", "supply voltage", "220-240 V", "V", (2, 3), [])
    short = Fact("short", "d", "default", "Halvo", "cup warmer", "on", None, (3, 4), [])
    steps = Fact(
        "steps", "d", "procedure", "Descaling", "steps", "Fill the tank.", None, (4, 5), [], steps=["Fill the tank."]
    )
    facts = [steam, model, volts, short, steps]
    said = [
        ("What is the heat-up time of the Halvo HV-3120?", "The heat-up time of the Halvo HV-3120 is 20 seconds."),
        ("What is the heater power of the Halvo?", "The heater power is on; Fill the tank. first."),
    ]
    # the model number is in the question itself; "on" is too short to tell; a procedure has no single value
    assert borrowed(said, facts) == ["steam"]
    assert borrowed([("Heat-up time?", "It takes 120 seconds, or 2.20 seconds")], facts) == []
    assert borrowed([("Supply?", "It runs on 220-240 V.")], facts) == ["volts"]
    assert borrowed([], facts) == []


def test_abstaining_answers_read_as_abstentions_for_every_kind_of_fact(tmp_path):
    """The chosen answer for an unknown fact, the rejected one of a refusal pair: the scorer must read both
    as abstaining (never as a right or a confidently wrong value), whatever the fact's kind. Given the
    grounded answer, the abstention stands where the value stood: same words before it, no value after."""
    from orgtune.data.build import load_docs, read_jsonl
    from orgtune.data.synth import BUILDERS
    from orgtune.evaluate.score import abstains, score_probe
    from orgtune.prefs.unstated import dont_know, not_stated

    data = build([SAMPLES / "docs"], tmp_path / "d", BuildSettings(), log=lambda m: None).out
    docs = load_docs(data)
    facts = [Fact.from_dict({k: v for k, v in d.items() if k != "held_out"}) for d in read_jsonl(data / "facts.jsonl")]
    kinds, in_place = set(), set()
    for f in facts:
        doc = docs[f.doc_id]
        grounded = [a for _n, _t, _q, a in BUILDERS[f.kind](f, doc)]
        for text in (not_stated(f, doc), dont_know(f, doc), *(dont_know(f, doc, a) for a in grounded)):
            verdict = score_probe(
                {
                    "kind": f.kind,
                    "task": "SPEC",
                    "expected": f.value,
                    "unit": f.unit,
                    **({"expected_steps": f.steps} if f.steps else {}),
                },
                text,
            )
            assert abstains(text) and verdict.abstained and not verdict.correct, (f.kind, text)
        for a in grounded:
            text = dont_know(f, doc, a)
            value = f.steps[0] if f.steps else f.value
            if text != dont_know(f, doc):  # in place: the grounded words up to the value, then abstaining
                head = text[: text.index("unknown to me") if f.kind != "procedure" else text.index("They are")]
                head = head.removesuffix("a figure ").removesuffix("— ")
                assert a.startswith(head) and len(head) > 10, (a, text)
                assert value not in text[len(head) :].replace(doc.title, ""), (a, text)
                in_place.add(f.kind)
        kinds.add(f.kind)
    assert {"spec", "table_cell", "procedure", "sentence", "default", "summary", "definition"} <= kinds
    assert {"spec", "table_cell", "procedure", "sentence", "default", "definition"} <= in_place


def test_prefs_refuses_a_share_out_of_range_before_any_model_loads(tmp_path):
    from orgtune.errors import OrgtuneError

    data = build([SAMPLES / "docs"], tmp_path / "d", BuildSettings(), log=lambda m: None).out
    with pytest.raises(OrgtuneError, match="--refusal-share 2"):
        build_prefs(data, "no-such-model", tmp_path / "p.jsonl", PrefSettings(refusal_share=2))
    assert not (tmp_path / "p.jsonl").exists()


def test_user_preference_files_are_validated_before_training(tmp_path, demo_data):
    bad = tmp_path / "prefs.jsonl"
    bad.write_text(
        json.dumps({"prompt": "Q?", "chosen": "A", "rejected": "A"})
        + "\n"
        + json.dumps({"prompt": "Q?", "chosen": [{"role": "user", "content": "x"}], "rejected": "B"})
        + "\n"
    )
    r = run_cli("train", "--method", "dpo", "--data", str(bad), "--out", str(tmp_path / "run"), timeout=120)
    assert r.returncode == 2
    assert (
        f"{bad}:1: 'chosen' and 'rejected' are identical" in r.stderr
        and f"{bad}:2: no assistant turn in 'chosen'" in r.stderr
    )
    r = run_cli("train", "--method", "dpo", "--data", str(demo_data), "--out", str(tmp_path / "run"), timeout=120)
    assert r.returncode == 2 and "holds chat data" in r.stderr
    assert not (tmp_path / "run").exists()
    r = run_cli("train", "--beta", "0.2", "--data", str(demo_data), "--out", str(tmp_path / "run"), timeout=120)
    assert r.returncode == 2 and "--method dpo" in r.stderr
    good = _tiny_prefs(tmp_path / "good.jsonl")
    r = run_cli(
        "train",
        "--method",
        "dpo",
        "--data",
        str(good),
        "--out",
        str(tmp_path / "run"),
        "--loss-weights",
        "1",
        timeout=120,
    )
    assert r.returncode == 2 and "loss_weights has 1 values for 2 loss types" in r.stderr
    r = run_cli(
        "train", "--method", "dpo", "--data", str(good), "--out", str(tmp_path / "run"), "--replay", "1", timeout=120
    )
    assert r.returncode == 2 and "--replay needs SFT rows to replay" in r.stderr and "--replay-data FILE" in r.stderr
    r = run_cli(
        "train",
        "--method",
        "dpo",
        "--data",
        str(good),
        "--out",
        str(tmp_path / "run"),
        "--replay",
        "1",
        "--replay-data",
        str(bad),
        timeout=120,
    )
    assert r.returncode == 2 and f"{bad}:1:" in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.heavy
@pytest.mark.slow(minutes=13)
def test_sft_then_dpo_on_the_embedded_model(tmp_path):
    """SFT, pairs from the SFT model's own answers, DPO a few steps: the held-out chosen-minus-rejected
    margin grows over the SFT reference, the DPO adapter reloads and eval shows base → SFT → DPO."""
    from peft import PeftModel

    from orgtune.evaluate.prefs import pair_logps
    from orgtune.evaluate.score import abstains
    from orgtune.models.loading import load_model
    from orgtune.train.dpo import train_dpo
    from orgtune.train.runfolder import read_complete_run
    from orgtune.train.sft import train

    data = build([SAMPLES / "docs"], tmp_path / "data", BuildSettings(abstain_holdout=0.1), log=lambda m: None).out
    sft = train(
        data, tmp_path / "sft", log=lambda m: None, overrides={"training": {"max_steps": 12, "save_steps": 100}}
    )
    prefs = build_prefs(
        data,
        str(sft.path),
        tmp_path / "prefs.jsonl",
        PrefSettings(max_questions=24, val_fraction=0.2, unknown_per_fact=1, refusal_share=0.5, sure=0, anchors=True),
        log=lambda m: None,
    )
    rows = [json.loads(x) for x in prefs.train.read_text().splitlines()]
    val = [json.loads(x) for x in prefs.val.read_text().splitlines()]
    kinds = {r["rejected_kind"] for r in rows + val}
    assert rows and val and kinds & {"model", "number", "neighbour", "boolean", "order"}
    assert {"refusal", "unknown"} <= kinds and prefs.counts["rejected_kinds"]["refusal"] == round(
        0.5 * prefs.counts["questions"]
    )
    assert all(r["chosen"] != r["rejected"] for r in rows + val)
    assert all(r["fact_ids"] and r["source"]["span"] for r in rows if r["rejected_kind"] != "abstain")
    facts = [json.loads(x) for x in (data / "facts.jsonl").read_text().splitlines()]
    held = {f["fact_id"] for f in facts if f["held_out"]}
    assert not held & {i for r in rows + val for i in r["fact_ids"]}
    # Unknown facts (kept out of SFT): chosen abstains; the rest of the pairs ask only trained facts.
    unknown = {f["fact_id"] for f in facts if f.get("abstain_holdout")}
    for r in rows + val:
        assert (r["rejected_kind"] == "unknown") == bool(set(r["fact_ids"]) & unknown)
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        if r["rejected_kind"] == "unknown":
            assert abstains(chosen) and ("unknown to me" in chosen or chosen.startswith("I don't know "))
        if r["rejected_kind"] == "refusal":  # the same words, rejected on a fact the model was trained on
            assert (
                abstains(rejected)
                and not abstains(chosen)
                and ("unknown to me" in rejected or rejected.startswith("I don't know "))
            )
        if r["rejected_kind"] in ("model", "unknown", "abstain", "refusal"):  # the model answered: how sure it was
            assert 0 <= r["model_confidence"] <= 1
    assert not {i for r in rows for i in r["fact_ids"]} & {i for r in val for i in r["fact_ids"]}
    # anchors: a trained fact whose value the model gave for an unknown one, against abstaining on it
    by_id = {f["fact_id"]: f for f in facts}
    wrong_for_unknown = " ".join(
        r["rejected"][0]["content"].lower() for r in rows + val if r["rejected_kind"] in ("unknown", "abstain")
    )
    refused = {r["fact_ids"][0] for r in rows + val if r["rejected_kind"] == "refusal"}
    anchors = [r for r in rows + val if r["rejected_kind"] == "anchor"]
    assert prefs.counts["rejected_kinds"].get("anchor", 0) == len(anchors)
    for r in anchors:
        f = by_id[r["fact_ids"][0]]
        assert not f["held_out"] and not f.get("abstain_holdout") and f["fact_id"] not in refused
        assert f["value"].lower() in wrong_for_unknown
        assert abstains(r["rejected"][0]["content"]) and not abstains(r["chosen"][0]["content"])
    # --sure: abstention pairs only where the model was unsure, refusal pairs only where it was right and sure
    threshold = (
        sorted(r["model_confidence"] for r in rows + val if r["rejected_kind"] in ("unknown", "abstain"))[0] + 1e-4
    )
    gated = build_prefs(
        data,
        str(sft.path),
        tmp_path / "gated.jsonl",
        PrefSettings(
            max_questions=24, val_fraction=0.2, unknown_per_fact=1, refusal_share=0.5, sure=threshold, anchors=True
        ),
        log=lambda m: None,
    )
    g = [json.loads(x) for p in (gated.train, gated.val) for x in p.read_text().splitlines()]
    assert all(r["model_confidence"] < threshold + 1e-6 for r in g if r["rejected_kind"] in ("unknown", "abstain"))
    assert all(r["model_confidence"] >= threshold - 1e-6 for r in g if r["rejected_kind"] == "refusal")
    before = sum(r["rejected_kind"] in ("unknown", "abstain") for r in rows + val)
    after = sum(r["rejected_kind"] in ("unknown", "abstain") for r in g)
    assert 1 <= after < before and gated.counts["skipped_wrong_but_sure"] == before - after

    dpo = train_dpo(
        prefs.train,
        tmp_path / "dpo",
        init_adapter=sft.path,
        log=lambda m: None,
        overrides={"training": {"max_steps": 16, "learning_rate": 5e-4, "save_steps": 100}},
    )
    assert dpo.manifest["method"] == "dpo" and dpo.manifest["parent"]["run"] == str(sft.path.resolve())
    assert dpo.manifest["data"]["val"]["rows"] == len(val)
    # by default the parent's own SFT rows are replayed beside the pairs
    assert dpo.manifest["data"]["replay"]["path"] == str((data / "train.jsonl").resolve())
    assert dpo.manifest["data"]["replay"]["weight"] == 1.0
    assert sorted(p.name for p in dpo.adapter_dir.iterdir() if p.is_dir()) == []  # the reference copy is not saved

    base, tok, _ = load_model("smollm2-135m", device="cpu", dtype="float32")
    model = PeftModel.from_pretrained(base, sft.adapter_dir, adapter_name="sft")
    model.load_adapter(str(read_complete_run(dpo.path).adapter_dir), adapter_name="dpo")  # reloads
    margins = {}
    for name in ("sft", "dpo"):
        model.set_adapter(name)
        pairs = pair_logps(model, tok, val, max_len=512)
        margins[name] = sum(c - r for c, r in pairs) / len(pairs)
    assert margins["dpo"] > margins["sft"], margins

    r = run_cli(
        "eval", str(dpo.path), "--max-probes", "8", "--general-items", "4", "--general-samples", "2", timeout=900
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((dpo.path / "metrics.json").read_text())
    assert list(m["backends"]) == ["base", "sft", "tuned"]
    assert m["regression"]["total"] == 4 and m["regression"]["sampled"]["samples"] == 2  # the first 4 items, 2 samples
    p = m["preferences"]
    assert p["pairs"] == len(val) and p["reward_margin_mean"] > 0
    assert abs(p["by_backend"]["tuned"]["mean_logp_margin"] - margins["dpo"]) < 1e-3
    assert "## Preference pairs held out of DPO" in (dpo.path / "report.md").read_text()


def _tiny_prefs(path):
    rows = []
    for i in range(24):
        q = f"What is the brew pressure of model HV-{i}?"
        rows.append(
            {
                "prompt": [{"role": "user", "content": q}],
                "chosen": [{"role": "assistant", "content": f"Model HV-{i} brews at {8 + i % 3} bar."}],
                "rejected": [{"role": "assistant", "content": f"Model HV-{i} brews at {20 + i} bar."}],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dpo_resumes_after_sigkill_with_the_same_losses(tmp_path, tiny_model_dir, demo_data):
    """Crash-safe like SFT: killed mid-run, the same command resumes and logs the uninterrupted losses,
    SFT replay included (the replayed rows continue where the killed run was)."""
    from tests.train.test_resume import assert_same, kill_after_step, losses

    sft_rows = tmp_path / "sft_rows.jsonl"
    shutil.copy(demo_data, sft_rows)
    r = run_cli(
        "train",
        "--data",
        str(sft_rows),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_path / "sft"),
        "--max-steps",
        "2",
        "--save-steps",
        "100",
    )
    assert r.returncode == 0, r.stderr
    prefs = _tiny_prefs(tmp_path / "prefs.jsonl")

    def args(out):
        return [
            "train",
            "--method",
            "dpo",
            "--data",
            str(prefs),
            "--init-adapter",
            str(tmp_path / "sft"),
            "--out",
            str(out),
            "--max-steps",
            "12",
            "--save-steps",
            "3",
            "--lr",
            "1e-3",
            "--beta",
            "0.2",
            "--replay",
            "0.5",
        ]

    r = run_cli(*args(tmp_path / "ref"))
    assert r.returncode == 0, r.stderr
    reference = losses(tmp_path / "ref")
    assert len(reference) == 12
    cfg = yaml.safe_load((tmp_path / "ref" / "config.yaml").read_text())
    assert cfg["dpo"] == {
        "beta": 0.2,
        "loss_type": ["sigmoid", "sft"],
        "loss_weights": None,
        "label_smoothing": 0.0,
        "replay": 0.5,
        "replay_data": None,
    }
    assert cfg["training"]["learning_rate"] == 1e-3 and cfg["training"]["num_epochs"] == 1
    out = tmp_path / "run"
    kill_after_step(args(out), out / "metrics.jsonl", 5)
    r = run_cli(*args(out))
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr
    assert_same(reference, losses(out))
    replayed = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(m["replay_nll"] > 0 for m in replayed if "loss" in m)
    entry = json.loads((out / "manifest.json").read_text())["data"]["replay"]
    assert entry["path"] == str(sft_rows.resolve()) and entry["weight"] == 0.5
    # the parent's training file edited since: replaying it would not replay what SFT learned
    sft_rows.write_text(sft_rows.read_text() + sft_rows.read_text().splitlines()[0] + "\n")
    r = run_cli(*args(tmp_path / "edited"))
    assert r.returncode == 2 and f"{sft_rows.resolve()} changed since" in r.stderr
    assert not (tmp_path / "edited").exists()
    # without --replay the run goes on, replay off, and says so
    r = run_cli(
        "train",
        "--method",
        "dpo",
        "--data",
        str(prefs),
        "--init-adapter",
        str(tmp_path / "sft"),
        "--out",
        str(tmp_path / "edited"),
        "--max-steps",
        "1",
    )
    assert r.returncode == 0, r.stderr
    assert "SFT replay off:" in r.stderr and "changed since" in r.stderr
    assert "replay" not in json.loads((tmp_path / "edited" / "manifest.json").read_text())["data"]
