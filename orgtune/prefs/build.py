"""Preference pairs from a data folder: the grounded answer against a wrong one the model gives, for DPO.

    orgtune data prefs data/v1 --model runs/sft --out data/v1/prefs.jsonl

The model (usually the SFT run) answers every question of orgtune/prefs/questions.py (greedy, eval's
token budget per task). For a trained fact, chosen = the grounded answer (the same sentence training
teaches); rejected = the model's own answer when the scorer finds it wrong, else a corrupted copy of the
grounded answer (orgtune/prefs/corrupt.py). For a question the documents do not answer, or about a fact
kept out of training, chosen = abstaining (orgtune/prefs/unstated.py), rejected = the model's made-up
answer. Optionally (`refusal_share`), fact questions also pair the grounded answer against abstaining in
those very words, so that the pairs differ in whether the model saw the fact, not in the wording. With
`sure`, the model's confidence in each of its answers (the lowest probability it gives any token of it)
decides: abstention pairs only where it was unsure, refusal pairs only where it was right and sure, so
that DPO is asked to abstain where the model's recall is weak rather than on facts it states (wrongly)
with full confidence. The model's wrong answers to unknown and unstated questions are often values of
trained facts it borrowed ("0.4 W", the standby power, for the heater power it never saw); pushing them
down there pushes them down where they are right, so with `anchors` each trained fact so borrowed gets an
anchor pair (grounded answer against abstaining on it; off by default, as SFT replay in `train --method
dpo` holds those values better).

Pairs of ~10% of the facts go to PREFS.val.jsonl (held out of DPO training; `orgtune eval` scores the
reward margin and preference accuracy on them). Every row keeps the fact ids and source span, and
says how its rejected answer was made (`rejected_kind`). Rows are in TRL's conversational preference
format: {"prompt": [user message], "chosen": [assistant message], "rejected": [assistant message]}.
Why the defaults are what they are: docs/experiments/dpo.md.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from orgtune import atomic
from orgtune.data.extract import Fact
from orgtune.errors import OrgtuneError
from orgtune.prefs.corrupt import borrowed, corrupt
from orgtune.prefs.questions import Ask, DataFolder, Questions, ask, read_folder
from orgtune.prefs.unstated import dont_know


@dataclass
class PrefSettings:
    questions_per_fact: int = 1  # phrasings of each fact asked (unused by training first)
    abstain_share: float = 0.5  # abstention questions per fact question
    val_fraction: float = 0.1
    seed: int = 0
    batch_size: int = 16
    max_questions: int | None = None  # cap on fact questions (a spread over facts), for quick runs
    unknown_per_fact: int = 8  # phrasings asked of each fact the build kept out of training (--abstain-holdout)
    # Share of fact questions that also get a pair against abstaining (chosen = the grounded answer, rejected =
    # the same words with "unknown to me" in the value's place), so that learning to abstain on the unknown
    # does not spill onto what the model knows. Off by default (docs/experiments/dpo.md).
    refusal_share: float = 0.0
    # The model is "sure" of an answer when it gives every token of it at least this probability. Unknown-fact
    # and unstated-question pairs are made only where it is unsure, refusal pairs only where it is right and
    # sure: the pairs then ask DPO to abstain exactly when the model's own recall is weak, a rule it can learn,
    # rather than on facts it answers (wrongly) with full confidence. 0 = off.
    sure: float = 0.5
    # A trained fact whose value the model gave as its (wrong) answer to an unknown fact or unstated question
    # also gets a refusal-style pair: DPO pushes that value down where it was borrowed, and the anchor keeps
    # it up where it belongs. Off by default: SFT replay (train --replay) holds the trained answers
    # (docs/experiments/dpo.md).
    anchors: bool = False


@dataclass
class PrefResult:
    train: Path
    val: Path
    counts: dict = field(default_factory=dict)


@dataclass
class _Pairs:
    """The pairs made so far, and how many of each kind of rejected answer."""

    docs: dict
    rows: list[dict] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        question: str,
        chosen: str,
        rejected: str,
        kind: str,
        fact_ids: list[str],
        source: dict | None,
        confidence: float | None = None,
    ) -> None:
        self.rows.append(_row(question, chosen, rejected, kind, fact_ids, source, confidence))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def build_prefs(data_dir: Path, model: str, out: Path, settings: PrefSettings | None = None, log=print) -> PrefResult:
    """Write preference pairs for the trained facts of `data_dir` (a folder from `orgtune data build`)."""
    s = settings or PrefSettings()
    data_dir, out = Path(data_dir), Path(out)
    _check(data_dir, out, s)
    val_out = out.with_name(out.stem + ".val.jsonl")
    started = time.time()
    folder = read_folder(data_dir)
    rng = random.Random(s.seed)
    # 1–2. Questions: trained facts, facts kept out of training, things no document states.
    qs = ask(
        folder,
        rng,
        questions_per_fact=s.questions_per_fact,
        max_questions=s.max_questions,
        unknown_per_fact=s.unknown_per_fact,
        abstain_share=s.abstain_share,
    )
    if not qs.asks:
        raise OrgtuneError(
            f"{data_dir}: no trained fact has a phrasing left to ask",
            fix="rebuild the data with fewer --examples-per-fact, or write a preference file by hand",
        )
    # 3. The model answers every question (real generation, eval's token budget per task).
    source_model, (fact_said, unknown_said, unstated_said) = _answer(model, qs, s.batch_size, log)
    # 4. Pairs.
    pairs = _Pairs(folder.docs)
    model_right, sure_right = _fact_pairs(pairs, folder, qs.asks, *fact_said, s.sure, rng)
    _refusal_pairs(pairs, qs.asks, fact_said[1], sure_right, s, rng)
    skipped_sure = _abstention_pairs(pairs, qs, unknown_said, unstated_said, s.sure)
    if s.anchors:
        _anchor_pairs(pairs, qs.asks, fact_said[1])
    # 5. Split by fact (abstention rows by their question), write both files atomically.
    train_rows, val_rows = _split(pairs.rows, s.val_fraction, s.seed)
    if not train_rows:
        raise OrgtuneError(
            f"{data_dir}: no preference pair could be made", fix="check that the data folder has trained facts"
        )
    counts = {
        "questions": len(qs.asks),
        "unknown_questions": len(qs.unknown),
        "unstated_questions": len(qs.unstated),
        "pairs": len(pairs.rows),
        "train": len(train_rows),
        "val": len(val_rows),
        "rejected_kinds": pairs.kinds,
        "model_right_on_fact_questions": model_right,
        "model_sure_and_right": len(sure_right),
        "skipped_wrong_but_sure": skipped_sure,
        "dropped_for_probe_leakage": len(qs.leaked),
        "seconds": round(time.time() - started, 1),
    }
    atomic.write_jsonl(out, train_rows)
    atomic.write_jsonl(val_out, val_rows)
    atomic.write_json(
        out.with_name(out.stem + ".manifest.json"),
        {
            "kind": "orgtune-prefs",
            "data": str(data_dir.resolve()),
            "answered_by": source_model,
            "settings": s.__dict__,
            "counts": counts,
            "files": {"train": str(out), "val": str(val_out)},
        },
    )
    return PrefResult(out, val_out, counts)


def _check(data_dir: Path, out: Path, s: PrefSettings) -> None:
    """Refuse a folder, a share or an output name that cannot work, before any model loads."""
    for name in ("facts.jsonl", "docs.jsonl", "train.jsonl", "manifest.json"):
        if not (data_dir / name).is_file():
            raise OrgtuneError(f"{data_dir}: no {name}", fix="pass a folder made by `orgtune data build`")
    for name in ("abstain_share", "val_fraction", "refusal_share", "sure"):
        value = getattr(s, name)
        if not 0 <= value <= (10 if name == "abstain_share" else 1):
            raise OrgtuneError(
                f"--{name.replace('_', '-')} {value}: out of range",
                fix="a share between 0 and 1 (--abstain-share: 0 to 10)",
            )
    if out.suffix != ".jsonl":
        raise OrgtuneError(f"--out {out}: preference file must end in .jsonl", fix="e.g. --out data/v1/prefs.jsonl")


def _resolve_model(model: str):
    from orgtune.evaluate.answer import load_backend
    from orgtune.generate.settings import GenerationSettings

    path = Path(model)
    if (path / "manifest.json").is_file():
        return load_backend(path, settings=GenerationSettings()), {"run": str(path.resolve())}
    return load_backend(model=model, settings=GenerationSettings()), {"model": model}


def _answer(model: str, qs: Questions, batch_size: int, log) -> tuple[dict, list[tuple[list[str], list[float]]]]:
    """Who answered, and (answers, confidence in each) for the fact, unknown and unstated questions in turn."""
    from orgtune.evaluate.prefs import answer_confidence
    from orgtune.evaluate.run import answer_probes
    from orgtune.generate.settings import GenerationSettings

    backend, source_model = _resolve_model(model)
    log(f"answering {len(qs.asks) + len(qs.unknown) + len(qs.unstated)} questions with {backend.name}")
    questions = [{"task": task, "question": q} for _, task, q, _ in qs.asks + qs.unknown] + [
        {"task": "SPEC", "question": u[1]} for u in qs.unstated
    ]
    answers = answer_probes(backend, questions, GenerationSettings(batch_size=batch_size))
    with backend.active():
        confidence = answer_confidence(
            backend.model,
            backend.tok,
            [[{"role": "user", "content": q["question"]}] for q in questions],
            answers,
            max_len=1024,
        )
    a, b = len(qs.asks), len(qs.asks) + len(qs.unknown)
    return source_model, [(answers[:a], confidence[:a]), (answers[a:b], confidence[a:b]), (answers[b:], confidence[b:])]


def _fact_pairs(
    pairs: _Pairs,
    folder: DataFolder,
    asks: list[Ask],
    answers: list[str],
    conf: list[float],
    sure: float,
    rng: random.Random,
) -> tuple[int, list[int]]:
    """A pair per fact question: the grounded answer against the model's wrong one, else a corrupted copy.
    Returns how many the model got right, and which of them (indices into `asks`) it was sure of."""
    from orgtune.evaluate.score import score_probe

    model_right = 0
    neighbours: dict[tuple[str, str], list[Fact]] = {}
    for f in folder.facts:
        if f.fact_id not in folder.held:
            neighbours.setdefault((f.doc_id, f.kind), []).append(f)
    sure_right = []
    for i, ((f, task, q, grounded), said) in enumerate(zip(asks, answers, strict=True)):
        verdict = score_probe(_as_probe(f, task, q), said)
        if verdict.correct and conf[i] >= sure:
            sure_right.append(i)  # (counted always; used to pick refusal pairs when `sure` is set)
        if said.strip() and not verdict.correct and not verdict.abstained and said.strip() != grounded.strip():
            pair = (said.strip(), "model")
        else:
            model_right += verdict.correct
            pair = corrupt(f, grounded, neighbours.get((f.doc_id, f.kind), []), rng)
            if pair is None:
                continue
        pairs.add(
            q, grounded, pair[0], pair[1], [f.fact_id], _source(f, pairs.docs), conf[i] if pair[1] == "model" else None
        )
    return model_right, sure_right


def _refusal_pairs(
    pairs: _Pairs, asks: list[Ask], conf: list[float], sure_right: list[int], s: PrefSettings, rng: random.Random
) -> None:
    """Refusal pairs: on any fact question, or (with `sure`) only where the model is right and sure."""
    pool = sure_right if s.sure else list(range(len(asks)))
    refuse = rng.sample(pool, min(len(pool), round(s.refusal_share * len(asks))))
    for i in sorted(refuse):
        _against_abstaining(pairs, asks[i], conf[i], "refusal")


def _against_abstaining(pairs: _Pairs, ask_: Ask, confidence: float, kind: str) -> None:
    """The grounded answer against abstaining in the place of the value, in the words unknown facts choose:
    the pairs contrast on whether the model knows the fact, not on the wording."""
    f, _task, q, grounded = ask_
    pairs.add(
        q, grounded, dont_know(f, pairs.docs[f.doc_id], grounded), kind, [f.fact_id], _source(f, pairs.docs), confidence
    )


def _abstention_pairs(
    pairs: _Pairs,
    qs: Questions,
    unknown_said: tuple[list[str], list[float]],
    unstated_said: tuple[list[str], list[float]],
    sure: float,
) -> int:
    """Abstaining against the model's made-up answer, on unknown facts and unstated things; returns how many
    wrong answers were skipped because the model was sure of them."""
    from orgtune.evaluate.score import abstains, score_probe

    skipped_sure = 0
    for (f, task, q, not_knowing), said, conf in zip(qs.unknown, *unknown_said, strict=True):
        if not said.strip() or abstains(said) or score_probe(_as_probe(f, task, q), said).correct:
            continue  # abstains already, or right without having seen it: nothing to teach
        if sure and conf >= sure:
            skipped_sure += 1  # wrong but sure of it: nothing in the model tells it apart from what it knows
            continue
        pairs.add(q, not_knowing, said.strip(), "unknown", [f.fact_id], _source(f, pairs.docs), conf)
    for (doc_id, q, a, what), said, conf in zip(qs.unstated, *unstated_said, strict=True):
        if not said.strip() or abstains(said):
            continue  # the model already abstains: nothing to push away from
        if sure and conf >= sure:
            skipped_sure += 1
            continue
        pairs.add(
            q,
            a,
            said.strip(),
            "abstain",
            [],
            {"doc_id": doc_id, "path": pairs.docs[doc_id].path, "unstated": what},
            conf,
        )
    return skipped_sure


def _anchor_pairs(pairs: _Pairs, asks: list[Ask], conf: list[float]) -> None:
    """An anchor pair for each trained fact whose value the model borrowed for an unknown or unstated
    question (and that has no refusal pair yet), on the fact's first question."""
    have = {r["fact_ids"][0] for r in pairs.rows if r["rejected_kind"] == "refusal"}
    first_ask: dict[str, int] = {}
    for i, (f, _task, _q, _g) in enumerate(asks):
        first_ask.setdefault(f.fact_id, i)
    borrowed_from = [
        (r["prompt"][0]["content"], r["rejected"][0]["content"])
        for r in pairs.rows
        if r["rejected_kind"] in ("unknown", "abstain")
    ]
    for fid in borrowed(borrowed_from, [asks[i][0] for i in first_ask.values()]):
        if fid not in have:
            _against_abstaining(pairs, asks[first_ask[fid]], conf[first_ask[fid]], "anchor")


def _split(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, val): by fact, and rows about no fact (abstention) by their question."""
    val_ids = _val_ids(sorted({i for r in rows for i in r["fact_ids"]}), fraction, seed)
    val_q = _val_ids(sorted(r["prompt"][0]["content"] for r in rows if not r["fact_ids"]), fraction, seed)
    is_val = [bool(set(r["fact_ids"]) & val_ids) or r["prompt"][0]["content"] in val_q for r in rows]
    return (
        [r for r, v in zip(rows, is_val, strict=True) if not v],
        [r for r, v in zip(rows, is_val, strict=True) if v],
    )


def _val_ids(fact_ids: list[str], fraction: float, seed: int) -> set[str]:
    ranked = sorted(fact_ids, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
    return set(ranked[: max(1, round(fraction * len(ranked)))]) if fraction > 0 and len(ranked) > 1 else set()


def _source(f: Fact, docs: dict) -> dict:
    return {"doc_id": f.doc_id, "path": docs[f.doc_id].path, "span": list(f.span), "section_path": f.section_path}


def _as_probe(f: Fact, task: str, question: str) -> dict:
    """A question about `f` in the shape the scorer reads."""
    return {
        "kind": f.kind,
        "task": task,
        "expected": f.value,
        "unit": f.unit,
        "plain_question": question,
        **({"expected_steps": f.steps} if f.steps else {}),
    }


def _row(
    question: str,
    chosen: str,
    rejected: str,
    kind: str,
    fact_ids: list[str],
    source: dict | None,
    confidence: float | None = None,
) -> dict:
    """A pair in TRL's conversational format; `confidence`: how sure the model was of its own answer in it."""
    key = f"{question}\x00{chosen}\x00{rejected}"
    return {
        "id": "pref-" + hashlib.sha1(key.encode()).hexdigest()[:12],
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "rejected_kind": kind,
        "fact_ids": fact_ids,
        "source": source,
        **({"model_confidence": round(confidence, 6)} if confidence is not None else {}),
    }
