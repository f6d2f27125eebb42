"""`orgtune data build DOCS... --out DATA_DIR`: documents → facts → training data + held-out probes.

    orgtune data build orgtune/data/samples/docs --out data/halvo
    orgtune data build manuals/ wiki-export/ --out data/v2 --examples-per-fact 4 --holdout 0.15 --seed 1

Writes, all at once (the folder appears complete or not at all):
    docs.jsonl     one document per line: doc_id (sha256 of the bytes), text, blocks with spans
    facts.jsonl    extracted facts with kind, subject, attribute, value, unit and source span (held_out; with
                   --abstain-holdout, abstain_holdout: kept out of training for `data prefs`, never probed)
    train.jsonl    chat examples with task, fact_ids, source span and generator
    val.jsonl      the validation share of the examples
    probes.jsonl   closed-book questions for trained and held-out facts (never trained on)
    manifest.json  inputs with hashes, settings, versions, counts, skipped files, flagged sentences
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from orgtune import atomic
from orgtune.data import dedup
from orgtune.data.extract import Fact, extract_facts
from orgtune.data.guard import injection_spans
from orgtune.data.probes import choose_held_out, make_probes, value_in_text
from orgtune.data.synth import SynthSettings, synthesize
from orgtune.errors import OrgtuneError
from orgtune.ingest.blocks import Document
from orgtune.ingest.read import ingest

KIND = "orgtune-data"


@dataclass
class BuildSettings:
    examples_per_fact: int = 5
    max_examples_per_doc: int | None = None
    val_fraction: float = 0.1
    holdout_fraction: float = 0.15
    # Facts kept out of SFT for `data prefs`: real facts the tuned model has never seen, so that DPO can teach
    # it to say it does not know (an untrained fact looks like these, not like an invented question).
    abstain_holdout: float = 0.0
    seed: int = 0
    max_file_mb: float = 20.0
    task_prefix_format: str = "[{TASK}] {instruction}"
    teacher_url: str | None = None
    teacher_model: str | None = None
    teacher_api_key: str | None = None
    teacher_max_tokens: int = 800


@dataclass
class BuildResult:
    out: Path
    manifest: dict


def _overlaps(span, spans) -> bool:
    return any(span[0] < z and a < span[1] for a, z in spans)


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        man = out / "manifest.json"
        try:
            if json.loads(man.read_text()).get("kind") == KIND:
                return  # a previous build: replaced atomically
        except (OSError, json.JSONDecodeError):
            pass
        raise OrgtuneError(f"{out} exists and is not an orgtune data folder", fix="choose a new or empty --out folder")


def build(inputs: list[Path], out: Path, settings: BuildSettings | None = None, log=print) -> BuildResult:
    """Run ingest → extract → synthesize → dedup → split → probes and write DATA_DIR atomically.
    `orgtune data build DOCS... --out DATA_DIR` runs it."""
    s = settings or BuildSettings()
    out = Path(out)
    _check_inputs(inputs, out, s)
    started = time.time()

    docs, skipped = ingest([Path(p) for p in inputs], max_bytes=int(s.max_file_mb * 2**20))
    for sk in skipped:
        log(f"skipped {sk.path}: {sk.reason}")
    if not docs:
        raise OrgtuneError(
            "no readable document among the inputs",
            details=[f"{k.path}: {k.reason}" for k in skipped],
            fix="pass .txt, .md, .html, .pdf or .docx files with text in them",
        )

    flagged = {d.doc_id: injection_spans(d) for d in docs}
    facts: list[Fact] = []
    for d in docs:
        facts.extend(f for f in extract_facts(d) if not _overlaps(f.span, flagged[d.doc_id]))
    held = choose_held_out(facts, fraction=s.holdout_fraction, seed=s.seed)
    unknown = choose_held_out(
        [f for f in facts if f.fact_id not in held],
        fraction=s.abstain_holdout,
        seed=s.seed,
        salt="abstain",
        by_kind=True,
    )
    synth = SynthSettings(
        examples_per_fact=s.examples_per_fact,
        max_examples_per_doc=s.max_examples_per_doc,
        seed=s.seed,
        task_prefix_format=s.task_prefix_format,
    )
    rows = synthesize(docs, facts, held_out=held | unknown, settings=synth, excluded_spans=flagged)
    teacher_stats = None
    if s.teacher_url:
        from orgtune.data.teacher import Teacher, teach

        extra, teacher_stats = teach(
            Teacher(s.teacher_url, s.teacher_model, api_key=s.teacher_api_key, max_tokens=s.teacher_max_tokens),
            docs,
            [f for f in facts if f.fact_id not in held | unknown],
            flagged,
            synth,
        )
        rows.extend(extra)
    rows, removed = dedup.dedup_rows(rows)
    train, val = _split(rows, s.val_fraction, s.seed)

    probes, leaks = _probes(docs, facts, held, rows, s.task_prefix_format)

    manifest = {
        "kind": KIND,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 2),
        "settings": asdict(s) | {"teacher_api_key": None},
        "inputs": [{"path": d.path, "doc_id": d.doc_id, "format": d.format, "title": d.title} for d in docs],
        "skipped": [asdict(k) for k in skipped],
        "flagged": [
            {"doc_id": d.doc_id, "path": d.path, "span": list(sp), "text": d.text[sp[0] : sp[1]]}
            for d in docs
            for sp in flagged[d.doc_id]
        ],
        "counts": {
            "documents": len(docs),
            "facts": len(facts),
            "held_out_facts": len(held),
            "abstain_holdout_facts": len(unknown),
            "examples": len(rows),
            "train": len(train),
            "val": len(val),
            "probes": len(probes),
            "duplicates_removed": removed,
            "probes_dropped_for_leakage": len(leaks),
        },
        "teacher": teacher_stats,
    }
    with atomic.building_folder(out, replace=out.exists(), marker=False) as staging:
        atomic.write_jsonl(staging / "docs.jsonl", [d.to_dict() for d in docs])
        atomic.write_jsonl(
            staging / "facts.jsonl",
            [
                f.to_dict()
                | {"held_out": f.fact_id in held}
                | ({"abstain_holdout": True} if f.fact_id in unknown else {})
                for f in facts
            ],
        )
        atomic.write_jsonl(staging / "train.jsonl", train)
        atomic.write_jsonl(staging / "val.jsonl", val)
        atomic.write_jsonl(staging / "probes.jsonl", probes)
        atomic.write_json(staging / "manifest.json", manifest)
    _remember(out)
    return BuildResult(out=out, manifest=manifest)


def _check_inputs(inputs: list[Path], out: Path, s: BuildSettings) -> None:
    """Refuse bad arguments before any document is read."""
    if not inputs:
        raise OrgtuneError("no documents given", fix="pass files or folders: orgtune data build DOCS... --out DIR")
    for p in inputs:
        if not Path(p).exists():
            raise OrgtuneError(f"{p}: no such file or folder", fix="check the path")
    _check_out(out)
    if not (0 <= s.holdout_fraction < 1 and 0 <= s.abstain_holdout < 1 and s.holdout_fraction + s.abstain_holdout < 1):
        raise OrgtuneError(
            f"--holdout {s.holdout_fraction} and --abstain-holdout {s.abstain_holdout}: "
            "together they must leave facts to train on",
            fix="shares between 0 and 1 whose sum is below 1, e.g. --holdout 0.15 --abstain-holdout 0.1",
        )
    if s.teacher_url and not s.teacher_model:
        raise OrgtuneError(
            "--teacher needs --teacher-model", fix="name the model the endpoint serves, e.g. --teacher-model qwen2.5:7b"
        )


def _probes(docs, facts, held: set[str], rows: list[dict], prefix_format: str) -> tuple[list[dict], set[int]]:
    """Closed-book probes for every fact; those whose question a training row repeats are dropped (leaks)."""
    trained_ids = {fid for r in rows for fid in r["fact_ids"]}
    probes = make_probes(docs, facts, held_out=held, prefix_format=prefix_format, trained_ids=trained_ids)
    answers = [r["messages"][-1]["content"] for r in rows]
    for p in probes:  # a held-out value that training states elsewhere is not held out any more
        if (
            p["held_out"]
            and p["kind"] != "procedure"
            and any(value_in_text(p["expected"], a) for a in answers if p["subject"].lower() in a.lower())
        ):
            p["held_out"] = False
    leaks = dedup.leakage([p["plain_question"] for p in probes], [r["messages"][0]["content"] for r in rows])
    probes = [p for i, p in enumerate(probes) if i not in leaks]
    return probes, leaks


def _split(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n_val = int(round(fraction * len(rows))) if fraction > 0 and len(rows) > 1 else 0
    val_idx = set(idx[:n_val])
    return [r for i, r in enumerate(rows) if i not in val_idx], [r for i, r in enumerate(rows) if i in val_idx]


def _remember(out: Path) -> None:
    """Record the newest build so `orgtune data trace ID` finds it without --data."""
    from orgtune.home import home

    try:
        atomic.write_json(home() / "last_data.json", {"path": str(out.resolve())})
    except OSError:
        pass


def load_docs(data_dir: Path) -> dict[str, Document]:
    return {d["doc_id"]: Document.from_dict(d) for d in read_jsonl(Path(data_dir) / "docs.jsonl")}


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise OrgtuneError(f"{path}: not found", fix="pass a folder made by `orgtune data build`")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
