"""Closed-book evaluation probes: questions phrased unlike every training template, for trained facts
and for a held-out slice of facts that gets no training example at all.

    held = choose_held_out(facts, fraction=0.15, seed=0)
    probes = make_probes(docs, facts, held_out=held, prefix_format="[{TASK}] {instruction}")

A probe carries the expected value (or ordered steps) so evaluation can score it, and its source.
Facts that share a source span are held out together, so no trained example states a held-out value.
"""

from __future__ import annotations

import hashlib
import re

from orgtune.data.extract import Fact
from orgtune.data.synth import TROUBLE_WORDS, lower_noun, product_name, the
from orgtune.ingest.blocks import Document

PROBED_KINDS = ("spec", "default", "table_cell", "procedure", "definition", "sentence")


def _probe_question(f: Fact, doc: Document) -> tuple[str, str] | None:
    p = product_name(doc)
    if f.kind == "spec":
        owner = the(f.subject)
        return "SPEC", f"Without looking it up: what is {owner}'s {lower_noun(f.attribute)}?"
    if f.kind == "default":
        s = lower_noun(f.subject)
        on = f" {the(p)}" if p.lower() not in s.lower() else " it"
        return "SPEC", f"Out of the box, with nothing changed, what {s} does{on} come with?"
    if f.kind == "table_cell":
        head = lower_noun(f.context.get("row_header", "item"))
        task = "TROUBLESHOOT" if TROUBLE_WORDS.search(" ".join([*f.section_path, f.attribute, head])) else "SPEC"
        return (
            task,
            f"From memory: for {head} {f.subject} of {the(p)}, what does the {lower_noun(f.attribute)} column say?",
        )
    if f.kind == "procedure":
        return "PROCEDURE", f'Describe, one step after another, what the "{f.subject}" instructions of {the(p)} say.'
    if f.kind == "definition":
        return "EXPLAIN", f"Define {f.subject} in one sentence."
    if f.kind == "sentence":
        return "SPEC", f"From memory, fill the gap with the right figure: {f.attribute}"
    return None


def _groups(facts: list[Fact]) -> dict[tuple, list[Fact]]:
    groups: dict[tuple, list[Fact]] = {}
    for f in facts:
        if f.kind in PROBED_KINDS:
            groups.setdefault((f.doc_id, f.span), []).append(f)
    return groups


def choose_held_out(
    facts: list[Fact], *, fraction: float, seed: int, salt: str = "", by_kind: bool = False
) -> set[str]:
    """A deterministic ~`fraction` of fact groups (facts sharing a span); `salt` draws an independent slice.
    `by_kind`: the fraction of each kind of fact separately, at least one group of every kind that has two or
    more (so that every kind of question is represented, however few procedures a corpus has)."""
    if fraction <= 0:
        return set()
    groups = _groups(facts)
    ranked = sorted(groups, key=lambda k: hashlib.sha1(f"{salt}{seed}:{k[0]}:{k[1]}".encode()).hexdigest())
    if by_kind:
        strata: dict[str, list[tuple]] = {}
        for key in ranked:
            strata.setdefault(groups[key][0].kind, []).append(key)
        chosen = [
            key
            for keys in strata.values()
            for key in keys[: max(1 if len(keys) >= 2 else 0, round(fraction * len(keys)))]
        ]
    else:
        chosen = ranked[: round(fraction * len(ranked))]
    held = set()
    for key in chosen:
        held.update(f.fact_id for f in groups[key])
    return held


def make_probes(
    docs: list[Document], facts: list[Fact], *, held_out: set[str], prefix_format: str, trained_ids: set[str]
) -> list[dict]:
    """One probe per probed fact that is held out, or trained (has a training example); sentence-kind
    facts are probed only when held out (their training question quotes the same sentence)."""
    by_id = {d.doc_id: d for d in docs}
    probes = []
    for f in facts:
        held = f.fact_id in held_out
        if f.kind not in PROBED_KINDS or not (held or f.fact_id in trained_ids):
            continue
        if f.kind == "sentence" and not held:
            continue
        doc = by_id[f.doc_id]
        made = _probe_question(f, doc)
        if made is None:
            continue
        task, question = made
        probe = {
            "probe_id": "pr-" + hashlib.sha1(f"{f.fact_id}:{question}".encode()).hexdigest()[:12],
            "fact_id": f.fact_id,
            "kind": f.kind,
            "task": task,
            "question": prefix_format.format(TASK=task, instruction=question),
            "plain_question": question,
            "expected": f.value,
            "unit": f.unit,
            "subject": f.subject,
            "attribute": f.attribute,
            "held_out": held,
            "source": {"doc_id": f.doc_id, "path": doc.path, "span": list(f.span), "section_path": f.section_path},
        }
        if f.steps:
            probe["expected_steps"] = f.steps
        probes.append(probe)
    return probes


def value_in_text(value: str, text: str) -> bool:
    """Whether `value` is stated in `text` (case-insensitive, whitespace-insensitive, whole words)."""
    v = re.escape(re.sub(r"\s+", " ", value.strip().lower())).replace(r"\ ", r"\s*")
    return bool(re.search(rf"(?<![\w.]){v}(?![\w])", re.sub(r"\s+", " ", text.lower())))
