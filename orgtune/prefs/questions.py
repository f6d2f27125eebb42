"""Which facts are asked, and in which words.

For every trained fact, the questions are the fact's phrasings that training did not use (so the model
answers a question it has not seen word for word), then trained ones where none is left (procedures,
summaries). Facts that `data build --abstain-holdout` kept out of training are asked too, as the model
meets a fact it has never seen, unless a trained answer quotes their sentence; a share of questions asks
for what the documents never state (orgtune/prefs/unstated.py). Any question near a probe's is dropped:
it would teach the answer the probe checks.

    folder = read_folder(Path("data/v1"))
    qs = ask(folder, rng, questions_per_fact=1, max_questions=None, unknown_per_fact=8, abstain_share=0.5)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from orgtune.data.build import load_docs, read_jsonl
from orgtune.data.dedup import near_pairs, normalise
from orgtune.data.extract import Fact
from orgtune.data.synth import BUILDERS
from orgtune.prefs.unstated import dont_know, unstated_asks

_SKIP_TASKS = ("RECALL",)

Ask = tuple[Fact, str, str, str]  # (fact, task, question, the answer to prefer)


@dataclass
class DataFolder:
    """What a folder made by `orgtune data build` says about its facts."""

    prefix_format: str  # how training's questions carry their task ("[{TASK}] {instruction}")
    docs: dict  # doc id → document
    facts: list[Fact]
    held: set[str]  # held-out facts: probed, never trained
    unknown: set[str]  # facts `--abstain-holdout` kept out of training
    rows: list[dict]  # training and validation rows
    seen_questions: set[str]  # the questions those rows ask
    trained: set[str]  # facts those rows teach
    probes: list[dict]


@dataclass
class Questions:
    asks: list[Ask]  # trained facts; the grounded answer
    unknown: list[Ask]  # facts kept out of training; not knowing, in the grounded answer's words
    unstated: list[tuple[str, str, str, str]]  # (doc id, question, "… is not stated …", what was asked)
    leaked: set[str]  # questions dropped for being near a probe's


def read_folder(data_dir: Path) -> DataFolder:
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    prefix_format = manifest.get("settings", {}).get("task_prefix_format", "[{TASK}] {instruction}")
    docs = load_docs(data_dir)
    fact_rows = read_jsonl(data_dir / "facts.jsonl")
    facts = [
        Fact.from_dict({k: v for k, v in d.items() if k not in ("held_out", "abstain_holdout")}) for d in fact_rows
    ]
    held = {d["fact_id"] for d in fact_rows if d.get("held_out")}
    unknown = {d["fact_id"] for d in fact_rows if d.get("abstain_holdout")}
    rows = read_jsonl(data_dir / "train.jsonl") + (
        read_jsonl(data_dir / "val.jsonl") if (data_dir / "val.jsonl").is_file() else []
    )
    seen_questions = {r["messages"][0]["content"] for r in rows if r.get("messages")}
    trained = {i for r in rows for i in r.get("fact_ids", [])}
    probes = read_jsonl(data_dir / "probes.jsonl") if (data_dir / "probes.jsonl").is_file() else []
    return DataFolder(prefix_format, docs, facts, held, unknown, rows, seen_questions, trained, probes)


def ask(
    folder: DataFolder,
    rng: random.Random,
    *,
    questions_per_fact: int,
    max_questions: int | None,
    unknown_per_fact: int,
    abstain_share: float,
) -> Questions:
    """Every question to put to the model: about trained facts, kept-out facts and unstated things."""
    asks = _fact_asks(folder, questions_per_fact, max_questions, rng)
    unknown = _unknown_asks(folder, unknown_per_fact)
    # Unstated questions (abstention); never about a held-out or any other stated fact.
    unstated = unstated_asks(folder.docs, folder.facts, round(abstain_share * len(asks)), rng, folder.prefix_format)
    return _without_leaks(asks, unknown, unstated, folder.probes)


def phrasings(f: Fact, doc, seen: set[str], prefix_format: str, n: int) -> list[tuple[str, str, str]]:
    """(task, prefixed question, answer): first the fact's phrasings training never asked, then (for facts
    whose every phrasing was trained, like procedures) the trained ones."""
    unused, used = [], []
    for _name, task, q, a in BUILDERS[f.kind](f, doc):
        if task in _SKIP_TASKS:
            continue
        question = prefix_format.format(TASK=task, instruction=q)
        (used if question in seen else unused).append((task, question, a))
    return (unused + used)[:n]


def _fact_asks(folder: DataFolder, per_fact: int, max_questions: int | None, rng: random.Random) -> list[Ask]:
    """Phrasings of each trained fact, those training did not use first; at most `max_questions`, spread."""
    asks: list[Ask] = []
    for f in folder.facts:
        if f.fact_id in folder.held or f.fact_id not in folder.trained or f.doc_id not in folder.docs:
            continue
        for task, q, a in phrasings(f, folder.docs[f.doc_id], folder.seen_questions, folder.prefix_format, per_fact):
            asks.append((f, task, q, a))
    if max_questions and len(asks) > max_questions:
        asks = sorted(rng.sample(asks, max_questions), key=lambda a: asks.index(a))
    return asks


def _unknown_asks(folder: DataFolder, per_fact: int) -> list[Ask]:
    """Facts the build kept out of training (--abstain-holdout): the model has never seen them, like a
    held-out fact; the answer to prefer is not knowing. (A fact whose sentence a trained answer quotes,
    e.g. in a section summary, is not unknown to the model.)"""
    docs = folder.docs
    trained_text = normalise(" \n ".join(r["messages"][-1]["content"] for r in folder.rows if r.get("messages")))
    return [
        (f, task, q, dont_know(f, docs[f.doc_id], a))
        for f in folder.facts
        if f.fact_id in folder.unknown
        and f.fact_id not in folder.held
        and f.doc_id in docs
        and normalise(docs[f.doc_id].text[f.span[0] : f.span[1]]) not in trained_text
        for task, q, a in phrasings(f, docs[f.doc_id], folder.seen_questions, folder.prefix_format, per_fact)
    ]


def _without_leaks(
    asks: list[Ask], unknown: list[Ask], unstated: list[tuple[str, str, str, str]], probes: list[dict]
) -> Questions:
    """The questions less any that is near a probe's (it would teach the answer the probe checks)."""
    questions = [a[2] for a in asks + unknown] + [u[1] for u in unstated]
    probe_qs = [p["plain_question"] for p in probes]
    exact = {normalise(q) for q in probe_qs}
    leaked = {q for q in questions if normalise(q) in exact}
    leaked |= {questions[i] for i, _, _ in near_pairs(questions, probe_qs)} if probe_qs else set()
    return Questions(
        [a for a in asks if a[2] not in leaked],
        [a for a in unknown if a[2] not in leaked],
        [u for u in unstated if u[1] not in leaked],
        leaked,
    )
