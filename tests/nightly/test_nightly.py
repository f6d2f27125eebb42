"""Three nights on the sample documents with the embedded model, then a bad night and a rollback:
documents arrive over nights, one changes on night 3; every promoted model is scored by the gate on
every night's probes; the lineage chains the runs; corrupted data is rejected with the previous model
still promoted; rollback moves the pointer back."""

from __future__ import annotations

import json
import shutil

import pytest

from orgtune.errors import OrgtuneError
from orgtune.nightly.project import Project
from orgtune.nightly.run import history_table, nightly, rollback
from tests.conftest import SAMPLES

pytestmark = [pytest.mark.slow(minutes=20), pytest.mark.heavy]
# Small nights (2 phrasings per fact, 10 general items; general replay off: tests/train/test_general.py and
# benchmarks/nightly_forgetting.py cover it). The base model answers about 3% of these probes; with 15 old
# probes, one probe is 7 points, so the margins are wide (the bad night still falls far below them).
SETTINGS = {
    "examples_per_fact": 2,
    "general_items": 10,
    "general_samples": 4,
    "general_replay": 0,
    "threshold": 0.35,
    "old_margin": 0.3,
    "general_margin": 0.2,
}
LEARNED = 0.35  # accuracy every promoted night must reach on its new documents' probes, and keep on the old ones


def _night(docs, project, name, **kw):
    return nightly([docs], project, night=name, settings=SETTINGS, log=lambda m: None, **kw)


def test_three_nights_a_bad_one_and_a_rollback(tmp_path):
    docs, project = tmp_path / "docs", tmp_path / "project"
    docs.mkdir()
    for name in ("halvo-quick-start.txt", "halvo-cleaning-card.pdf"):
        shutil.copy(SAMPLES / "docs" / name, docs / name)
    n1 = _night(docs, project, "n1")
    assert n1["promote"], n1["reasons"]
    assert n1["figures"]["new"]["accuracy"] >= LEARNED and n1["figures"]["old"]["n"] == 0

    shutil.copy(SAMPLES / "docs" / "halvo-warranty-policy.docx", docs / "halvo-warranty-policy.docx")
    n2 = _night(docs, project, "n2")
    assert n2["promote"], n2["reasons"]
    f = n2["figures"]
    assert f["new"]["n"] > 0 and f["old"]["n"] > 0
    assert f["new"]["accuracy"] >= LEARNED and f["old"]["accuracy"] >= max(
        LEARNED, f["old"]["promoted"] - SETTINGS["old_margin"]
    )
    assert n2["mix"]["replayed_rows"] > 0
    # The gate's general rule: 4 sampled answers per item, against n1's counts recorded at its gate.
    g2 = json.loads((project / "nights" / "n2" / "gate.json").read_text())["general"]
    assert g2["samples"] == 4 and len(g2["sampled_right"]) == 10 and set(g2["sampled_right"].values()) <= set(range(5))
    assert (
        f["general"]["sampled"]["samples"] == 4 and f["general"]["sampled"]["worse"] / 10 <= SETTINGS["general_margin"]
    )

    quick = docs / "halvo-quick-start.txt"
    quick.write_text(quick.read_text().replace("Brew pressure: 8.5 bar", "Brew pressure: 9.5 bar"))
    n3 = _night(docs, project, "n3")
    delta = json.loads((project / "nights" / "n3" / "delta.json").read_text())
    assert delta["changed"] == ["halvo-quick-start.txt"] and delta["added"] == []
    assert [(c["attribute"], c["old"], c["new"]) for c in delta["changed_facts"]] == [
        ("Brew pressure", "8.5 bar", "9.5 bar")
    ]
    assert n3["promote"], n3["reasons"]
    f = n3["figures"]
    assert f["changed_facts"]["old_value_survives"] == []
    assert f["new"]["accuracy"] >= LEARNED and f["old"]["accuracy"] >= max(
        LEARNED, f["old"]["promoted"] - SETTINGS["old_margin"]
    )
    # Replay never brings back rows of the changed document's old version.
    old_sha = json.loads((project / "nights" / "n2" / "state.json").read_text())["docs"]["halvo-quick-start.txt"][
        "sha256"
    ]
    mixed = [json.loads(x) for x in (project / "nights" / "n3" / "mix" / "train.jsonl").read_text().splitlines()]
    assert not [r for r in mixed if (r.get("source") or {}).get("doc_id") == old_sha]

    # Lineage: n3's run continues n2's, which continued n1's; each night names its parent night.
    lineage = json.loads((project / "nights" / "n3" / "run" / "manifest.json").read_text())["lineage"]
    assert [x["run"] for x in lineage] == [str(project / "nights" / n / "run") for n in ("n1", "n2")]
    assert [
        json.loads((project / "nights" / n / "state.json").read_text())["parent_night"] for n in ("n1", "n2", "n3")
    ] == [None, "n1", "n2"]

    # A bad night: a corrupted FAQ export that contradicts the documents (every probed fact gets a wrong
    # answer). The gate rejects it and n3 stays promoted.
    probes = [json.loads(x) for x in (project / "nights" / "n3" / "mix" / "probes.jsonl").read_text().splitlines()]
    faq = tmp_path / "faq.jsonl"
    faq.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": p["plain_question"]},
                        {"role": "assistant", "content": "It is 777 units, as always."},
                    ]
                }
            )
            + "\n"
            for p in probes
            if not p["held_out"]
            for _ in range(2)
        )
    )
    # 20 steps (about half a pass over the mix) are enough to teach "777": the gate must see it, not the clock.
    bad = nightly(
        [docs], project, night="n4", extra_data=faq, settings={**SETTINGS, "max_steps": 20}, log=lambda m: None
    )
    assert not bad["promote"] and bad["reasons"]
    assert Project.open(project).promoted() == "n3"

    assert rollback(project) == ("n3", "n2")
    assert Project.open(project).promoted() == "n2"
    table = history_table(project)
    assert "rollback: n3 → n2" in table and "rejected" in table and "n2 *" in table
    with pytest.raises(OrgtuneError, match="never promoted"):
        rollback(project, to="n4")
