"""Chat rows → token ids and labels: loss on the assistant's tokens only, its end-of-turn token included.

    enc = encode_messages(tokenizer, [{"role": "user", ...}, {"role": "assistant", ...}], max_len=512)
    enc.input_ids, enc.labels   # labels are -100 except on assistant content + end-of-turn token

Works with any chat template, with or without `{% generation %}` markers: each assistant turn's
characters are found by rendering the conversation up to that turn with and without it, then tokens
are labelled by their character offsets. The text between the end-of-turn token and the next turn
(ChatML's trailing newline) is not trained: the model stops at the end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass

from orgtune.errors import OrgtuneError
from orgtune.models.template import render, template_where

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    full_length: int  # tokens before truncation

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)


def end_of_turn(tok) -> str | None:
    """The special token the chat template puts right after an assistant's content (e.g. <|im_end|>)."""
    probe = "orgtune-probe"
    text = render(tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}])
    if probe not in text:
        raise OrgtuneError(
            f"{template_where(tok, None)}: the chat template does not write an assistant message's content",
            fix="restore the model's own chat template",
        )
    after = text[text.rindex(probe) + len(probe) :]
    specials = sorted({t for t in tok.all_special_tokens + list(tok.get_added_vocab()) if t}, key=len, reverse=True)
    for i in range(len(after)):
        for s in specials:
            if after.startswith(s, i):
                return s
    return None


def trained_char_spans(tok, messages: list[dict], eot: str | None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character spans of each assistant turn to train on."""
    text = render(tok, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(tok, messages[:i], add_generation_prompt=True) if i else ""
        upto = render(tok, messages[: i + 1])
        if not (upto.startswith(before) and text.startswith(upto)):
            raise OrgtuneError(
                "the chat template renders a conversation differently from its prefix, so assistant tokens "
                "cannot be located",
                fix="use a template whose rendering of a conversation extends the rendering of its first turns",
            )
        start, end = len(before), len(upto)
        if eot:
            cut = text.rfind(eot, start, end)
            if cut != -1:
                end = cut + len(eot)
        spans.append((start, end))
    return text, spans


def encode_messages(tok, messages: list[dict], *, max_len: int, eot: str | None = None) -> Encoded:
    """Token ids and assistant-only labels for one conversation, truncated to `max_len` tokens."""
    text, spans = trained_char_spans(tok, messages, eot)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    si = 0
    for j, (a, b) in enumerate(offsets):
        while si < len(spans) and a >= spans[si][1]:
            si += 1
        if si < len(spans) and spans[si][0] <= a < spans[si][1] and b > a:
            labels[j] = ids[j]
    return Encoded(input_ids=ids[:max_len], labels=labels[:max_len], full_length=len(ids))


@dataclass
class EncodedSet:
    """A file's rows encoded; rows whose assistant tokens were all cut by truncation are dropped."""

    rows: list[Encoded]
    lines: list[int]  # source line of each kept row
    dropped_lines: list[int]
    truncated: int

    def lengths(self) -> list[int]:
        return [len(r.input_ids) for r in self.rows]


def encode_rows(tok, rows, *, max_len: int) -> EncodedSet:
    """Encode `formats.Row`s (their `.messages`); drop and count rows left with zero trained tokens."""
    eot = end_of_turn(tok)
    kept, lines, dropped, truncated = [], [], [], 0
    for row in rows:
        enc = encode_messages(tok, row.messages, max_len=max_len, eot=eot)
        truncated += enc.truncated
        if enc.n_trained == 0:
            dropped.append(row.line)
            continue
        kept.append(enc)
        lines.append(row.line)
    return EncodedSet(rows=kept, lines=lines, dropped_lines=dropped, truncated=truncated)


def show_mask(tok, enc: Encoded, *, open_mark: str = "⟦", close_mark: str = "⟧") -> str:
    """Decode a row with the trained tokens wrapped in marks (used by `orgtune data check --show-mask`)."""
    out, inside = [], False
    for tid, lab in zip(enc.input_ids, enc.labels, strict=True):
        trained = lab != IGNORE
        if trained != inside:
            out.append(open_mark if trained else close_mark)
            inside = trained
        out.append(tok.decode([tid]))
    if inside:
        out.append(close_mark)
    return "".join(out)
