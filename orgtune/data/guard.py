"""Document text is data, never instructions: find sentences that try to instruct a model.

    spans = injection_spans(doc)   # [(start, end), ...] of sentences like "Ignore previous instructions…"

Flagged sentences yield no facts, are cut from recitation passages, and are never sent to a teacher;
the build report lists them so a person can look.
"""

from __future__ import annotations

import re

from orgtune.data.text import sentences
from orgtune.ingest.blocks import Document

_MODEL = (
    r"(?:ai|a\.i\.|artificial intelligence|(?:large )?language models?|llms?|assistants?|chatbots?|bots?|gpts?|models?)"
)
_REPLY = r"(?:repl(?:y|ies)|responses?|answers?|outputs?|completions?)"  # not "messages": to support, ...
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.]{0,40}\b(?:instructions?|prompts?|rules|directions|guidelines)\b"
    r"|\byou are now\b|\bsystem prompt\b|\bnew instructions?\b|\bjailbreak|\bdeveloper mode\b"
    r"|\b(?:answer|respond|reply|output|print|say)\b[^.]{0,20}\b(?:only|exactly|just)\b[^.]{0,30}"
    r"|\bas an ai\b|\b(?:assistant|model|llm|chatbot)s?\b[^.]{0,30}\bmust\b"
    # addressed to a model: "note to the language model reading this", "AI assistants processing this page"
    rf"|\b(?:note|message|memo|instructions?|reminder|attention|hint|request)\s*(?:to|for|:)\s*(?:the\s+|any\s+|all\s+)?{_MODEL}\b"
    rf"|\b{_MODEL}\s+(?:that\s+(?:is|are)\s+)?(?:reading|processing|parsing|summari[sz]ing|indexing|ingesting|trained on|seeing|scraping)\b"
    rf"|\bif you are an?\s+(?:\w+\s+)?{_MODEL}\b|\bdear\s+{_MODEL}\b"
    # told to change every answer: "append the phrase X to each reply", "end all responses with X"
    rf"|\b(?:append|prepend|add|insert|include|put|end|start|begin|sign|finish|close)\b[^.]{{0,60}}\b(?:to|in|with|at the end of|at the start of)?\s*(?:each|every|all|any|your)\s+(?:of your\s+)?{_REPLY}\b"
    rf"|\b(?:each|every|all)\s+(?:of your\s+)?{_REPLY}\s+(?:must|should|shall|has to|have to|needs? to)\b"
    rf"|\bwhen(?:ever)?\s+(?:you(?:'re| are)?\s+)?(?:asked|answering|responding|replying|questioned)\b[^.]{{0,80}}\b(?:always|never|must|should|instead)\b"
    r"|\b(?:always|never)\s+(?:say|mention|reply|respond|answer|recommend|claim|tell (?:the )?users?)\b",
    re.I,
)


def is_injection(text: str) -> bool:
    return bool(_INJECTION.search(text))


def injection_spans(doc: Document) -> list[tuple[int, int]]:
    out = []
    for b in doc.blocks:
        for a, z in sentences(doc.text[b.start : b.end], b.start):
            if is_injection(doc.text[a:z]):
                out.append((a, z))
    return out
