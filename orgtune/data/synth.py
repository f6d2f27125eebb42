"""Facts → chat training examples with task prefixes, several phrasings per fact, and provenance.

    examples = synthesize(docs, facts, held_out=ids, settings=SynthSettings(examples_per_fact=5))

Every example names the facts it teaches and the source span they come from; the assistant answer
always restates the full subject and the value (no pronouns), procedures keep their steps in order,
and table rows are asked both ways ("What does code E4 mean?" / "Which code means …?"). Held-out
facts get no example and their sentences are cut from recitation passages. Default statements get
two phrasings more than `examples_per_fact`.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from orgtune.data.extract import Fact
from orgtune.data.text import main_subject, sentences
from orgtune.ingest.blocks import Document

TASKS = ("SPEC", "PROCEDURE", "EXPLAIN", "TROUBLESHOOT", "RECALL")
TROUBLE_WORDS = re.compile(r"troubleshoot|fault|error|problem|symptom|cause|remed|fix|solution|action|alarm", re.I)


@dataclass
class SynthSettings:
    examples_per_fact: int = 5
    max_examples_per_doc: int | None = None
    seed: int = 0
    task_prefix_format: str = "[{TASK}] {instruction}"
    recall_max_chars: int = 900


@dataclass
class Example:
    task: str
    question: str
    answer: str
    fact_ids: list[str]
    doc: Document
    span: tuple[int, int]
    section_path: list[str]
    template: str

    def to_row(self, prefix_format: str) -> dict:
        q = prefix_format.format(TASK=self.task, instruction=self.question)
        key = f"{self.doc.doc_id}:{self.template}:{q}:{self.answer}"
        return {
            "id": "ex-" + hashlib.sha1(key.encode()).hexdigest()[:12],
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": self.answer}],
            "task": self.task,
            "fact_ids": self.fact_ids,
            "source": {
                "doc_id": self.doc.doc_id,
                "path": self.doc.path,
                "span": list(self.span),
                "section_path": self.section_path,
            },
            "generator": {"name": "template", "template": self.template},
        }


def lower_noun(name: str) -> str:
    """Lower-case a common noun phrase, keep names, codes and acronyms ('Brew pressure' -> 'brew pressure')."""
    words = name.split()
    if words and words[0][:1].isupper() and words[0][1:].islower() and len(words[0]) > 1:
        words[0] = words[0].lower()
    return " ".join(words)


def the(name: str) -> str:
    """A noun phrase with "the" in front, unless it has an article or is a one-word name ('Halvo' stays)."""
    return name if re.match(r"^(the|a|an)\b", name, re.I) or name[:1].isupper() and " " not in name else f"the {name}"


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ":")) else text + "."


def product_name(doc: Document) -> str:
    """What a document is about: its title less document-type words ('Velbrook Halvo Service Manual' -> 'Velbrook Halvo')."""
    return main_subject(doc.title)


# --- templates per fact kind: (name, question, answer) ------------------------------------------


def _spec(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    s, a, v = f.subject, lower_noun(f.attribute), f.value
    ans = _sentence(f"The {a} of {the(s)} is {v}")
    alt = _sentence(f"{the(s)} has a {a} of {v}")
    return [
        ("spec.what", "SPEC", f"What is the {a} of {the(s)}?", ans),
        ("spec.tell", "SPEC", f"Tell me the {a} for {the(s)}.", alt),
        ("spec.colon", "SPEC", f"{s}: what {a} does it have?", ans),
        ("spec.need", "SPEC", f"I need the {a} value of {the(s)}.", alt),
        ("spec.which", "SPEC", f"Which {a} is specified for {the(s)}?", ans),
        ("spec.give", "SPEC", f"Give the {a} of {the(s)}.", ans),
        ("spec.lookup", "SPEC", f"Look up the {a} for {the(s)}.", alt),
    ]


def _default(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    s, v, p = lower_noun(f.subject), f.value, product_name(doc)
    on = f" on {the(p)}" if p.lower() not in s.lower() else ""
    if f.context.get("clause"):  # the value is a whole statement: 'All port forwarding requests are permitted'
        ans = alt = _sentence(f"{s}{on}: by default, {v[:1].lower() + v[1:]}")
    else:
        ans = _sentence(f"By default, {the(s)}{on} is {v}")
        alt = _sentence(f"The default {s}{on} is {v}")
    return [
        ("default.what", "SPEC", f"What is the default {s}{on}?", alt),
        ("default.to", "SPEC", f"What does {the(s)}{on} default to?", ans),
        ("default.factory", "SPEC", f"What is {the(s)}{on} set to by default?", ans),
        ("default.unchanged", "SPEC", f"If nobody changes it, what is {the(s)}{on}?", alt),
        ("default.initial", "SPEC", f"What is the initial {s}{on} before any change?", ans),
        ("default.preset", "SPEC", f"Which {s} is preset{on}?", alt),
        ("default.unset", "SPEC", f"If {the(s)} is left unset{on}, what value applies?", ans),
        ("default.standard", "SPEC", f"What value does {the(s)} take by default{on}?", alt),
    ]


def _cell(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    row, col, head = f.subject, lower_noun(f.attribute), lower_noun(f.context.get("row_header", "item"))
    v, p = f.value, product_name(doc)
    task = "TROUBLESHOOT" if TROUBLE_WORDS.search(" ".join([*f.section_path, col, head])) else "SPEC"
    ans = _sentence(f"On {the(p)}, the {col} for {head} {row} is {v}")
    back = _sentence(f'On {the(p)}, {head} {row} has the {col} "{v}"')
    return [
        ("cell.what", task, f"What is the {col} for {head} {row} on {the(p)}?", ans),
        ("cell.tell", task, f"On {the(p)}, what {col} does {head} {row} have?", ans),
        ("cell.reverse", task, f'Which {head} on {the(p)} has the {col} "{v}"?', back),
        ("cell.lookup", task, f"Look up {head} {row} of {the(p)}: {col}?", ans),
        ("cell.give", task, f"Give the {col} for {head} {row} on {the(p)}.", ans),
        ("cell.listed", task, f"For {the(p)}, which {col} is listed for {head} {row}?", ans),
    ]


def _procedure(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    # Procedures are named by their title in quotes: grammatical whatever the title's form
    # ("Descaling", "How to make a claim", "Replacing the water filter").
    name, p = f'"{f.subject}"', product_name(doc)
    ans = f"The procedure {name} for {the(p)} has these steps:\n{f.value}"
    out = [
        ("proc.steps", "PROCEDURE", f"What are the steps of the procedure {name} for {the(p)}?", ans),
        ("proc.how", "PROCEDURE", f"How is the procedure {name} carried out on {the(p)}?", ans),
        ("proc.list", "PROCEDURE", f"List, in order, the steps of {name} for {the(p)}.", ans),
        ("proc.walk", "PROCEDURE", f"Walk me through {name} on {the(p)}.", ans),
        ("proc.do", "PROCEDURE", f"I need to do {name} on my {p}. What do I do?", ans),
        ("proc.guide", "PROCEDURE", f"Give the step-by-step instructions for {name} ({p}).", ans),
    ]
    steps = f.steps or []
    for i in range(len(steps) - 1):
        out.append(
            (
                f"proc.next{i + 1}",
                "PROCEDURE",
                f'In the procedure {name} for {the(p)}, what comes after "{steps[i].rstrip(".")}"?',
                _sentence(f"In {name}, step {i + 2} follows: {steps[i + 1]}"),
            )
        )
    return out


def _definition(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    t, d, p = f.subject, f.value.rstrip("."), product_name(doc)
    ans = _sentence(f"{t} is {d}") if not re.match(r"^(an?|the)\b", d) else _sentence(f"{t} is {d}")
    return [
        ("def.what", "EXPLAIN", f"What is {t}?", ans),
        ("def.mean", "EXPLAIN", f"What does {t} mean for {the(p)}?", ans),
        ("def.explain", "EXPLAIN", f"Explain the term {t}.", ans),
    ]


def _cloze(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    sentence = f.context.get("sentence", "")
    cloze = f.attribute
    return [
        ("cloze.complete", "SPEC", f'Complete this statement about {the(f.subject)}: "{cloze}"', _sentence(sentence)),
        ("cloze.value", "SPEC", f'What value goes in the blank? "{cloze}"', _sentence(sentence)),
    ]


def _summary(f: Fact, doc: Document) -> list[tuple[str, str, str, str]]:
    h, title = f.subject, doc.title
    if h.strip().lower() == str(title).strip().lower():  # the document's opening, under its own title
        return [
            ("sum.about", "EXPLAIN", f"What is the {title} for?", f.value),
            ("sum.explain", "EXPLAIN", f"How does the {title} introduce itself?", f.value),
        ]
    return [
        ("sum.about", "EXPLAIN", f"What does the {title} say about {h}?", f.value),
        ("sum.explain", "EXPLAIN", f'Explain the section "{h}" of the {title}.', f.value),
    ]


# Fact kind → its templates: BUILDERS[f.kind](f, doc) -> [(name, task, question, answer)]
BUILDERS = {
    "spec": _spec,
    "default": _default,
    "table_cell": _cell,
    "procedure": _procedure,
    "definition": _definition,
    "sentence": _cloze,
    "summary": _summary,
}


def _row_examples(doc: Document, facts: list[Fact]) -> list[Example]:
    """Whole table rows of troubleshooting tables: 'The X shows code E9. What should I do?'"""
    rows: dict[tuple, list[Fact]] = {}
    for f in facts:
        if f.kind == "table_cell":
            rows.setdefault(tuple(f.span), []).append(f)
    out = []
    for span, cells in rows.items():
        head = " ".join([*cells[0].section_path, *(c.attribute for c in cells), cells[0].context.get("row_header", "")])
        if not TROUBLE_WORDS.search(head):
            continue
        p, key, rh = product_name(doc), cells[0].subject, lower_noun(cells[0].context.get("row_header", "item"))
        body = " ".join(_sentence(f"{c.attribute}: {c.value}") for c in cells)
        answer = f"For {rh} {key} on {the(p)}: {body}"
        ids = [c.fact_id for c in cells]
        for name, q in (
            ("row.shows", f"{the(p)[:1].upper() + the(p)[1:]} shows {rh} {key}. What should I do?"),
            ("row.handle", f"How do I handle {rh} {key} on {the(p)}?"),
        ):
            out.append(Example("TROUBLESHOOT", q, answer, ids, doc, span, cells[0].section_path, name))
    return out


def _recall_examples(doc: Document, facts: list[Fact], held_spans: list[tuple[int, int]], limit: int) -> list[Example]:
    """Passage recitation: a section's prose, minus sentences that state held-out facts."""
    out = []
    sections: dict[tuple, list] = {}
    for b in doc.blocks:
        if b.kind in ("paragraph", "list", "steps", "kv") and b.heading_path:
            sections.setdefault(tuple(b.heading_path), []).append(b)
    for path, blocks in sections.items():
        kept, start, end, size = [], None, None, 0
        for b in blocks:
            for a, z in sentences(doc.text[b.start : b.end], b.start) if b.kind == "paragraph" else [(b.start, b.end)]:
                if any(a < hz and ha < z for ha, hz in held_spans):
                    continue
                if size + z - a > limit and kept:
                    break
                kept.append(doc.text[a:z])
                size += z - a + 1
                start = a if start is None else start
                end = z
        text = " ".join(kept)
        if len(text) < 80:
            continue
        ids = [
            f.fact_id
            for f in facts
            if f.section_path
            and tuple(f.section_path) == path
            and f.kind != "summary"
            and start <= f.span[0]
            and f.span[1] <= end
            and not any(f.span[0] < hz and ha < f.span[1] for ha, hz in held_spans)
        ]
        out.append(
            Example(
                "RECALL",
                f'Recite what the {doc.title} says under "{path[-1]}".',
                text,
                ids,
                doc,
                (start, end),
                list(path),
                "recall.section",
            )
        )
    return out


def synthesize(
    docs: list[Document],
    facts: list[Fact],
    *,
    held_out: set[str],
    settings: SynthSettings,
    excluded_spans: dict[str, list[tuple[int, int]]] | None = None,
) -> list[dict]:
    """Training rows (chat messages + task + fact ids + source) for every fact not held out."""
    rng = random.Random(settings.seed)
    by_doc: dict[str, list[Fact]] = {}
    for f in facts:
        by_doc.setdefault(f.doc_id, []).append(f)
    rows = []
    for doc in docs:
        doc_facts = by_doc.get(doc.doc_id, [])
        trained = [f for f in doc_facts if f.fact_id not in held_out]
        held_spans = [f.span for f in doc_facts if f.fact_id in held_out] + (excluded_spans or {}).get(doc.doc_id, [])
        per_fact: list[list[Example]] = []
        for f in trained:
            templates = BUILDERS[f.kind](f, doc)
            if f.kind == "procedure":  # all step-order questions, plus the phrasings of the whole procedure
                whole, order = templates[:6], templates[6:]
                rng.shuffle(whole)
                chosen = whole + order  # long answers: every phrasing (few per document)
            else:
                rng.shuffle(templates)
                # Defaults are short and look alike across a reference ('The default is yes.'): two more
                # phrasings each, which cost little since the answers are one short sentence.
                chosen = templates[: settings.examples_per_fact + (2 if f.kind == "default" else 0)]
            per_fact.append(
                [Example(task, q, a, [f.fact_id], doc, f.span, f.section_path, name) for name, task, q, a in chosen]
            )
        per_fact.append(_row_examples(doc, trained))
        per_fact.append(_recall_examples(doc, doc_facts, held_spans, settings.recall_max_chars))
        # Round-robin over facts, so that a per-document cap keeps every fact's first phrasing.
        ordered = [
            ex
            for depth in range(max((len(x) for x in per_fact), default=0))
            for group in per_fact
            if depth < len(group)
            for ex in [group[depth]]
        ]
        if settings.max_examples_per_doc:
            ordered = ordered[: settings.max_examples_per_doc]
        rows.extend(ex.to_row(settings.task_prefix_format) for ex in ordered)
    return rows
