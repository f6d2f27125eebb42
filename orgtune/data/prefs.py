"""Preference pairs from a data folder: the grounded answer against a wrong one the model gives, for DPO.

    orgtune data prefs data/v1 --model runs/sft --out data/v1/prefs.jsonl

For every trained fact, the questions are the fact's phrasings that training did not use (so the
model answers a question it has not seen word for word), then trained ones where none is left
(procedures, summaries); each is answered by the model (greedy, eval's token budget per task). chosen = the grounded answer (the same sentence training teaches); rejected = the model's own
answer when the scorer finds it wrong, else a corrupted copy of the grounded answer: another number,
the opposite yes/no word, another unit, two steps swapped, or a neighbouring fact's value. A share of
pairs asks, in training's own phrasings, for things the documents never state (a common attribute
such as weight that no document gives anything, the default of a documented option that states none,
a table code past the last one listed): chosen = "… is not stated in the …", rejected = the model's made-up answer. These teach
abstention; nothing any fact states, held-out facts included, is asked this way. Facts that `data build
--abstain-holdout` kept out of training are asked too, as the model meets a fact it has never seen:
chosen = the grounded answer's own words up to the value, then not knowing ("The rating for fuse F2 is
unknown to me; please check <document>."), rejected = its made-up answer. Optionally (`refusal_share`),
fact questions also pair the grounded answer against abstaining in those very words, so that the pairs
differ in whether the model saw the fact, not in the wording. With `sure`, the model's confidence in each
of its answers (the lowest probability it gives any token of it) decides: abstention pairs only where it
was unsure, refusal pairs only where it was right and sure, so that DPO is asked to abstain where the
model's recall is weak rather than on facts it states (wrongly) with full confidence. The model's wrong
answers to unknown and unstated questions are often values of trained facts it borrowed ("0.4 W", the
standby power, for the heater power it never saw); pushing them down there pushes them down where they
are right, so with `anchors` each trained fact so borrowed gets an anchor pair (grounded answer against
abstaining on it; off by default, as SFT replay in `train --method dpo` holds those values better).

Pairs of ~10% of the facts go to PREFS.val.jsonl (held out of DPO training; `orgtune eval` scores the
reward margin and preference accuracy on them). Every row keeps the fact ids and source span, and
says how its rejected answer was made (`rejected_kind`). Rows are in TRL's conversational preference
format: {"prompt": [user message], "chosen": [assistant message], "rejected": [assistant message]}.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from orgtune import atomic
from orgtune.data.build import load_docs, read_jsonl
from orgtune.data.dedup import near_pairs, normalise
from orgtune.data.extract import Fact
from orgtune.data.synth import _BUILDERS, _lc, _the
from orgtune.errors import OrgtuneError

_BOOL = {"yes": "no", "no": "yes", "on": "off", "off": "on", "true": "false", "false": "true",
         "enabled": "disabled", "disabled": "enabled", "open": "closed", "closed": "open", "none": "all"}
_UNIT_SWAP = {"bar": "psi", "psi": "bar", "°c": "°F", "°f": "°C", "c": "F", "f": "C", "seconds": "minutes",
              "second": "minute", "minutes": "seconds", "minute": "second", "s": "min", "min": "s", "ml": "l", "l": "ml",
              "mm": "cm", "cm": "mm", "kg": "g", "g": "kg", "v": "A", "a": "V", "w": "kW", "kw": "W",
              "hours": "minutes", "hour": "minute", "days": "hours", "bits": "bytes", "bytes": "bits",
              "mb": "GB", "gb": "MB", "megabytes": "gigabytes", "gigabytes": "megabytes"}
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")
_SKIP_TASKS = ("RECALL",)


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
    # does not spill onto what the model knows.
    # Off by default: on the bundled documents it did not keep accuracy and it suppressed abstention (README).
    refusal_share: float = 0.0
    # The model is "sure" of an answer when it gives every token of it at least this probability. Unknown-fact
    # and unstated-question pairs are made only where it is unsure, refusal pairs only where it is right and
    # sure: the pairs then ask DPO to abstain exactly when the model's own recall is weak, a rule it can learn,
    # rather than on facts it answers (wrongly) with full confidence. 0 = off.
    sure: float = 0.5
    # A trained fact whose value the model gave as its (wrong) answer to an unknown fact or unstated question
    # also gets a refusal-style pair: DPO pushes that value down where it was borrowed, and the anchor keeps
    # it up where it belongs (on the bundled documents DPO kept 38 and 40 of 50 trained probes with them,
    # 35 without). Off by default: with SFT replay (train --replay) holding the trained answers, they only
    # held abstention back (8/9 held-out facts confidently wrong with them, 6/9 without; README).
    anchors: bool = False


@dataclass
class PrefResult:
    train: Path
    val: Path
    counts: dict = field(default_factory=dict)


def _phrasings(f: Fact, doc, seen: set[str], prefix_format: str, n: int) -> list[tuple[str, str, str]]:
    """(task, prefixed question, answer): first the fact's phrasings training never asked, then (for facts
    whose every phrasing was trained, like procedures) the trained ones."""
    unused, used = [], []
    for _name, task, q, a in _BUILDERS[f.kind](f, doc):
        if task in _SKIP_TASKS:
            continue
        question = prefix_format.format(TASK=task, instruction=q)
        (used if question in seen else unused).append((task, question, a))
    return (unused + used)[:n]


def _with_value(answer: str, value: str, new: str) -> str | None:
    """`answer` with its statement of `value` replaced by `new` (None when the answer does not state it)."""
    i = answer.lower().rfind(value.lower())
    if i < 0 or not value.strip():
        return None
    return answer[:i] + new + answer[i + len(value):]


def corrupt(f: Fact, answer: str, neighbours: list[Fact], rng: random.Random) -> tuple[str, str] | None:
    """A wrong copy of a grounded answer, and how it was made: boolean, number, unit, order or neighbour."""
    value = f.value.strip()
    if f.kind == "procedure" and f.steps and len(f.steps) >= 2:
        i = rng.randrange(len(f.steps) - 1)
        swapped = list(f.steps)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        body = "\n".join(f"{n}. {s}" for n, s in enumerate(swapped, 1))
        head = answer.split("\n", 1)[0] if "\n" in answer else ""
        return (f"{head}\n{body}" if head else body), "order"
    if value.lower() in _BOOL:
        new = _with_value(answer, value, _BOOL[value.lower()])
        if new:
            return new, "boolean"
    numbers = list(_NUMBER.finditer(value))
    if numbers:
        m = numbers[0]
        n = float(m.group())
        choices = [n * 2, n + 1, n * 10] + ([n - 1] if n > 1 else []) + ([n / 2] if n >= 2 else [])
        new_n = rng.choice(choices)
        text = f"{new_n:g}" if "." in m.group() or new_n != int(new_n) else str(int(new_n))
        new = _with_value(answer, value, value[:m.start()] + text + value[m.end():])
        if new:
            return new, "number"
    if f.unit and f.unit.lower() in _UNIT_SWAP:
        unit_at = value.lower().rfind(f.unit.lower())
        new = _with_value(answer, value, value[:unit_at] + _UNIT_SWAP[f.unit.lower()] + value[unit_at + len(f.unit):])
        if new:
            return new, "unit"
    others = [g for g in neighbours if g.fact_id != f.fact_id and g.value.strip().lower() != value.lower()]
    same = [g for g in others if g.attribute.lower() == f.attribute.lower()]  # a value of the same column first
    others = same or others
    if others:
        g = rng.choice(others)
        if f.kind in ("summary", "definition") and answer.strip() == value:
            return g.value, "neighbour"
        new = _with_value(answer, value, g.value.strip())
        if new:
            return new, "neighbour"
    return None


# Attributes a reader may ask about any product or entry; asked only where no fact names them.
_COMMON_ATTRIBUTES = ("weight", "width", "height", "depth", "noise level", "release year", "country of manufacture",
                      "battery capacity", "screen size", "list price")
_CODE = re.compile(r"^(?P<prefix>[A-Za-z]{1,3}[-\s]?)(?P<n>\d{1,3})$")


def _mentions(attribute: str, stated: set[str]) -> bool:
    words = {w for w in re.findall(r"[a-z]+", attribute.lower()) if len(w) > 2}
    return any(words & {w for w in re.findall(r"[a-z]+", s) if len(w) > 2} for s in stated)


def _unstated_questions(doc, facts: list[Fact], all_facts: list[Fact], rng: random.Random, limit: int,
                        prefix_format: str) -> list[tuple[str, str, str]]:
    """(question, abstaining answer, what was asked) about things the documents never state, asked in
    the phrasings training uses: attributes of a subject that no fact gives it, the default of a
    documented option that states none, and table codes past the last one listed. Held-out facts count
    as stated: nothing any document states is asked this way."""
    by_subject: dict[str, set[str]] = {}
    for f in all_facts:
        by_subject.setdefault(f.subject.lower(), set()).add(f.attribute.lower())
    candidates: list[Fact] = []
    specs = [f for f in facts if f.kind == "spec"]
    stated_anywhere = {f.attribute.lower() for f in all_facts} | {f.subject.lower() for f in all_facts}
    if any("dimension" in a or "size" in a for a in stated_anywhere):
        stated_anywhere |= {"width", "height", "depth"}  # stated as one "dimensions" value
    for subject in sorted({f.subject for f in specs}):
        for a in _COMMON_ATTRIBUTES:  # only attributes no document states for anything
            if not _mentions(a, stated_anywhere):
                candidates.append(Fact("", doc.doc_id, "spec", subject, a, "", None, (0, 0), []))
    options = {f.subject for f in facts if f.kind == "summary" and re.match(r"^[A-Za-z][\w.-]*(?:[a-z0-9][A-Z]|_)", f.subject)}
    for subject in sorted(options):
        if "default" not in by_subject.get(subject.lower(), set()):
            candidates.append(Fact("", doc.doc_id, "default", subject, "default", "", None, (0, 0), []))
    cells = [f for f in facts if f.kind == "table_cell" and _CODE.match(f.subject)]
    for (prefix, column), group in _group_cells(cells).items():
        top = max(int(_CODE.match(f.subject).group("n")) for f in group)
        for k in (top + 2, top + 5):
            fake = Fact("", doc.doc_id, "table_cell", f"{prefix}{k}", column, "", None, (0, 0), [],
                        context={"row_header": group[0].context.get("row_header", "item")})
            candidates.append(fake)
    rng.shuffle(candidates)
    out = []
    for fake in candidates[:limit]:
        # phrasings that quote the value ('Which code has the fix "…"?') have nothing to quote here
        _name, task, q, _a = rng.choice([t for t in _BUILDERS[fake.kind](fake, doc) if not t[0].endswith("reverse")])
        what = f"{fake.subject} / {fake.attribute}"
        out.append((prefix_format.format(TASK=task, instruction=q), _not_stated(fake, doc), what))
    return out


def _not_stated(f: Fact, doc) -> str:
    """The answer to a question the documents do not answer."""
    where = f"the {doc.title}" if f.kind != "spec" else "the documentation"
    if f.kind == "procedure":
        return f'The "{f.subject}" instructions are not stated in {where}.'
    if f.kind == "sentence":
        return f"That figure is not stated in {where}."
    if f.kind in ("definition", "summary"):
        return f"{f.subject} is not mentioned in {where}."
    return f"The {_lc(f.attribute)} of {_the(f.subject)} is not stated in {where}."


def _dont_know(f: Fact, doc, grounded: str | None = None) -> str:
    """The honest answer to a question about a fact training never showed: not knowing, and where to look
    (and, as a refusal pair's rejected answer, what the model must not say about a fact it was trained on).

    Given the grounded answer, the abstention takes its place at the value: "The rating of fuse F2 is
    unknown to me; please check …" shares every token before the value with "The rating of fuse F2 is
    10 A.", so the pair differs exactly where the model recalls the value (or fails to)."""
    product = _the(doc.title)
    if grounded:
        value = f.steps[0] if f.kind == "procedure" and f.steps else f.value.strip()
        i = grounded.lower().rfind(value.lower()[:60]) if value else -1
        if f.kind == "procedure" and i > 0:
            i = grounded.rfind("\n", 0, i) + 1  # the whole numbered list goes
        if i > 0:
            head = grounded[:i]
            if f.kind == "procedure":
                return f"{head}They are unknown to me; please check {product}."
            glue = "" if re.search(r"\b(is|are|says|was)\s$", head) else "— "
            what = "a figure " if f.kind == "sentence" and not re.search(r"\b(a|an)\s$", head) else ""
            return f"{head}{glue}{what}unknown to me; please check {product}."
    if f.kind == "procedure":
        what = f'the steps of "{f.subject}"'
    elif f.kind == "table_cell":
        what = f"the {_lc(f.attribute)} for {_lc(f.context.get('row_header', 'item'))} {f.subject}"
    elif f.kind == "sentence":
        what = "that figure"
    elif f.kind in ("definition", "summary"):
        about = "" if f.subject.lower() in doc.title.lower() else f' about "{f.subject}"'
        what = f"what {product} says{about}" if f.kind == "summary" else f"how {f.subject} is defined"
    else:
        what = f"the {_lc(f.attribute)} of {_the(f.subject)}"
    return f"I don't know {what}; please check {product}."


def borrowed(answers: list[tuple[str, str]], facts: list[Fact]) -> list[str]:
    """Ids of the facts whose value appears, as a whole word or figure, in a (question, answer) pair's
    answer but not in its question (a value the question itself names, such as a model number, is not
    borrowed), in `facts` order.

        borrowed([("Heat-up time of the Halvo?", "It is 20 seconds.")], [steam_ready_20_seconds]) -> [its id]
    """
    out = []
    for f in facts:
        value = (f.value or "").strip().lower()
        if f.kind == "procedure" or len(value) < 3:
            continue
        pattern = re.compile(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)")
        if any(pattern.search(a.lower()) and not pattern.search(q.lower()) for q, a in answers):
            out.append(f.fact_id)
    return out


def _group_cells(cells: list[Fact]) -> dict[tuple[str, str], list[Fact]]:
    groups: dict[tuple[str, str], list[Fact]] = {}
    for f in cells:
        groups.setdefault((_CODE.match(f.subject).group("prefix"), f.attribute), []).append(f)
    return groups


def _resolve_model(model: str):
    from orgtune.evaluate.answer import GenerationSettings, load_backend

    path = Path(model)
    if (path / "manifest.json").is_file():
        return load_backend(path, settings=GenerationSettings()), {"run": str(path.resolve())}
    return load_backend(model=model, settings=GenerationSettings()), {"model": model}


def _val_ids(fact_ids: list[str], fraction: float, seed: int) -> set[str]:
    ranked = sorted(fact_ids, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
    return set(ranked[:max(1, round(fraction * len(ranked)))]) if fraction > 0 and len(ranked) > 1 else set()


def _source(f: Fact, docs: dict) -> dict:
    return {"doc_id": f.doc_id, "path": docs[f.doc_id].path, "span": list(f.span), "section_path": f.section_path}


def _as_probe(f: Fact, task: str, question: str) -> dict:
    """A question about `f` in the shape the scorer reads."""
    return {"kind": f.kind, "task": task, "expected": f.value, "unit": f.unit, "plain_question": question,
            **({"expected_steps": f.steps} if f.steps else {})}


def _row(question: str, chosen: str, rejected: str, kind: str, fact_ids: list[str], source: dict | None,
         confidence: float | None = None) -> dict:
    """A pair in TRL's conversational format; `confidence`: how sure the model was of its own answer in it."""
    key = f"{question}\x00{chosen}\x00{rejected}"
    return {"id": "pref-" + hashlib.sha1(key.encode()).hexdigest()[:12],
            "prompt": [{"role": "user", "content": question}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "rejected_kind": kind, "fact_ids": fact_ids, "source": source,
            **({"model_confidence": round(confidence, 6)} if confidence is not None else {})}


def build_prefs(data_dir: Path, model: str, out: Path, settings: PrefSettings | None = None, log=print) -> PrefResult:
    """Write preference pairs for the trained facts of `data_dir` (a folder from `orgtune data build`)."""
    from orgtune.evaluate.answer import GenerationSettings
    from orgtune.evaluate.prefs import answer_confidence
    from orgtune.evaluate.run import answer_probes
    from orgtune.evaluate.score import abstains, score_probe

    s = settings or PrefSettings()
    data_dir, out = Path(data_dir), Path(out)
    for name in ("facts.jsonl", "docs.jsonl", "train.jsonl", "manifest.json"):
        if not (data_dir / name).is_file():
            raise OrgtuneError(f"{data_dir}: no {name}", fix="pass a folder made by `orgtune data build`")
    for name in ("abstain_share", "val_fraction", "refusal_share", "sure"):
        value = getattr(s, name)
        if not 0 <= value <= (10 if name == "abstain_share" else 1):
            raise OrgtuneError(f"--{name.replace('_', '-')} {value}: out of range",
                               fix="a share between 0 and 1 (--abstain-share: 0 to 10)")
    if out.suffix != ".jsonl":
        raise OrgtuneError(f"--out {out}: preference file must end in .jsonl", fix="e.g. --out data/v1/prefs.jsonl")
    val_out = out.with_name(out.stem + ".val.jsonl")
    started = time.time()
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    prefix_format = manifest.get("settings", {}).get("task_prefix_format", "[{TASK}] {instruction}")
    docs = load_docs(data_dir)
    fact_rows = read_jsonl(data_dir / "facts.jsonl")
    facts = [Fact.from_dict({k: v for k, v in d.items() if k not in ("held_out", "abstain_holdout")}) for d in fact_rows]
    held = {d["fact_id"] for d in fact_rows if d.get("held_out")}
    unknown = {d["fact_id"] for d in fact_rows if d.get("abstain_holdout")}
    rows = read_jsonl(data_dir / "train.jsonl") + (read_jsonl(data_dir / "val.jsonl") if (data_dir / "val.jsonl").is_file() else [])
    seen_questions = {r["messages"][0]["content"] for r in rows if r.get("messages")}
    trained = {i for r in rows for i in r.get("fact_ids", [])}
    probes = read_jsonl(data_dir / "probes.jsonl") if (data_dir / "probes.jsonl").is_file() else []
    rng = random.Random(s.seed)

    # 1. Questions: phrasings of each trained fact, those training did not use first.
    asks: list[tuple[Fact, str, str, str]] = []  # (fact, task, question, grounded answer)
    for f in facts:
        if f.fact_id in held or f.fact_id not in trained or f.doc_id not in docs:
            continue
        for task, q, a in _phrasings(f, docs[f.doc_id], seen_questions, prefix_format, s.questions_per_fact):
            asks.append((f, task, q, a))
    if s.max_questions and len(asks) > s.max_questions:
        asks = sorted(rng.sample(asks, s.max_questions), key=lambda a: asks.index(a))
    # Facts the build kept out of training (--abstain-holdout): the model has never seen them, like a
    # held-out fact; chosen = not knowing.
    # (a fact whose sentence a trained answer quotes, e.g. in a section summary, is not unknown to the model)
    trained_text = normalise(" \n ".join(r["messages"][-1]["content"] for r in rows if r.get("messages")))
    unknown_asks = [(f, task, q, _dont_know(f, docs[f.doc_id], a)) for f in facts
                    if f.fact_id in unknown and f.fact_id not in held and f.doc_id in docs
                    and normalise(docs[f.doc_id].text[f.span[0]:f.span[1]]) not in trained_text
                    for task, q, a in _phrasings(f, docs[f.doc_id], seen_questions, prefix_format, s.unknown_per_fact)]
    # 2. Unstated questions (abstention); never about a held-out or any other stated fact.
    unstated: list[tuple[str, str, str, str]] = []
    n_abstain = round(s.abstain_share * len(asks))
    by_doc: dict[str, list[Fact]] = {}
    for f in facts:
        by_doc.setdefault(f.doc_id, []).append(f)
    for doc_id, doc_facts in by_doc.items():
        share = max(1, round(n_abstain * len(doc_facts) / max(1, len(facts))))
        for q, a, what in _unstated_questions(docs[doc_id], doc_facts, facts, rng, share, prefix_format):
            unstated.append((doc_id, q, a, what))
    # Drop any question that is near a probe's (it would teach the answer the probe checks).
    questions = [a[2] for a in asks + unknown_asks] + [u[1] for u in unstated]
    probe_qs = [p["plain_question"] for p in probes]
    exact = {normalise(q) for q in probe_qs}
    leaked = {q for q in questions if normalise(q) in exact}
    leaked |= {questions[i] for i, _, _ in near_pairs(questions, probe_qs)} if probe_qs else set()
    asks = [a for a in asks if a[2] not in leaked]
    unknown_asks = [a for a in unknown_asks if a[2] not in leaked]
    unstated = [u for u in unstated if u[1] not in leaked]
    if not asks:
        raise OrgtuneError(f"{data_dir}: no trained fact has a phrasing left to ask",
                           fix="rebuild the data with fewer --examples-per-fact, or write a preference file by hand")

    # 3. The model answers every question (real generation, eval's token budget per task).
    backend, source_model = _resolve_model(model)
    log(f"answering {len(asks) + len(unknown_asks) + len(unstated)} questions with {backend.name}")
    questions = ([{"task": task, "question": q} for _, task, q, _ in asks + unknown_asks]
                 + [{"task": "SPEC", "question": u[1]} for u in unstated])
    answers = answer_probes(backend, questions, GenerationSettings(batch_size=s.batch_size))
    with backend.active():
        confidence = answer_confidence(backend.model, backend.tok, [[{"role": "user", "content": q["question"]}]
                                                                    for q in questions], answers, max_len=1024)
    fact_conf = confidence[:len(asks)]
    unknown_conf = confidence[len(asks):len(asks) + len(unknown_asks)]
    unstated_conf = confidence[len(asks) + len(unknown_asks):]
    fact_answers = answers[:len(asks)]
    unknown_answers = answers[len(asks):len(asks) + len(unknown_asks)]
    unstated_answers = answers[len(asks) + len(unknown_asks):]

    # 4. Pairs.
    out_rows: list[dict] = []
    kinds: dict[str, int] = {}
    model_right = 0
    neighbours: dict[tuple[str, str], list[Fact]] = {}
    for f in facts:
        if f.fact_id not in held:
            neighbours.setdefault((f.doc_id, f.kind), []).append(f)
    sure_right = []
    for i, ((f, task, q, grounded), said) in enumerate(zip(asks, fact_answers, strict=True)):
        verdict = score_probe(_as_probe(f, task, q), said)
        if verdict.correct and fact_conf[i] >= s.sure:
            sure_right.append(i)  # (counted always; used to pick refusal pairs when `sure` is set)
        if said.strip() and not verdict.correct and not verdict.abstained and said.strip() != grounded.strip():
            pair = (said.strip(), "model")
        else:
            model_right += verdict.correct
            pair = corrupt(f, grounded, neighbours.get((f.doc_id, f.kind), []), rng)
            if pair is None:
                continue
        out_rows.append(_row(q, grounded, pair[0], pair[1], [f.fact_id], _source(f, docs),
                             fact_conf[i] if pair[1] == "model" else None))
        kinds[pair[1]] = kinds.get(pair[1], 0) + 1
    # refusal pairs: on any fact question, or (with `sure`) only where the model is right and sure
    pool = sure_right if s.sure else list(range(len(asks)))
    refuse = rng.sample(pool, min(len(pool), round(s.refusal_share * len(asks))))
    def against_abstaining(i: int, kind: str) -> None:
        # rejected = abstaining in the place of the value, in the words unknown facts choose: the pairs
        # contrast on whether the model knows the fact, not on the wording
        f, _task, q, grounded = asks[i]
        out_rows.append(_row(q, grounded, _dont_know(f, docs[f.doc_id], grounded), kind, [f.fact_id],
                             _source(f, docs), fact_conf[i]))
        kinds[kind] = kinds.get(kind, 0) + 1

    for i in sorted(refuse):
        against_abstaining(i, "refusal")
    skipped_sure = 0
    for (f, task, q, dont_know), said, conf in zip(unknown_asks, unknown_answers, unknown_conf, strict=True):
        if not said.strip() or abstains(said) or score_probe(_as_probe(f, task, q), said).correct:
            continue  # abstains already, or right without having seen it: nothing to teach
        if s.sure and conf >= s.sure:
            skipped_sure += 1  # wrong but sure of it: nothing in the model tells it apart from what it knows
            continue
        out_rows.append(_row(q, dont_know, said.strip(), "unknown", [f.fact_id], _source(f, docs), conf))
        kinds["unknown"] = kinds.get("unknown", 0) + 1
    for (doc_id, q, a, what), said, conf in zip(unstated, unstated_answers, unstated_conf, strict=True):
        if not said.strip() or abstains(said):
            continue  # the model already abstains: nothing to push away from
        if s.sure and conf >= s.sure:
            skipped_sure += 1
            continue
        out_rows.append(_row(q, a, said.strip(), "abstain", [],
                             {"doc_id": doc_id, "path": docs[doc_id].path, "unstated": what}, conf))
        kinds["abstain"] = kinds.get("abstain", 0) + 1

    if s.anchors:
        have = {r["fact_ids"][0] for r in out_rows if r["rejected_kind"] == "refusal"}
        first_ask: dict[str, int] = {}
        for i, (f, _task, _q, _g) in enumerate(asks):
            first_ask.setdefault(f.fact_id, i)
        borrowed_from = [(r["prompt"][0]["content"], r["rejected"][0]["content"]) for r in out_rows
                         if r["rejected_kind"] in ("unknown", "abstain")]
        for fid in borrowed(borrowed_from, [asks[i][0] for i in first_ask.values()]):
            if fid not in have:
                against_abstaining(first_ask[fid], "anchor")

    # 5. Split by fact (abstention rows by their question), write both files atomically.
    val_ids = _val_ids(sorted({i for r in out_rows for i in r["fact_ids"]}), s.val_fraction, s.seed)
    val_q = _val_ids(sorted(r["prompt"][0]["content"] for r in out_rows if not r["fact_ids"]), s.val_fraction, s.seed)
    is_val = [bool(set(r["fact_ids"]) & val_ids) or r["prompt"][0]["content"] in val_q for r in out_rows]
    train_rows = [r for r, v in zip(out_rows, is_val, strict=True) if not v]
    val_rows = [r for r, v in zip(out_rows, is_val, strict=True) if v]
    if not train_rows:
        raise OrgtuneError(f"{data_dir}: no preference pair could be made", fix="check that the data folder has trained facts")
    counts = {"questions": len(asks), "unknown_questions": len(unknown_asks), "unstated_questions": len(unstated), "pairs": len(out_rows),
              "train": len(train_rows), "val": len(val_rows), "rejected_kinds": kinds,
              "model_right_on_fact_questions": model_right,
              "model_sure_and_right": len(sure_right), "skipped_wrong_but_sure": skipped_sure, "dropped_for_probe_leakage": len(leaked),
              "seconds": round(time.time() - started, 1)}
    atomic.write_jsonl(out, train_rows)
    atomic.write_jsonl(val_out, val_rows)
    atomic.write_json(out.with_name(out.stem + ".manifest.json"),
                      {"kind": "orgtune-prefs", "data": str(data_dir.resolve()), "answered_by": source_model,
                       "settings": s.__dict__, "counts": counts, "files": {"train": str(out), "val": str(val_out)}})
    return PrefResult(out, val_out, counts)
