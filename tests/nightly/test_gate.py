"""The gate's decision on hand-made figures: which general rule counts, and what each reason says."""

from __future__ import annotations

from orgtune.nightly.gate import decide, general_figures
from orgtune.nightly.project import NightlySettings

PROBES = [{"probe_id": "p1", "fact_id": "f1", "held_out": False, "nightly": {"group": "new"}}]
CANDIDATE = {"p1": {"correct": True, "abstained": False, "answer": "9.5 bar"}}


def _general(right: list[bool], sampled: list[int] | None = None) -> dict:
    g = {"items": len(right), "right": sum(right), "per_item": {f"g{i}": ok for i, ok in enumerate(right)}}
    if sampled is not None:
        g |= {"samples": 8, "sampled_right": {f"g{i}": n for i, n in enumerate(sampled)}}
    return g


def _decide(general: dict, ref: dict) -> dict:
    return decide(
        probes=PROBES,
        candidate=CANDIDATE,
        reference=None,
        general=general,
        general_ref=ref,
        changed=[],
        settings=NightlySettings(threshold=0.5, general_margin=0.1),
    )


def test_sampled_rule_decides_when_both_sides_have_samples():
    # Greedy: 4 of 10 flipped to wrong (a 40% drop), but the sampled counts barely moved: promoted.
    ref = _general([True] * 10, [6] * 10)
    cand = _general([False] * 4 + [True] * 6, [5] * 10)
    d = _decide(cand, ref)
    assert d["promote"], d["reasons"]
    assert d["figures"]["general"]["worse"] == 4 and d["figures"]["general"]["sampled"]["worse"] == 0

    # Greedy unchanged, but two items went from 6 of 8 sampled answers right to 1 of 8: 20% > 10%, rejected.
    cand = _general([True] * 10, [1, 1] + [6] * 8)
    d = _decide(cand, ref)
    assert not d["promote"] and d["reasons"] == ["general check: 2 of 10 items worse by the sampled rule (margin 10%)"]
    assert d["figures"]["general"]["sampled"] == {
        "samples": 8,
        "worse": 2,
        "better": 0,
        "mean_base": 0.75,
        "mean_tuned": 0.625,
    }


def test_greedy_rule_when_the_reference_has_no_samples():
    ref = _general([True] * 10)  # e.g. a night promoted before the gate sampled
    cand = _general([False] * 2 + [True] * 8, [8] * 10)
    assert "sampled" not in general_figures(cand, ref)
    d = _decide(cand, ref)
    assert not d["promote"] and d["reasons"] == ["general check fell from 10 to 8 of 10 (margin 10%)"]
