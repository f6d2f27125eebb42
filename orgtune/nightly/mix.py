"""A night's training folder: the new and changed documents' rows, a replayed sample of earlier rows of
documents that did not change (never of changed or removed ones: their old values must not come back),
the user's extra rows, and the probes of every current document, each tagged new or old.

    mix = assemble(project, night_dir, delta, prev_state, data_dir, extra_rows, seed=0)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from orgtune import atomic


def _read(path: Path) -> list[dict]:
    return (
        [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
        if Path(path).is_file()
        else []
    )


def _of_doc(rows: list[dict], doc_id: str) -> list[dict]:
    return [r for r in rows if (r.get("source") or {}).get("doc_id") == doc_id]


def assemble(
    nights: Path,
    night_dir: Path,
    delta,
    prev_state: dict,
    current: dict,
    data_dir: Path | None,
    extra_rows: list[dict],
    *,
    replay: float,
    seed: int,
) -> dict:
    new_train = _read(data_dir / "train.jsonl") if data_dir else []
    new_val = _read(data_dir / "val.jsonl") if data_dir else []
    probes = []
    for p in _read(data_dir / "probes.jsonl") if data_dir else []:
        key = next((k for k in delta.added + delta.changed if current[k].sha256 == p["source"]["doc_id"]), None)
        probes.append({**p, "nightly": {"group": "new", "doc": key}})
    pool, old_val = [], []
    for key in delta.unchanged:
        st = prev_state[key]
        data = nights / st["data_night"] / "data"
        pool += _of_doc(_read(data / "train.jsonl"), st["sha256"])
        old_val += _of_doc(_read(data / "val.jsonl"), st["sha256"])
        probes += [
            {**p, "nightly": {"group": "old", "doc": key}}
            for p in _read(data / "probes.jsonl")
            if p["source"]["doc_id"] == st["sha256"]
        ]
    fresh = len(new_train) + len(extra_rows)
    rng = random.Random(seed)
    sample = rng.sample(pool, min(len(pool), round(replay * fresh))) if fresh else []
    val = new_val or rng.sample(old_val, min(len(old_val), 20))
    train = new_train + extra_rows + sample
    rng.shuffle(train)
    out = night_dir / "mix"
    counts = {
        "new_rows": len(new_train),
        "extra_rows": len(extra_rows),
        "replayed_rows": len(sample),
        "replay_pool": len(pool),
        "val": len(val),
        "probes_new": sum(p["nightly"]["group"] == "new" for p in probes),
        "probes_old": sum(p["nightly"]["group"] == "old" for p in probes),
    }
    with atomic.building_folder(out, replace=out.exists(), marker=False) as staging:
        atomic.write_jsonl(staging / "train.jsonl", train)
        atomic.write_jsonl(staging / "val.jsonl", val)
        atomic.write_jsonl(staging / "probes.jsonl", probes)
        atomic.write_json(staging / "manifest.json", {"counts": counts, "replay": replay, "seed": seed})
    return {"dir": out, "counts": counts, "probes": probes}
