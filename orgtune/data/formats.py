"""Read a JSONL training-data file, detect its format, validate every row, normalise to chat messages.

This runs before any model or tokenizer is loaded, so a bad file fails in a second, not after a
download. One format per file, detected from the first valid row by its keys:

    chat               {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
    alpaca             {"instruction": "...", "input": "..." (optional), "output": "...", "system": "..." (optional)}
    sharegpt           {"conversations": [{"from": "system"|"human"|"user"|"gpt"|"assistant", "value": "..."}]}
    prompt_completion  {"prompt": str | messages, "completion": str | messages}
    preference         {"prompt": str | messages, "chosen": str | messages, "rejected": str | messages},
                       or OpenAI's DPO rows: {"input": {"messages": [...]}, "preferred_output": [assistant message],
                       "non_preferred_output": [assistant message]}

Usage:

    from orgtune.data.formats import load_rows, read_data_file

    data = load_rows("train.jsonl", allowed=("chat", "alpaca"))  # raises OrgtuneError listing bad lines
    for row in data.rows:
        row.messages  # [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]

    report = read_data_file("train.jsonl")  # never raises for bad rows: see report.errors
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orgtune.errors import OrgtuneError

FORMATS: tuple[str, ...] = ("chat", "alpaca", "sharegpt", "prompt_completion", "preference")
SFT_FORMATS: tuple[str, ...] = FORMATS[:-1]  # what SFT trains on: every format that holds a conversation

# The keys that identify each format, as shown to the user in errors.
_KEYS = {
    "chat": "'messages'",
    "alpaca": "'instruction'+'output'",
    "sharegpt": "'conversations'",
    "prompt_completion": "'prompt'+'completion'",
    "preference": "'prompt'+'chosen'+'rejected' (or 'input'+'preferred_output'+'non_preferred_output')",
}
_CHAT_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
_MAX_DETAILS = 50
_BOM = b"\xef\xbb\xbf"


@dataclass
class Row:
    line: int  # 1-based line number in the file
    messages: list[dict]  # normalised [{"role", "content"}]; for preference rows: the prompt messages only
    raw: dict  # the parsed JSON object as in the file
    chosen: list[dict] | None = None  # preference only: assistant message(s)
    rejected: list[dict] | None = None  # preference only


@dataclass
class RowError:
    line: int
    reason: str  # short and specific, e.g. "invalid JSON: Expecting ',' delimiter (column 17)"


@dataclass
class DataFile:
    path: Path
    format: str | None  # None when no valid row could be read
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    blank_lines: int = 0  # blank lines are skipped, not errors


class _Bad(Exception):
    """One row's problem; becomes a RowError."""


def detect_format(obj: dict) -> str | None:
    """The format a JSON object's keys say it is in, or None when no format's keys are present."""
    if "messages" in obj:
        return "chat"
    if "conversations" in obj:
        return "sharegpt"
    if "chosen" in obj or "rejected" in obj or "preferred_output" in obj or "non_preferred_output" in obj:
        return "preference"
    if "prompt" in obj or "completion" in obj:
        return "prompt_completion"
    if "instruction" in obj or "output" in obj:
        return "alpaca"
    return None


def read_data_file(path: str | Path) -> DataFile:
    """Parse and validate every line; never raises for row problems (they go to .errors).

    Raises OrgtuneError only when the file is missing, is a directory, or cannot be opened.
    """
    path = Path(path)
    if not path.exists():
        raise OrgtuneError(f"data file not found: {path}", fix="check the path; it should be a .jsonl file")
    if path.is_dir():
        raise OrgtuneError(f"{path} is a directory, not a data file", fix="pass the path of a .jsonl file")
    data = DataFile(path=path, format=None)
    first_valid_line = 0
    try:
        with path.open("rb") as f:
            for lineno, raw_line in enumerate(f, start=1):  # binary iteration splits on b"\n"
                if lineno == 1 and raw_line.startswith(_BOM):
                    raw_line = raw_line[len(_BOM) :]
                if not raw_line.strip():
                    data.blank_lines += 1
                    continue
                try:
                    obj, fmt = _parse(raw_line)
                    if data.format is not None and fmt != data.format:
                        raise _Bad(
                            f"mixed formats: this row is {fmt} but the file is {data.format} "
                            f"(from line {first_valid_line})"
                        )
                    row = _normalise(obj, fmt, lineno)
                except _Bad as bad:
                    data.errors.append(RowError(lineno, str(bad)))
                    continue
                if data.format is None:
                    data.format, first_valid_line = fmt, lineno
                data.rows.append(row)
    except OSError as e:
        raise OrgtuneError(f"cannot read {path}: {e.strerror or e}", fix="check the file's permissions") from e
    return data


def load_rows(path: str | Path, *, allowed: tuple[str, ...] = FORMATS) -> DataFile:
    """read_data_file, then raise one OrgtuneError if the file has any bad row, is empty, or holds a
    format not in `allowed`. The error lists every bad row as "path:line: reason" (up to 50)."""
    data = read_data_file(path)
    shapes = ", ".join(f"{name} ({_KEYS[name]})" for name in allowed)
    if data.format is not None and data.format not in allowed:
        message = f"{data.path} holds {data.format} data; this command accepts: {', '.join(allowed)}"
        fix = f"convert the file to one of: {shapes}"
        if data.format == "preference":
            message += " (preference data, prompt/chosen/rejected, is for `orgtune train --method dpo`)"
            fix = f"use `orgtune train --method dpo` for preference data, or convert it to one of: {shapes}"
        raise OrgtuneError(message, fix=fix)
    if data.errors:
        details = [f"{data.path}:{e.line}: {e.reason}" for e in data.errors[:_MAX_DETAILS]]
        if len(data.errors) > _MAX_DETAILS:
            details.append(f"... and {len(data.errors) - _MAX_DETAILS} more")
        total = len(data.rows) + len(data.errors)
        raise OrgtuneError(
            f"{data.path}: {len(data.errors)} of {total} rows are not valid training data",
            details=details,
            fix=(
                f"correct or delete the listed lines; each line must be one JSON object in one of the formats: {shapes}"
            ),
        )
    if not data.rows:
        raise OrgtuneError(
            f"{data.path}: file is empty",
            fix=f"add training rows, one JSON object per line, in one of the formats: {shapes}",
        )
    return data


def _parse(raw_line: bytes) -> tuple[dict, str]:
    """Decode, parse and detect the format of one line."""
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(
            f"not UTF-8: byte 0x{raw_line[e.start]:02x} at position {e.start + 1}; save the file as UTF-8"
        ) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise _Bad(f"invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise _Bad(f"expected a JSON object, got {_kind(obj)}")
    fmt = detect_format(obj)
    if fmt is None:
        found = ", ".join(repr(k) for k in obj) or "none"
        expected = ", ".join(f"{keys} ({name})" for name, keys in _KEYS.items())
        raise _Bad(f"unknown format: found keys {found}; expected {expected}")
    return obj, fmt


def _normalise(obj: dict, fmt: str, lineno: int) -> Row:
    """Validate one row of a known format and convert it to chat messages."""
    if fmt == "chat":
        messages = _messages(obj.get("messages"), "messages", "role", "content", _CHAT_ROLES)
        _need_assistant(messages, "messages")
        _check_order(messages, "messages")
    elif fmt == "sharegpt":
        messages = _messages(obj.get("conversations"), "conversations", "from", "value", _SHAREGPT_ROLES)
        _need_assistant(messages, "conversations")
        _check_order(messages, "conversations")
    elif fmt == "alpaca":
        user = _text(obj, "instruction")
        extra = _text(obj, "input", required=False)
        system = _text(obj, "system", required=False)
        messages = [{"role": "system", "content": system}] if system.strip() else []
        messages.append({"role": "user", "content": f"{user}\n\n{extra}" if extra.strip() else user})
        messages.append({"role": "assistant", "content": _text(obj, "output")})
    elif fmt == "prompt_completion":
        completion = _turns(obj, "completion", "assistant")
        _need_assistant(completion, "completion")
        messages = _turns(obj, "prompt", "user") + completion
        _check_order(messages, "prompt + completion")
    else:  # preference
        if "preferred_output" in obj or "non_preferred_output" in obj:
            prompt, chosen, rejected = _openai_pair(obj)
        else:
            prompt = _turns(obj, "prompt", "user")
            chosen, rejected = _turns(obj, "chosen", "assistant"), _turns(obj, "rejected", "assistant")
        _need_assistant(chosen, "chosen")
        _need_assistant(rejected, "rejected")
        for side, name in ((chosen, "prompt + chosen"), (rejected, "prompt + rejected")):
            _check_order(prompt + side, name)
        if chosen == rejected:
            raise _Bad("'chosen' and 'rejected' are identical; a preference pair needs two different answers")
        return Row(line=lineno, messages=prompt, raw=obj, chosen=chosen, rejected=rejected)
    return Row(line=lineno, messages=messages, raw=obj)


def _openai_pair(obj: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """OpenAI's DPO row: the prompt in input.messages, one assistant message on each side."""
    given = obj.get("input")
    if not isinstance(given, dict) or "messages" not in given:
        raise _Bad("'input' must be an object with 'messages' (OpenAI's preference format)")
    prompt = _messages(given["messages"], "input.messages", "role", "content", _CHAT_ROLES)
    sides = []
    for key in ("preferred_output", "non_preferred_output"):
        if key not in obj:
            raise _Bad(f"missing '{key}'")
        side = _messages(obj[key], key, "role", "content", _CHAT_ROLES)
        if [m["role"] for m in side] != ["assistant"]:
            raise _Bad(f"'{key}' must hold exactly one assistant message")
        sides.append(side)
    return prompt, sides[0], sides[1]


def _messages(value: Any, name: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict]:
    """Validate a list of message objects and map their roles to system/user/assistant."""
    if not isinstance(value, list):
        raise _Bad(f"'{name}' must be a list of {{{role_key}, {content_key}}} objects, got {_kind(value)}")
    if not value:
        raise _Bad(f"'{name}' is empty")
    out: list[dict] = []
    for i, msg in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise _Bad(f"{where} is not an object (got {_kind(msg)})")
        for key in (role_key, content_key):
            if key not in msg:
                raise _Bad(f"{where} has no '{key}' (found keys: {', '.join(map(repr, msg)) or 'none'})")
        role, content = msg[role_key], msg[content_key]
        if not isinstance(role, str) or role not in roles:
            raise _Bad(f"{where} has unknown role {role!r} (allowed {role_key} values: {', '.join(roles)})")
        if not isinstance(content, str):
            raise _Bad(f"{where} '{content_key}' must be a string, got {_kind(content)}")
        if not content.strip():
            raise _Bad(f"{where} has empty '{content_key}'")
        if roles[role] == "system" and any(m["role"] != "system" for m in out):
            raise _Bad(f"{where} is a system message after the conversation started; put system messages first")
        out.append({"role": roles[role], "content": content})
    return out


def _turns(obj: dict, key: str, role: str) -> list[dict]:
    """A prompt/completion/chosen/rejected value: a string (one `role` message) or a list of messages."""
    if key not in obj:
        raise _Bad(f"missing '{key}'")
    value = obj[key]
    if isinstance(value, str):
        if not value.strip():
            raise _Bad(f"empty '{key}'")
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return _messages(value, key, "role", "content", _CHAT_ROLES)
    raise _Bad(f"'{key}' must be a string or a list of messages, got {_kind(value)}")


def _text(obj: dict, key: str, *, required: bool = True) -> str:
    """A string field; required ones must be present and not blank (optional ones may be null)."""
    if key not in obj or (obj[key] is None and not required):
        if required:
            raise _Bad(f"missing '{key}'")
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise _Bad(f"'{key}' must be a string, got {_kind(value)}")
    if required and not value.strip():
        raise _Bad(f"empty '{key}'")
    return value


def _need_assistant(messages: list[dict], name: str) -> None:
    if not any(m["role"] == "assistant" for m in messages):
        raise _Bad(f"no assistant turn in '{name}'; there is nothing to learn from this row")


def _check_order(messages: list[dict], name: str) -> None:
    """After any system messages, turns alternate user, assistant, user, ...: an assistant-first row would
    train a reply to nothing (after the template's default system prompt), and two turns of one role in a row
    are not a conversation. (A last user turn with no answer is rendered and not trained: allowed.)"""
    turns = [(i, m["role"]) for i, m in enumerate(messages) if m["role"] != "system"]
    for k, (i, role) in enumerate(turns):
        want = ("user", "assistant")[k % 2]
        if role != want:
            raise _Bad(
                f"'{name}' message {i} is {role} where {want} was expected: after system messages, turns "
                f"alternate user, assistant, user, ... (roles here: {', '.join(m['role'] for m in messages)})"
            )


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)
