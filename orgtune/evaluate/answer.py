"""Answer questions with a base model or a run's adapter: greedy by default, batched, the model's chat template.

    orgtune ask runs/first "What pressure does the Velbrook Halvo brew at?"
    orgtune ask --model smollm2-135m --questions q.jsonl --out answers.jsonl
    orgtune ask runs/first --questions q.jsonl --with-base     # base and tuned side by side

The backends themselves (HF, llama.cpp) live in orgtune/generate/; this module loads one for a run or a
model and reads and writes question files.
"""

from __future__ import annotations

import json
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError
from orgtune.generate.hf import Backend, HFBackend
from orgtune.generate.settings import GenerationSettings


def load_backend(
    run_dir: Path | None = None,
    *,
    model: str | None = None,
    device: str = "auto",
    settings: GenerationSettings | None = None,
) -> HFBackend:
    """The tuned model of a finished run (base + adapter), or a plain model by preset/folder/hub id."""
    from orgtune.models.loading import load_model

    if run_dir is not None:
        from peft import PeftModel

        from orgtune.train.runfolder import read_complete_run

        run = read_complete_run(run_dir)
        base, tok, _ = load_model(run.base_model, device=device, dtype=run.config.model.dtype)
        tuned = PeftModel.from_pretrained(base, run.adapter_dir)
        return HFBackend(tuned, tok, name=f"tuned:{run.path.name}", settings=settings)
    if model is None:
        raise OrgtuneError("nothing to answer with", fix="pass a RUN_DIR or --model PRESET|PATH")
    base, tok, _ = load_model(model, device=device)
    return HFBackend(base, tok, name=f"base:{model}", settings=settings)


def conversation_of(row: dict, where: str) -> list[dict]:
    """A question row → the conversation to answer: `question`, `prompt` or `messages` (up to its last user turn)."""
    for key in ("question", "prompt", "instruction"):
        if isinstance(row.get(key), str) and row[key].strip():
            return [{"role": "user", "content": row[key]}]
    msgs = row.get("messages")
    if isinstance(msgs, list) and msgs:
        last_user = max(
            (i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "user"), default=None
        )
        if last_user is not None:
            return [{"role": m["role"], "content": m["content"]} for m in msgs[: last_user + 1]]
    raise OrgtuneError(
        f"{where}: row has no question", fix='give each row a "question" string (or "prompt", or chat "messages")'
    )


def read_questions(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise OrgtuneError(f"{path}: questions file not found", fix="pass an existing JSONL file to --questions")
    rows = []
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise OrgtuneError(
                f"{path}:{n}: not a JSON object ({type(e).__name__})",
                fix='one JSON object per line, e.g. {"question": "..."}',
            ) from None
        if not isinstance(row, dict):
            raise OrgtuneError(
                f"{path}:{n}: not a JSON object", fix='one JSON object per line, e.g. {"question": "..."}'
            )
        conversation_of(row, f"{path}:{n}")
        rows.append(row)
    if not rows:
        raise OrgtuneError(f"{path}: file is empty", fix="add one question per line")
    return rows


def answer_rows(backend: Backend, rows: list[dict], *, field: str = "answer") -> list[dict]:
    """Copies of `rows` with `field` added (every input field is kept)."""
    answers = backend.answer([conversation_of(r, "row") for r in rows])
    return [{**r, field: a} for r, a in zip(rows, answers, strict=True)]


def write_answers(path: Path, rows: list[dict]) -> None:
    atomic.write_jsonl(Path(path), rows)
