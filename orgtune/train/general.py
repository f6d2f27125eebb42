"""General-ability replay by self-distillation: the base model's own answers to a bundled set of general
prompts (train/general_prompts.jsonl, 192 of them, none of which is a question of the general check in
evaluate/general.jsonl), mixed into SFT so that the tuned model keeps the base's behaviour where the
documents say nothing. No download, no teacher: the rows come from the very weights being tuned.

    path = self_distilled(cfg.model.name, device="auto", log=print)   # generated once per base, cached
    rows = general_rows(path, n=60, seed=42)                         # a seeded sample, chat rows

The answers are greedy, up to 160 new tokens; an answer the model did not finish within that budget is
left out (training on it would teach stopping mid-sentence). They are cached under
ORGTUNE_HOME/general/, keyed by the model folder, its weights' size and mtime, and the prompt file, and
written atomically; a run's fingerprint includes the file's sha256. The embedded model's answers are
bundled (train/general_answers/smollm2-135m.json), used while they match the prompt file.
"""

from __future__ import annotations

import hashlib
import json
import random
from importlib import resources
from pathlib import Path

from orgtune import atomic
from orgtune.home import home

MAX_NEW_TOKENS = 160


def prompts() -> list[dict]:
    text = resources.files("orgtune.train").joinpath("general_prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _key(model_dir: Path) -> str:
    weights = sorted(model_dir.glob("*.safetensors"))
    stamp = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in weights]
    text = resources.files("orgtune.train").joinpath("general_prompts.jsonl").read_text(encoding="utf-8")
    blob = json.dumps(
        {"model": str(model_dir.resolve()), "weights": stamp, "prompts": text, "max_new_tokens": MAX_NEW_TOKENS}
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def self_distilled(model: str, *, device: str = "auto", log=print) -> Path:
    """The cached file of the base model's answers (generated on first use: about a minute on a CPU for
    the 135M model)."""
    from orgtune.models.loading import resolve_source

    src = resolve_source(model)
    path = home() / "general" / f"{src.path.name}-{_key(src.path)}.jsonl"
    if path.is_file():
        return path
    bundled = _bundled(src.preset)
    if bundled is not None:  # the embedded model's answers ship with orgtune: no generation on a new machine
        atomic.write_jsonl(path, bundled)
        log(f"general replay: {len(bundled)} answers of the embedded model, bundled with orgtune")
        return path
    from orgtune.generate.hf import HFBackend
    from orgtune.generate.settings import GenerationSettings
    from orgtune.models.loading import load_model

    items = prompts()
    log(f"general replay: the base model answers {len(items)} general prompts (once per base model)")
    base, tok, _ = load_model(model, device=device)
    backend = HFBackend(
        base, tok, name=f"base:{model}", settings=GenerationSettings(max_new_tokens=MAX_NEW_TOKENS, batch_size=16)
    )
    answers = backend.answer([[{"role": "user", "content": p["prompt"]}] for p in items])
    rows = []
    for p, a in zip(items, answers, strict=True):
        if a and len(backend.tok(a, add_special_tokens=False)["input_ids"]) < MAX_NEW_TOKENS - 4:
            rows.append(
                {
                    "messages": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": a}],
                    "task": "GENERAL",
                    "source": {"general_prompt": p["id"]},
                    "generator": {"kind": "self-distillation", "model": model},
                }
            )
    atomic.write_jsonl(path, rows)
    log(f"general replay: {len(rows)} finished answers kept, {len(items) - len(rows)} cut by the budget left out")
    return path


def _prompts_sha() -> str:
    text = resources.files("orgtune.train").joinpath("general_prompts.jsonl").read_text(encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def _bundled(preset: str | None) -> list[dict] | None:
    """A preset's answers generated here and shipped (train/general_answers/<preset>.json), when they
    answer the current prompt file with the current budget."""
    if preset is None:
        return None
    f = resources.files("orgtune.train").joinpath("general_answers", f"{preset}.json")
    if not f.is_file():
        return None
    data = json.loads(f.read_text(encoding="utf-8"))
    if data.get("prompts_sha256") != _prompts_sha() or data.get("max_new_tokens") != MAX_NEW_TOKENS:
        return None  # the prompts changed since: generate
    return data["rows"]


def bundle(model: str, out: Path, *, log=print) -> Path:
    """Write a preset's answers for shipping (see scripts/make_general_prompts.py --bundle)."""
    path = self_distilled(model, log=log)
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    atomic.write_json(
        out, {"model": model, "prompts_sha256": _prompts_sha(), "max_new_tokens": MAX_NEW_TOKENS, "rows": rows}
    )
    return out


def general_rows(path: Path, *, n: int, seed: int) -> list[dict]:
    rows = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    random.Random(seed).shuffle(rows)
    return rows[:n]
