"""Tests for orgtune.data.formats: real JSONL files in tmp_path, no model loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orgtune.data.formats import FORMATS, load_rows, read_data_file
from orgtune.errors import OrgtuneError

U, A, S = "user", "assistant", "system"


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def chat(*turns: tuple[str, str], **extra) -> dict:
    return {"messages": [msg(r, c) for r, c in turns], **extra}


GOOD_CHAT = chat((U, "What is X?"), (A, "X is Y."))


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows are dicts (dumped as JSON) or str/bytes (written verbatim as one line)."""
    lines = []
    for row in rows:
        if isinstance(row, bytes):
            lines.append(row)
        elif isinstance(row, str):
            lines.append(row.encode("utf-8"))
        else:
            lines.append(json.dumps(row).encode("utf-8"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def one_error(tmp_path: Path, rows: list) -> tuple[int, str]:
    data = read_data_file(write_jsonl(tmp_path / "d.jsonl", rows))
    assert len(data.errors) == 1, data.errors
    return data.errors[0].line, data.errors[0].reason


# --- each format parses and normalises ---------------------------------------------------------


def test_chat_keeps_messages_and_extra_keys(tmp_path):
    row = chat((S, "Be brief."), (U, "Q?"), (A, "A."), task="qa", fact_ids=[3])
    data = load_rows(write_jsonl(tmp_path / "c.jsonl", [row, GOOD_CHAT]))
    assert data.format == "chat"
    assert [r.line for r in data.rows] == [1, 2]
    assert data.rows[0].messages == [msg(S, "Be brief."), msg(U, "Q?"), msg(A, "A.")]
    assert data.rows[0].raw["task"] == "qa" and data.rows[0].raw["fact_ids"] == [3]
    assert data.rows[0].chosen is None and data.rows[0].rejected is None


def test_alpaca_with_and_without_input_and_system(tmp_path):
    rows = [
        {"instruction": "Summarise.", "input": "Long text.", "output": "Short."},
        {"instruction": "Say hi.", "input": "", "output": "Hi."},
        {"instruction": "Say hi.", "output": "Hi.", "system": "You are kind."},
    ]
    data = load_rows(write_jsonl(tmp_path / "a.jsonl", rows))
    assert data.format == "alpaca"
    assert data.rows[0].messages == [msg(U, "Summarise.\n\nLong text."), msg(A, "Short.")]
    assert data.rows[1].messages == [msg(U, "Say hi."), msg(A, "Hi.")]
    assert data.rows[2].messages == [msg(S, "You are kind."), msg(U, "Say hi."), msg(A, "Hi.")]


def test_sharegpt_maps_roles(tmp_path):
    row = {
        "conversations": [
            {"from": "system", "value": "Sys."},
            {"from": "human", "value": "Q1"},
            {"from": "gpt", "value": "A1"},
            {"from": "user", "value": "Q2"},
            {"from": "assistant", "value": "A2"},
        ]
    }
    data = load_rows(write_jsonl(tmp_path / "s.jsonl", [row]))
    assert data.format == "sharegpt"
    assert data.rows[0].messages == [msg(S, "Sys."), msg(U, "Q1"), msg(A, "A1"), msg(U, "Q2"), msg(A, "A2")]


def test_prompt_completion_strings_and_lists(tmp_path):
    rows = [
        {"prompt": "Q?", "completion": "A."},
        {"prompt": [msg(S, "Sys."), msg(U, "Q?")], "completion": [msg(A, "A.")]},
    ]
    data = load_rows(write_jsonl(tmp_path / "p.jsonl", rows))
    assert data.format == "prompt_completion"
    assert data.rows[0].messages == [msg(U, "Q?"), msg(A, "A.")]
    assert data.rows[1].messages == [msg(S, "Sys."), msg(U, "Q?"), msg(A, "A.")]


def test_preference_splits_prompt_chosen_rejected(tmp_path):
    rows = [
        {"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."},
        {"prompt": [msg(U, "Q?")], "chosen": [msg(A, "Good.")], "rejected": [msg(A, "Bad.")]},
    ]
    data = load_rows(write_jsonl(tmp_path / "pref.jsonl", rows))
    assert data.format == "preference"
    for row in data.rows:
        assert row.messages == [msg(U, "Q?")]
        assert row.chosen == [msg(A, "Good.")]
        assert row.rejected == [msg(A, "Bad.")]


def test_blank_lines_bom_and_crlf_are_tolerated(tmp_path):
    path = tmp_path / "d.jsonl"
    line = json.dumps(GOOD_CHAT).encode()
    path.write_bytes(b"\xef\xbb\xbf" + line + b"\r\n\r\n   \n" + line + b"\r\n")
    data = load_rows(path)
    assert [r.line for r in data.rows] == [1, 4]
    assert data.blank_lines == 2 and data.errors == []


def test_formats_constant():
    assert FORMATS == ("chat", "alpaca", "sharegpt", "prompt_completion", "preference")


# --- every row-level error, with its line number ------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        ('{"messages": [}', "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('"just a string"', "JSON object"),
        ({"text": "hello"}, "unknown format"),
        ({"messages": []}, "empty"),
        ({"messages": "hi"}, "must be a list"),
        ({"messages": ["hi", msg(A, "A.")]}, "not an object"),
        ({"messages": [{"content": "Q?"}, msg(A, "A.")]}, "no 'role'"),
        ({"messages": [{"role": U}, msg(A, "A.")]}, "no 'content'"),
        ({"messages": [msg("bot", "Q?"), msg(A, "A.")]}, "unknown role 'bot'"),
        ({"messages": [{"role": U, "content": ["Q?"]}, msg(A, "A.")]}, "must be a string"),
        ({"messages": [msg(U, "   "), msg(A, "A.")]}, "empty"),
        ({"messages": [msg(S, "Sys."), msg(U, "Q?")]}, "no assistant"),
        ({"messages": [msg(U, "Q?"), msg(A, "A."), msg(S, "Late.")]}, "system"),
    ],
)
def test_chat_row_errors_report_line_and_reason(tmp_path, bad, word):
    line, reason = one_error(tmp_path, [GOOD_CHAT, GOOD_CHAT, bad, GOOD_CHAT])
    assert line == 3
    assert word in reason


def test_unknown_format_names_found_and_expected_keys(tmp_path):
    _, reason = one_error(tmp_path, [{"text": "hello", "id": 1}])
    assert "'text'" in reason and "'id'" in reason
    assert "'messages'" in reason and "'instruction'" in reason and "'conversations'" in reason


def test_unknown_role_lists_allowed_roles(tmp_path):
    _, reason = one_error(tmp_path, [chat(("bot", "Q?"), (A, "A."))])
    assert "system, user, assistant" in reason


def test_trailing_user_turn_is_fine(tmp_path):
    data = load_rows(write_jsonl(tmp_path / "d.jsonl", [chat((U, "Q?"), (A, "A."), (U, "Thanks"))]))
    assert data.rows[0].messages[-1] == msg(U, "Thanks")


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        ({"instruction": "", "output": "A."}, "empty 'instruction'"),
        ({"instruction": "Q?", "output": "  "}, "empty 'output'"),
        ({"instruction": "Q?"}, "missing 'output'"),
        ({"instruction": "Q?", "input": 5, "output": "A."}, "'input' must be a string"),
    ],
)
def test_alpaca_row_errors(tmp_path, bad, word):
    good = {"instruction": "Q?", "output": "A."}
    line, reason = one_error(tmp_path, [good, bad])
    assert line == 2 and word in reason


@pytest.mark.parametrize(
    ("turns", "where"),
    [
        ([(A, "Hello."), (U, "Q?"), (U, "Q again?")], "message 0 is assistant where user"),
        ([(S, "Be brief."), (A, "Hi."), (U, "Q?"), (A, "A.")], "message 1 is assistant where user"),
        ([(U, "Q?"), (U, "Q again?"), (A, "A.")], "message 1 is user where assistant"),
        ([(U, "Q?"), (A, "A."), (A, "More.")], "message 2 is assistant where user"),
    ],
)
def test_role_order_is_checked(tmp_path, turns, where):
    line, reason = one_error(tmp_path, [GOOD_CHAT, chat(*turns)])
    assert line == 2 and where in reason and "alternate" in reason
    # the same in the other formats that carry turns
    _, reason = one_error(tmp_path, [{"prompt": [msg(A, "Hi."), msg(U, "Q?")], "completion": "A."}])
    assert "message 0 is assistant where user" in reason
    _, reason = one_error(tmp_path, [{"prompt": [msg(U, "Q?"), msg(A, "A.")], "chosen": "Good.", "rejected": "Bad."}])
    assert "'prompt + chosen' message 2 is assistant where user" in reason
    _, reason = one_error(
        tmp_path, [{"conversations": [{"from": "gpt", "value": "A."}, {"from": "human", "value": "Q"}]}]
    )
    assert "message 0 is assistant where user" in reason


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        ({"conversations": []}, "empty"),
        ({"conversations": [{"from": "robot", "value": "Q?"}]}, "unknown role 'robot'"),
        ({"conversations": [{"from": "human", "value": "Q?"}]}, "no assistant"),
        ({"conversations": [{"from": "human"}, {"from": "gpt", "value": "A."}]}, "no 'value'"),
    ],
)
def test_sharegpt_row_errors(tmp_path, bad, word):
    good = {"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}
    line, reason = one_error(tmp_path, [good, bad])
    assert line == 2 and word in reason


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        ({"prompt": "Q?", "completion": ""}, "empty 'completion'"),
        ({"prompt": "", "completion": "A."}, "empty 'prompt'"),
        ({"prompt": "Q?"}, "missing 'completion'"),
        ({"prompt": "Q?", "completion": [msg(U, "more?")]}, "no assistant"),
        ({"prompt": "Q?", "completion": 3}, "string or a list"),
    ],
)
def test_prompt_completion_row_errors(tmp_path, bad, word):
    line, reason = one_error(tmp_path, [{"prompt": "Q?", "completion": "A."}, bad])
    assert line == 2 and word in reason


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        ({"prompt": "Q?", "chosen": "", "rejected": "Bad."}, "empty 'chosen'"),
        ({"prompt": "Q?", "chosen": "Good.", "rejected": " "}, "empty 'rejected'"),
        ({"prompt": "Q?", "chosen": "Same.", "rejected": "Same."}, "identical"),
        ({"chosen": "Good.", "rejected": "Bad."}, "missing 'prompt'"),
    ],
)
def test_preference_row_errors(tmp_path, bad, word):
    line, reason = one_error(tmp_path, [{"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."}, bad])
    assert line == 2 and word in reason


def test_mixed_formats_reported_at_deviating_line(tmp_path):
    alpaca = {"instruction": "Q?", "output": "A."}
    data = read_data_file(write_jsonl(tmp_path / "d.jsonl", [GOOD_CHAT, GOOD_CHAT, alpaca, GOOD_CHAT]))
    assert data.format == "chat"
    assert [(e.line, "mixed formats" in e.reason) for e in data.errors] == [(3, True)]
    assert "alpaca" in data.errors[0].reason and "chat" in data.errors[0].reason
    assert [r.line for r in data.rows] == [1, 2, 4]


def test_format_comes_from_first_valid_row(tmp_path):
    broken_alpaca = {"instruction": "", "output": "A."}
    data = read_data_file(write_jsonl(tmp_path / "d.jsonl", [broken_alpaca, GOOD_CHAT, GOOD_CHAT]))
    assert data.format == "chat"
    assert [(e.line, "empty 'instruction'" in e.reason) for e in data.errors] == [(1, True)]


def test_non_utf8_line_is_reported_and_others_still_parse(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD_CHAT, GOOD_CHAT, b'{"messages": "caf\xe9"}', GOOD_CHAT])
    data = read_data_file(path)
    assert [(e.line, "UTF-8" in e.reason) for e in data.errors] == [(3, True)]
    assert [r.line for r in data.rows] == [1, 2, 4]


def test_no_valid_row_gives_no_format(tmp_path):
    data = read_data_file(write_jsonl(tmp_path / "d.jsonl", ["not json", {"text": "x"}]))
    assert data.format is None and data.rows == [] and [e.line for e in data.errors] == [1, 2]


# --- load_rows: one error for the whole file ----------------------------------------------------


def test_load_rows_lists_every_bad_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD_CHAT, "oops", GOOD_CHAT, {"messages": []}, "", "[]"])
    with pytest.raises(OrgtuneError) as exc:
        load_rows(path)
    text = str(exc.value)
    for line in (2, 4, 6):
        assert f"{path}:{line}:" in text
    assert f"{path}:1:" not in text and f"{path}:5:" not in text
    assert "3 of 5 rows" in text
    assert exc.value.fix and "correct or delete" in exc.value.fix


def test_load_rows_caps_details_at_50(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD_CHAT] + ["bad"] * 60)
    with pytest.raises(OrgtuneError) as exc:
        load_rows(path)
    assert len(exc.value.details) == 51
    assert exc.value.details[-1] == "... and 10 more"
    assert f"{path}:51:" in str(exc.value) and f"{path}:52:" not in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n"])
def test_load_rows_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(OrgtuneError, match="file is empty"):
        load_rows(path)


def test_preference_rejected_for_sft_mentions_dpo(tmp_path):
    path = write_jsonl(tmp_path / "pref.jsonl", [{"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."}])
    sft = tuple(f for f in FORMATS if f != "preference")
    with pytest.raises(OrgtuneError) as exc:
        load_rows(path, allowed=sft)
    text = str(exc.value)
    assert "--method dpo" in text and "preference" in text
    assert all(f in text for f in sft)


def test_disallowed_format_names_allowed_ones(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD_CHAT])
    with pytest.raises(OrgtuneError, match="accepts: preference"):
        load_rows(path, allowed=("preference",))


def test_missing_file_and_directory_raise(tmp_path):
    with pytest.raises(OrgtuneError, match="not found"):
        read_data_file(tmp_path / "nope.jsonl")
    with pytest.raises(OrgtuneError, match="directory"):
        read_data_file(tmp_path)


def test_openai_preference_rows_are_preference_data(tmp_path):
    """OpenAI's DPO rows (input.messages, preferred_output, non_preferred_output) read as preference pairs."""
    good = {
        "input": {"messages": [msg(S, "Be brief."), msg(U, "Brew pressure?")]},
        "preferred_output": [msg(A, "9 bar.")],
        "non_preferred_output": [msg(A, "15 bar.")],
    }
    two_sides = {**good, "preferred_output": [msg(A, "9 bar."), msg(A, "or so.")]}
    no_input = {k: v for k, v in good.items() if k != "input"}
    path = write_jsonl(
        tmp_path / "dpo.jsonl", [good, two_sides, no_input, {**good, "non_preferred_output": [msg(A, "9 bar.")]}]
    )
    data = read_data_file(path)
    assert data.format == "preference"
    (row,) = data.rows
    assert row.messages == [msg(S, "Be brief."), msg(U, "Brew pressure?")]
    assert (row.chosen, row.rejected) == ([msg(A, "9 bar.")], [msg(A, "15 bar.")])
    assert [(e.line, e.reason) for e in data.errors] == [
        (2, "'preferred_output' must hold exactly one assistant message"),
        (3, "'input' must be an object with 'messages' (OpenAI's preference format)"),
        (4, "'chosen' and 'rejected' are identical; a preference pair needs two different answers"),
    ]
    with pytest.raises(OrgtuneError, match=r"dpo.jsonl:2: 'preferred_output'"):
        load_rows(path, allowed=("preference",))
