"""`orgtune data stats DATA_DIR` and `orgtune data trace EXAMPLE_ID`: what a build contains, and where
each example came from.

    orgtune data stats data/halvo              # counts per task / document, coverage, dedup, leakage, tokens
    orgtune data trace ex-1a2b3c4d5e6f         # the example next to its source span (newest build)

Duplicates and probe leakage are recomputed from the files themselves, not copied from the manifest.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

from orgtune.data import dedup
from orgtune.data.build import KIND, load_docs, read_jsonl
from orgtune.errors import OrgtuneError


def _manifest(data_dir: Path) -> dict:
    try:
        man = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        man = {}
    if man.get("kind") != KIND:
        raise OrgtuneError(
            f"{data_dir}: not a data folder made by `orgtune data build`",
            fix="pass the --out folder of `orgtune data build`",
        )
    return man


def data_stats(data_dir: Path, *, model: str | None = "smollm2-135m") -> dict:
    data_dir = Path(data_dir)
    man = _manifest(data_dir)
    train, val = read_jsonl(data_dir / "train.jsonl"), read_jsonl(data_dir / "val.jsonl")
    probes, facts = read_jsonl(data_dir / "probes.jsonl"), read_jsonl(data_dir / "facts.jsonl")
    rows = train + val
    paths = {d["doc_id"]: d["path"] for d in man.get("inputs", [])}
    per_fact = Counter(fid for r in rows for fid in r["fact_ids"])
    trainable = [f for f in facts if not f.get("held_out") and not f.get("abstain_holdout")]
    texts = [dedup.normalise(" || ".join(m["content"] for m in r["messages"])) for r in rows]
    questions = [r["messages"][0]["content"] for r in rows]
    leaks = dedup.leakage([p["plain_question"] for p in probes], questions)
    exact_probe_in_train = sum(
        1 for p in probes if dedup.normalise(p["plain_question"]) in {dedup.normalise(q) for q in questions}
    )
    out = {
        "documents": len(man.get("inputs", [])),
        "skipped_files": len(man.get("skipped", [])),
        "flagged_sentences": len(man.get("flagged", [])),
        "facts": len(facts),
        "facts_by_kind": dict(Counter(f["kind"] for f in facts)),
        "held_out_facts": sum(1 for f in facts if f.get("held_out")),
        "abstain_holdout_facts": sum(1 for f in facts if f.get("abstain_holdout")),
        "train": len(train),
        "val": len(val),
        "probes": len(probes),
        "probes_held_out": sum(1 for p in probes if p["held_out"]),
        "examples_by_task": dict(Counter(r["task"] for r in rows)),
        "examples_by_document": {paths.get(k, k): v for k, v in Counter(r["source"]["doc_id"] for r in rows).items()},
        "facts_covered": sum(1 for f in trainable if per_fact[f["fact_id"]] > 0),
        "facts_trainable": len(trainable),
        "examples_per_fact": _dist([per_fact[f["fact_id"]] for f in trainable if per_fact[f["fact_id"]] > 0]),
        "duplicates_removed_at_build": man.get("counts", {}).get("duplicates_removed", {}),
        "exact_duplicates_now": len(texts) - len(set(texts)),
        "probe_leakage": len(leaks),
        "probe_exact_in_train": exact_probe_in_train,
    }
    if model:
        from orgtune.data.formats import Row
        from orgtune.data.tokenize import encode_rows
        from orgtune.models.loading import load_tokenizer, resolve_source

        tok = load_tokenizer(resolve_source(model))
        enc = encode_rows(
            tok, [Row(line=i, messages=r["messages"], raw=r) for i, r in enumerate(rows, 1)], max_len=10**9
        )
        out["tokens"] = {"model": model, **_dist(enc.lengths())}
    return out


def _dist(xs: list[int]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)
    return {
        "min": xs[0],
        "mean": round(statistics.fmean(xs), 2),
        "p50": xs[len(xs) // 2],
        "p95": xs[min(len(xs) - 1, int(0.95 * len(xs)))],
        "max": xs[-1],
    }


def render_stats(s: dict) -> str:
    lines = [
        f"documents {s['documents']} (skipped files {s['skipped_files']}, flagged sentences {s['flagged_sentences']})",
        f"facts {s['facts']}: " + ", ".join(f"{k} {v}" for k, v in sorted(s["facts_by_kind"].items())),
        f"held-out facts {s['held_out_facts']}"
        + (f", kept out for abstention pairs {s['abstain_holdout_facts']}" if s["abstain_holdout_facts"] else "")
        + f"; trainable facts covered {s['facts_covered']}/{s['facts_trainable']}",
        f"examples train {s['train']}, val {s['val']}; per task: "
        + ", ".join(f"{k} {v}" for k, v in sorted(s["examples_by_task"].items())),
        "examples per document: " + ", ".join(f"{Path(k).name} {v}" for k, v in s["examples_by_document"].items()),
        f"examples per fact: {s['examples_per_fact']}",
        f"duplicates removed at build: {s['duplicates_removed_at_build']}; exact duplicates now: {s['exact_duplicates_now']}",
        f"probes {s['probes']} ({s['probes_held_out']} held out); probe/train leakage: {s['probe_leakage']} "
        f"(exact {s['probe_exact_in_train']})",
    ]
    if "tokens" in s:
        lines.append(
            f"tokens per example ({s['tokens']['model']}): "
            + ", ".join(f"{k} {v}" for k, v in s["tokens"].items() if k != "model")
        )
    return "\n".join(lines)


def find_data_dir(data: Path | None) -> Path:
    if data is not None:
        return Path(data)
    from orgtune.home import home

    last = home() / "last_data.json"
    if last.is_file():
        return Path(json.loads(last.read_text())["path"])
    raise OrgtuneError("no data folder given and no build recorded yet", fix="pass --data DATA_DIR")


def trace(item_id: str, data_dir: Path, *, context: int = 160) -> str:
    """The example (or probe, or fact) `item_id` next to the source text it was made from."""
    data_dir = Path(data_dir)
    _manifest(data_dir)
    found = None
    for name in ("train.jsonl", "val.jsonl", "probes.jsonl", "facts.jsonl"):
        for row in read_jsonl(data_dir / name):
            if item_id in (row.get("id"), row.get("probe_id"), row.get("fact_id")) and (
                name != "probes.jsonl" or row.get("probe_id") == item_id
            ):
                found = (name, row)
                break
        if found:
            break
    if not found:
        raise OrgtuneError(
            f"{item_id}: no example, probe or fact with this id in {data_dir}",
            fix='copy an id from train.jsonl ("id"), probes.jsonl or facts.jsonl',
        )
    name, row = found
    src = row.get("source") or {"doc_id": row["doc_id"], "span": row["span"], "section_path": row["section_path"]}
    doc = load_docs(data_dir)[src["doc_id"]]
    a, z = src["span"]
    lines = [f"{item_id} ({name})"]
    if "messages" in row:
        lines += [f"  {m['role']}: {m['content']}" for m in row["messages"]]
        lines.append(f"  task {row['task']}, facts {', '.join(row['fact_ids'])}, generator {row['generator']}")
    elif "question" in row:
        lines += [f"  question: {row['question']}", f"  expected: {row['expected']}", f"  held out: {row['held_out']}"]
    else:
        lines.append(f"  {row['kind']}: {row['subject']} / {row['attribute']} = {row['value']}")
    lines.append(f"source: {doc.path} [{a}:{z}] {' > '.join(src['section_path'])}")
    lines.append(
        "  …" + doc.text[max(0, a - context) : a] + "⟦" + doc.text[a:z] + "⟧" + doc.text[z : z + context] + "…"
    )
    return "\n".join(lines)
