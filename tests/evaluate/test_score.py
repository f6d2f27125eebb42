"""The scorer is strict: wrong numbers, hedges and opposite booleans are wrong; equivalent forms are right."""

from __future__ import annotations

import pytest

from orgtune.evaluate.regression import (
    compare,
    compare_sampled,
    compare_sampled_answers,
    degenerate,
    fisher_lower,
    sign_test,
)
from orgtune.evaluate.score import rouge_l, score_probe, score_steps, score_text, score_value, token_f1


@pytest.mark.parametrize(
    "expected,answer",
    [
        ("35 psi", "The tire pressure is 35 PSI."),
        ("1 min", "Wait one minute before opening the lid."),
        ("8.5 bar", "The Velbrook Halvo brews at 8.5 bar."),
        ("93 C", "The default brew temperature is 93 °C."),
        ("1350 W", "It draws 1,350 W."),
        ("128 megabytes", "The default is 128MB."),
        ("220-240 V", "It needs a 220-240 V outlet."),
        ("EUR 25", "A diagnostic inspection costs EUR 25."),
        ("off", "By default the cup warmer is off."),
        ("HV-3120", "The model number is HV-3120."),
        ("Control board", "Fuse F1 protects the control board."),
    ],
)
def test_equivalent_forms_are_right(expected, answer):
    assert score_value(expected, answer).correct


@pytest.mark.parametrize(
    "expected,answer,why",
    [
        ("8.5 bar", "It brews at 9 bar.", "wrong number"),
        ("35 psi", "Inflate to 35 psi, or 38 psi when loaded.", "hedge"),
        ("8.5 bar", "Somewhere between 8 and 9 bar.", "hedge"),
        ("128 megabytes", "128 MB or 256 MB, depending on the system.", "hedge"),
        ("EUR 25", "It costs EUR 25 or EUR 30.", "hedge"),
        ("off", "The cup warmer is on by default.", "opposite boolean"),
        ("off", "It is on, not off.", "opposite boolean (both said)"),
        ("yes", "No, it is not permitted.", "opposite boolean"),
        ("220-240 V", "It runs on 220 V.", "half a range"),
        ("HV-3120", "The model number is HV-3121.", "wrong code"),
        ("12", "The grind setting is 12, or 14 for darker roasts.", "hedge on a bare number"),
        ("25 minutes", "I don't know.", "abstention"),
    ],
)
def test_strict_cases_are_wrong(expected, answer, why):
    assert not score_value(expected, answer).correct, why


def test_numbers_from_the_question_are_not_hedges():
    q = 'Fill the gap: "Tarnwick chose ___ rather than the usual 9 bar."'
    assert score_value("8.5 bar", "Tarnwick chose 8.5 bar rather than the usual 9 bar.", q).correct
    assert score_value("12", "The default grind setting of the HV-3120 is 12.", "grind setting of the HV-3120?").correct
    assert not score_value("8.5 bar", "Tarnwick chose 9 bar.", q).correct


def test_abstentions_are_not_confident_errors():
    s = score_value("25 minutes", "That is not specified in the documentation.")
    assert s.abstained and not s.correct


def test_steps_need_recall_and_order():
    steps = ["Fill the water tank.", "Insert the ClearSip filter.", "Press the Start button."]
    right = "1. Fill the water tank.\n2. Insert the ClearSip filter.\n3. Press the Start button."
    assert score_steps(steps, right).correct
    shuffled = "1. Press the Start button.\n2. Insert the ClearSip filter.\n3. Fill the water tank."
    s = score_steps(steps, shuffled)
    assert not s.correct and s.score < 0.5
    assert not score_steps(steps, "1. Fill the water tank.").correct
    assert score_probe({"expected": "", "expected_steps": steps}, right).correct


def test_text_scores():
    assert token_f1("a heated metal block", "It is a heated metal block.") > 0.6
    assert rouge_l("the water tank is empty", "empty is the tank") < rouge_l(
        "the water tank is empty", "the tank is empty"
    )
    assert not score_text("The water tank is empty, as read by the float sensor.", "The boiler has overheated.").correct


def test_regression_rule():
    items = [
        {"id": "a", "question": "Capital of France?", "keywords": ["Paris"]},
        {"id": "b", "question": "7 x 8?", "keywords": ["56"]},
    ]
    r = compare(["Paris.", "54"], ["It is Lyon.", "56"], items)
    assert (r["worse"], r["better"], r["base_right"], r["tuned_right"]) == (1, 1, 1, 1)
    assert r["sign_p"] == 1.0  # one each way: no lean


def test_sign_test_of_worse_against_better():
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 0) == sign_test(0, 3) == 0.25  # 2 * (1/2)^3
    assert abs(sign_test(11, 14) - 0.690) < 0.001  # make demo's kl run: as many better as worse
    assert sign_test(10, 0) < 0.01 and sign_test(24, 15) > 0.05


def test_sampled_rule_counts_only_significant_moves():
    assert abs(fisher_lower(4, 8, 8) - 495 / 12870) < 1e-12  # 8/8 right -> 4/8: C(12,4) / C(16,8)
    assert fisher_lower(5, 8, 8) > 0.05 and fisher_lower(8, 8, 8) == 1.0
    assert fisher_lower(0, 8, 8) < 1e-4
    r = compare_sampled([8, 8, 4, 0, 6], [4, 5, 8, 3, 6], 8)
    # 8 -> 4 is worse; 8 -> 5 and 0 -> 3 are within chance; 4 -> 8 is better
    assert (r["worse"], r["better"]) == (1, 1)
    assert r["mean_base"] == round(26 / 40, 4) and r["mean_tuned"] == round(26 / 40, 4)
    assert compare_sampled([8] * 5, [0] * 5, 8)["worse"] == 5
    assert degenerate("high end high end high end high end high end")


def test_sampled_answers_are_judged_per_answer_and_moved_items_show_an_example():
    items = [
        {"id": "g1", "question": "How many days in a week?", "keywords": ["seven", "7"]},
        {"id": "g2", "question": "What colour is the sky?", "keywords": ["blue"]},
        {"id": "g3", "question": "Capital of France?", "keywords": ["Paris"]},
    ]
    base = [["A week has 7 days."] * 8, ["Blue."] * 4 + ["Grey."] * 4, ["Lyon."] * 8]
    tuned = [
        ["A week has 31 days."] * 7 + ["Seven."],  # 8 -> 1 right: worse
        ["It is blue."] * 3 + ["Green."] * 5,  # 4 -> 3: within chance
        ["Paris."] * 6 + ["paris paris paris paris paris paris paris paris paris paris paris paris"] * 2,  # 0 -> 6
    ]
    r = compare_sampled_answers(base, tuned, items, temperature=0.7)
    assert (r["samples"], r["total"], r["worse"], r["better"]) == (8, 3, 1, 1)
    rows = {x["id"]: x for x in r["rows"]}
    assert (rows["g1"]["base_right"], rows["g1"]["tuned_right"]) == (8, 1) and rows["g1"]["worse"]
    assert rows["g1"]["tuned_example"] == "A week has 31 days." and rows["g1"]["base_example"] == "A week has 7 days."
    assert rows["g3"]["tuned_right"] == 6 and rows["g3"]["better"] and rows["g3"]["tuned_example"] == "Paris."
    assert "tuned_example" not in rows["g2"] and not rows["g2"]["worse"] and not rows["g2"]["better"]
    assert "8 times" in r["rule"] and "temperature 0.7" in r["rule"]
    with pytest.raises(ValueError, match="g2: 8 base and 7 tuned answers"):
        compare_sampled_answers(base, [tuned[0], tuned[1][:7], tuned[2]], items, temperature=0.7)
