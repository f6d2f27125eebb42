"""Document text is data, never instructions: find sentences that try to instruct a model.

    spans = injection_spans(doc)   # [(start, end), ...] of sentences like "Ignore previous instructions…"

Flagged sentences yield no facts, are cut from recitation passages, and are never sent to a teacher;
the build report lists them so a person can look.
"""

from __future__ import annotations

import re

from orgtune.data.text import sentences
from orgtune.ingest.blocks import Document

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.]{0,40}\b(?:instructions?|prompts?|rules|directions|guidelines)\b"
    r"|\byou are now\b|\bsystem prompt\b|\bnew instructions?\b|\bjailbreak|\bdeveloper mode\b"
    r"|\b(?:answer|respond|reply|output|print|say)\b[^.]{0,20}\b(?:only|exactly|just)\b[^.]{0,30}"
    r"|\bas an ai\b|\b(?:assistant|model|llm|chatbot)s?\b[^.]{0,30}\bmust\b",
    re.I)


def is_injection(text: str) -> bool:
    return bool(_INJECTION.search(text))


def injection_spans(doc: Document) -> list[tuple[int, int]]:
    out = []
    for b in doc.blocks:
        for a, z in sentences(doc.text[b.start:b.end], b.start):
            if is_injection(doc.text[a:z]):
                out.append((a, z))
    return out
