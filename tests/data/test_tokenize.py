"""Assistant-only labels under the real SmolLM2 chat template; `orgtune data check`."""

from __future__ import annotations

from typer.testing import CliRunner

from orgtune.cli import app
from orgtune.data.formats import Row
from orgtune.data.tokenize import IGNORE, encode_messages, encode_rows, end_of_turn


def trained_text(tok, enc) -> str:
    return tok.decode([t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label != IGNORE])


def test_labels_cover_assistant_content_and_end_of_turn_only(tokenizer):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Pressure?"},
        {"role": "assistant", "content": "It brews at 8.5 bar."},
        {"role": "user", "content": "Tank?"},
        {"role": "assistant", "content": "1.7 liters."},
    ]
    eot = end_of_turn(tokenizer)
    assert eot == "<|im_end|>"
    enc = encode_messages(tokenizer, msgs, max_len=512, eot=eot)
    assert trained_text(tokenizer, enc) == "It brews at 8.5 bar.<|im_end|>1.7 liters.<|im_end|>"
    # Same token ids as the model's own chat template tokenization.
    ref = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    assert enc.input_ids == ref
    # The EOS token that generation stops on is trained.
    assert tokenizer.eos_token_id in [label for label in enc.labels if label != IGNORE]


def test_truncation_drops_rows_without_trained_tokens(tokenizer):
    long_q = "word " * 300
    rows = [
        Row(line=1, messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], raw={}),
        Row(line=2, messages=[{"role": "user", "content": long_q}, {"role": "assistant", "content": "ok"}], raw={}),
    ]
    out = encode_rows(tokenizer, rows, max_len=64)
    assert out.lines == [1] and out.dropped_lines == [2] and out.truncated == 1
    assert all(r.n_trained > 0 for r in out.rows)


def test_data_check_reports_stats_and_mask(demo_data):
    r = CliRunner().invoke(app, ["data", "check", str(demo_data), "--show-mask", "1", "--max-seq-length", "80"])
    assert r.exit_code == 0, r.output
    assert "62 valid rows, format chat" in r.output
    assert "truncated" in r.output and "dropped" in r.output
    assert "⟦The Velbrook Halvo has model number HV-3120.<|im_end|>⟧" in r.output
    # At 80 tokens the long procedure rows are cut; none loses all of its answer here.
    truncated = int(r.output.split("80: ")[1].split(" row")[0])
    assert truncated > 5


def test_data_check_alpaca_and_preference(tmp_path):
    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text('{"instruction": "Add", "input": "2+2", "output": "4"}\n')
    r = CliRunner().invoke(app, ["data", "check", str(alpaca), "--show-mask", "1"])
    assert r.exit_code == 0 and "format alpaca" in r.output and "⟦4<|im_end|>⟧" in r.output
    pref = tmp_path / "p.jsonl"
    pref.write_text('{"prompt": "Tank size?", "chosen": "1.7 liters", "rejected": "2 liters"}\n')
    r = CliRunner().invoke(app, ["data", "check", str(pref)])
    assert r.exit_code == 0 and "format preference" in r.output
