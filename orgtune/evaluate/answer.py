"""Answer questions with a base model or a run's adapter: greedy by default, batched, the model's chat template.

    orgtune ask runs/first "What pressure does the Velbrook Halvo brew at?"
    orgtune ask --model smollm2-135m --questions q.jsonl --out answers.jsonl
    orgtune ask runs/first --questions q.jsonl --with-base     # base and tuned side by side

An answering backend turns conversations into answers; evaluation uses the same interface, so the
exported (merged, GGUF) models can be scored the same way later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orgtune import atomic
from orgtune.errors import OrgtuneError


class Backend(Protocol):
    name: str

    def answer(self, conversations: list[list[dict]]) -> list[str]: ...


@dataclass
class GenerationSettings:
    max_new_tokens: int = 200
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0


class HFBackend:
    """A transformers model, optionally with a PEFT adapter that can be switched off per call."""

    def __init__(self, model, tok, *, name: str, settings: GenerationSettings | None = None, use_adapter: bool = True,
                 adapter: str | None = None):
        self.model, self.tok, self.name = model.eval(), tok, name
        self.settings = settings or GenerationSettings()
        self.use_adapter = use_adapter
        self.adapter = adapter  # which of a PEFT model's adapters answers (None: the active one)
        self.tok.padding_side = "left"
        from orgtune.data.tokenize import end_of_turn

        eot = end_of_turn(tok)
        stops = {tok.eos_token_id}
        if eot is not None:
            stops.add(tok.convert_tokens_to_ids(eot))
        self.stop_ids = sorted(i for i in stops if i is not None)

    def with_adapter(self, enabled: bool, name: str, adapter: str | None = None) -> HFBackend:
        """The same loaded weights answering with the adapter on or off, or with another loaded adapter
        (no second copy of the model)."""
        other = HFBackend.__new__(HFBackend)
        other.__dict__.update(self.__dict__)
        other.use_adapter, other.name = enabled, name
        if adapter is not None:
            other.adapter = adapter
        return other

    def active(self):
        """A context in which the model computes as this backend: adapters off, or this one's adapter on."""
        import contextlib

        if not self.use_adapter and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        if self.adapter is not None and hasattr(self.model, "set_adapter"):
            self.model.set_adapter(self.adapter)
        return contextlib.nullcontext()

    def answer(self, conversations: list[list[dict]]) -> list[str]:
        import torch

        s = self.settings
        from orgtune.data.tokenize import render

        prompts = [render(self.tok, c, add_generation_prompt=True) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: list[str] = [""] * len(prompts)
        off = self.active()
        gen = dict(max_new_tokens=s.max_new_tokens, pad_token_id=self.tok.pad_token_id, eos_token_id=self.stop_ids)
        if s.temperature > 0:
            gen.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
            torch.manual_seed(s.seed)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        device = next(self.model.parameters()).device
        with off, torch.inference_mode():
            for start in range(0, len(order), s.batch_size):
                idx = order[start:start + s.batch_size]
                enc = self.tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                               add_special_tokens=False).to(device)
                out = self.model.generate(**enc, **gen)
                for row, i in enumerate(idx):
                    new = out[row, enc["input_ids"].shape[1]:]
                    answers[i] = self.tok.decode(new, skip_special_tokens=True).strip()
        return answers


def load_backend(run_dir: Path | None = None, *, model: str | None = None, device: str = "auto",
                 settings: GenerationSettings | None = None) -> HFBackend:
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
        last_user = max((i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "user"), default=None)
        if last_user is not None:
            return [{"role": m["role"], "content": m["content"]} for m in msgs[: last_user + 1]]
    raise OrgtuneError(f"{where}: row has no question", fix='give each row a "question" string (or "prompt", or chat "messages")')


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
            raise OrgtuneError(f"{path}:{n}: not a JSON object ({type(e).__name__})",
                               fix='one JSON object per line, e.g. {"question": "..."}') from None
        if not isinstance(row, dict):
            raise OrgtuneError(f"{path}:{n}: not a JSON object", fix='one JSON object per line, e.g. {"question": "..."}')
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
