"""`orgtune ask`: the embedded model answers, batched = one by one, rows keep their fields."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orgtune.cli import app
from orgtune.evaluate.answer import answer_rows, load_backend
from orgtune.generate.settings import GenerationSettings

pytestmark = pytest.mark.slow


def test_ask_one_question_with_a_preset():
    r = CliRunner().invoke(
        app, ["ask", "--model", "smollm2-135m", "What is the capital of France?", "--max-new-tokens", "16"]
    )
    assert r.exit_code == 0, r.output
    assert "Paris" in r.output


def test_questions_file_keeps_fields_and_batching_is_exact(tmp_path):
    q = tmp_path / "q.jsonl"
    rows = [
        {"id": 1, "question": "What is the capital of France?"},
        {"id": 2, "messages": [{"role": "user", "content": "Name a primary color."}]},
        {"id": 3, "prompt": "What is 2 plus 2?", "expected": "4"},
    ]
    q.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "a.jsonl"
    r = CliRunner().invoke(
        app, ["ask", "--model", "smollm2-135m", "--questions", str(q), "--out", str(out), "--max-new-tokens", "24"]
    )
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["id"] for g in got] == [1, 2, 3] and got[2]["expected"] == "4"
    assert all(g["answer"] for g in got) and "Paris" in got[0]["answer"]
    one_by_one = load_backend(model="smollm2-135m", settings=GenerationSettings(max_new_tokens=24, batch_size=1))
    assert [a["answer"] for a in answer_rows(one_by_one, rows)] == [g["answer"] for g in got]


def test_bad_questions_file(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text('{"question": "ok"}\n{"nothing": 1}\n')
    r = CliRunner().invoke(app, ["ask", "--model", "smollm2-135m", "--questions", str(q)])
    assert r.exit_code == 2 and f"{q}:2" in r.output


def test_answer_confidence_is_the_least_sure_step_of_the_models_own_answer():
    """For the model's greedy answer, the confidence is the lowest top-token probability along generation
    (computed here from generate's own scores); a wrong answer it would not give scores lower."""
    import torch

    from orgtune.evaluate.prefs import answer_confidence
    from orgtune.models.template import render

    b = load_backend(model="smollm2-135m", settings=GenerationSettings(max_new_tokens=24))
    conv = [{"role": "user", "content": "What is the capital of France?"}]
    enc = b.tok(render(b.tok, conv, add_generation_prompt=True), return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = b.model.generate(
            **enc,
            max_new_tokens=24,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=b.stop_ids,
            pad_token_id=b.tok.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[0, enc["input_ids"].shape[1] :]
    steps = [
        float(torch.softmax(s[0].float(), -1).max())
        for s, t in zip(out.scores, new, strict=False)
        if int(t) not in b.stop_ids
    ]
    greedy = b.tok.decode(new, skip_special_tokens=True).strip()
    assert "Paris" in greedy and int(new[-1]) in b.stop_ids
    got, wrong = answer_confidence(
        b.model, b.tok, [conv, conv], [greedy, "The capital of France is Zanzibar."], max_len=256
    )
    assert got == pytest.approx(min(steps), abs=1e-3)
    assert 0 < wrong < got <= 1
