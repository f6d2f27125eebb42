"""Generation engines behind `orgtune serve`: one base model, many adapters, one worker thread.

HFEngine loads the base once and every adapter into the same PEFT model (`load_adapter`). Requests go
into one queue; the worker thread takes what is waiting, groups it by adapter and sampling settings,
activates that adapter (or switches adapters off for the base) and generates each group as one batch.
Only the worker touches the model, so a request can never run under another request's adapter.
LlamaCppEngine serves one GGUF file through llama.cpp with the same interface.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orgtune.errors import OrgtuneError
from orgtune.generate.llama import sample
from orgtune.generate.settings import GenerationSettings, hf_generate_args
from orgtune.generate.stops import gguf_stop_ids, stop_ids


@dataclass
class Job:
    model: str  # a name from engine.names()
    prompt: str  # fully rendered text (chat template applied for chat requests)
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    on_text: Callable[[str], None] | None = None  # streaming: called with each new piece of text
    done: Callable[[dict | BaseException], None] | None = None
    prompt_tokens: int = 0

    def key(self) -> tuple:
        return (self.model, self.temperature, self.top_p, self.seed, self.on_text is not None)

    def settings(self, max_new_tokens: int) -> GenerationSettings:
        return GenerationSettings(
            max_new_tokens=max_new_tokens, temperature=self.temperature, top_p=self.top_p, batch_size=1, seed=self.seed
        )


class StopScanner:
    """Cuts generated text at the first OpenAI `stop` string, holding back text that may start one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text, self.sent, self.hit = "", 0, False

    def feed(self, full: str) -> str:
        """Given the whole text so far, return the new text that is safe to send."""
        if self.hit:
            return ""
        cut = min((i for i in (full.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit, full = True, full[:cut]
            safe = len(full)
        else:
            hold = max((k for s in self.stops for k in range(1, len(s)) if full.endswith(s[:k])), default=0)
            safe = len(full) - hold
        self.text = full
        out = full[self.sent : safe]
        self.sent = max(self.sent, safe)
        return out

    def finish(self) -> str:
        out = self.text[self.sent :]
        self.sent = len(self.text)
        return out


class _Worker:
    """One thread owns the model: jobs are queued, grouped and run there."""

    def __init__(self, max_batch: int):
        self.q: queue.Queue[Job | None] = queue.Queue()
        self.max_batch = max_batch
        self.busy = 0
        self.thread = threading.Thread(target=self._loop, name="orgtune-generate", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        self.q.put(job)

    def pending(self) -> int:
        return self.q.qsize() + self.busy

    def stop(self) -> None:
        self.q.put(None)

    def _loop(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                return
            jobs = [first]
            while len(jobs) < 64:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)
                    break
                jobs.append(nxt)
            self.busy = len(jobs)
            groups: dict[tuple, list[Job]] = {}
            for j in jobs:
                groups.setdefault(j.key(), []).append(j)
            for key, group in groups.items():
                size = 1 if key[-1] else self.max_batch  # streams run one at a time
                for i in range(0, len(group), size):
                    batch = group[i : i + size]
                    try:
                        results = self.run(batch)
                    except BaseException as e:  # noqa: BLE001 - reported to each waiting request
                        results = [e] * len(batch)
                    for j, r in zip(batch, results, strict=True):
                        if j.done:
                            j.done(r)
            self.busy = 0

    def run(self, batch: list[Job]) -> list[dict]:
        raise NotImplementedError


class HFEngine(_Worker):
    kind = "hf"

    def __init__(
        self,
        model: str,
        adapters: dict[str, Path] | None = None,
        *,
        device: str = "auto",
        max_batch: int = 8,
        name: str | None = None,
        log=print,
    ):
        from orgtune.models.loading import load_model

        self.spec = model
        self.base, self.tok, self.info = load_model(model, device=device)
        self.base.eval()
        self.base_name = name or Path(model).name
        self.model = self.base  # becomes a PeftModel with the first adapter
        self.adapters: dict[str, Path] = {}
        self.lock = threading.Lock()  # adapter load/unload vs generation
        # Encoding sets padding on the tokenizer's shared Rust object for the call: a request thread counting
        # tokens while the generation thread encodes a padded batch would unpad it mid-call (a 500 under load).
        self.tok_lock = threading.Lock()
        self.tok.padding_side = "left"
        self.stop_ids = stop_ids(self.tok)
        self.context = int(getattr(self.base.config, "max_position_embeddings", 2048) or 2048)
        for n, p in (adapters or {}).items():
            self.load_adapter(n, p)
            log(f"adapter {n} ← {p}")
        super().__init__(max_batch)

    # -- adapters ---------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def load_adapter(self, name: str, run_or_adapter: Path) -> Path:
        from peft import PeftModel

        folder = _adapter_folder(Path(run_or_adapter))
        if name == self.base_name or not name or "/" in name:
            raise OrgtuneError(f"adapter name {name!r} is not usable", fix="pick a name other than the base model's")
        _check_same_base(folder, self.spec)
        with self.lock:
            if name in self.adapters:
                self.model.delete_adapter(name)
            if self.model is self.base:
                self.model = PeftModel.from_pretrained(self.base, folder, adapter_name=name)
                self.model.eval()
            else:
                self.model.load_adapter(folder, adapter_name=name)
            self.adapters[name] = folder
        return folder

    def unload_adapter(self, name: str) -> None:
        with self.lock:
            if name not in self.adapters:
                raise KeyError(name)
            if len(self.adapters) > 1:
                other = next(n for n in self.adapters if n != name)
                self.model.set_adapter(other)
                self.model.delete_adapter(name)
            else:
                self.model = self.model.unload()  # back to the plain base (the base weights were never merged)
                self.base = self.model
            del self.adapters[name]

    # -- tokens -----------------------------------------------------------------------------------------------
    def render_chat(self, messages: list[dict]) -> str:
        from orgtune.models.template import render

        return render(self.tok, messages, add_generation_prompt=True)

    def count(self, text: str) -> int:
        with self.tok_lock:
            return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode(self, prompts: list[str]):
        """A batch of prompts, left-padded to one length, as tensors."""
        with self.tok_lock:
            return self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    # -- generation (worker thread only) ------------------------------------------------------------------
    def run(self, batch: list[Job]) -> list[dict]:
        import contextlib

        import torch

        j0 = batch[0]
        device = next(self.base.parameters()).device
        enc = self.encode([j.prompt for j in batch]).to(device)
        gen = hf_generate_args(
            j0.settings(max(j.max_tokens for j in batch)), stop_ids=self.stop_ids, pad_id=self.tok.pad_token_id
        )
        streamer = _Streamer(self.tok, j0) if j0.on_text else None
        with self.lock:
            if j0.model == self.base_name:
                ctx = self.model.disable_adapter() if self.model is not self.base else contextlib.nullcontext()
            else:
                if j0.model not in self.adapters:
                    raise OrgtuneError(f"model {j0.model!r} was unloaded", fix="GET /v1/models lists what is served")
                self.model.set_adapter(j0.model)
                ctx = contextlib.nullcontext()
            with ctx, torch.inference_mode():
                out = self.model.generate(**enc, **gen, streamer=streamer)
        results = []
        width = enc["input_ids"].shape[1]
        for row, j in enumerate(batch):
            ids = out[row, width:].tolist()[: j.max_tokens]
            n = next((k for k, t in enumerate(ids) if t in self.stop_ids), None)
            finish = "stop" if n is not None else "length"
            n = len(ids) if n is None else n
            text = self.tok.decode(ids[:n], skip_special_tokens=True)
            scan = StopScanner(j.stop)
            scan.feed(text)
            if scan.hit:
                finish = "stop"
            if streamer is not None:
                streamer.flush()
            results.append(
                {
                    "text": scan.text,
                    "finish_reason": finish,
                    "completion_tokens": n,
                    "prompt_tokens": int(enc["attention_mask"][row].sum()),
                }
            )
        return results


class _Streamer:
    """transformers streamer: decodes the growing answer and hands new text to the job's callback."""

    def __init__(self, tok, job: Job):
        self.tok, self.job = tok, job
        self.ids: list[int] = []
        self.prompt_seen = False
        self.scan = StopScanner(job.stop)
        self.stopped = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        if self.stopped:
            return
        for t in value.reshape(-1).tolist():
            if len(self.ids) >= self.job.max_tokens:
                return
            self.ids.append(t)
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        piece = self.scan.feed(text)
        self.stopped = self.scan.hit
        if piece:
            self.job.on_text(piece)

    def end(self) -> None:
        pass

    def flush(self) -> None:
        piece = self.scan.finish()
        if piece and not self.stopped:
            self.job.on_text(piece)


class LlamaCppEngine(_Worker):
    kind = "gguf"

    def __init__(self, path: Path, *, tokenizer_from: str | None = None, n_ctx: int = 4096, name: str | None = None):
        from orgtune.generate.llama import open_llama

        self.path = Path(path)
        self.llm = open_llama(self.path, n_ctx=n_ctx, verbose=False, seed=0)
        self.base_name = name or self.path.stem
        self.adapters: dict[str, Path] = {}
        self.context = n_ctx
        self.tok = None
        if tokenizer_from:
            from orgtune.models.loading import load_tokenizer, resolve_source

            self.tok = load_tokenizer(resolve_source(tokenizer_from))
        self._template = self.llm.metadata.get("tokenizer.chat_template")
        if self._template:
            self.render_chat([{"role": "user", "content": "hi"}])  # a broken template fails at start
        self.stop_ids = gguf_stop_ids(self.llm, self.tok, self.render_chat if self._template else None)
        super().__init__(max_batch=1)

    def names(self) -> list[str]:
        return [self.base_name]

    def load_adapter(self, name, path):
        raise OrgtuneError("a GGUF server holds one model", fix="serve adapters with the HF backend (--model)")

    def unload_adapter(self, name):
        raise KeyError(name)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        if self.tok is not None:
            from orgtune.models.template import render

            return render(self.tok, messages, add_generation_prompt=add_generation_prompt)
        from jinja2.exceptions import SecurityError, TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        from orgtune.models.template import TEMPLATE_VARS, template_error

        if not self._template:
            raise OrgtuneError(f"{self.path}: no chat template embedded", fix="pass --tokenizer MODEL")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        bos = self.llm.detokenize([self.llm.token_bos()], special=True).decode() if self.llm.token_bos() >= 0 else ""
        eos = self.llm.detokenize([self.llm.token_eos()], special=True).decode()
        try:
            return env.from_string(self._template).render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos,
                eos_token=eos,
                **TEMPLATE_VARS,
            )
        except (SecurityError, TemplateSyntaxError) as e:
            line = f" line {e.lineno}" if getattr(e, "lineno", None) else ""
            raise template_error(f"{self.path}: tokenizer.chat_template{line}", e) from None

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def run(self, batch: list[Job]) -> list[dict]:
        (j,) = batch
        ids = self.llm.tokenize(j.prompt.encode(), add_bos=False, special=True)
        out: list[int] = []
        scan = StopScanner(j.stop)
        sent = ""
        for t in sample(self.llm, ids, self.stop_ids, j.settings(j.max_tokens)):
            out.append(t)
            text = self.llm.detokenize(out).decode("utf-8", errors="replace")
            if j.on_text and not text.endswith("\ufffd"):
                piece = scan.feed(text)
                sent += piece
                if piece:
                    j.on_text(piece)
            elif not j.on_text:
                scan.feed(text)
            if scan.hit:
                break
        finish = "stop" if scan.hit or len(out) < j.max_tokens else "length"
        text = self.llm.detokenize(out).decode("utf-8", errors="replace")
        scan.feed(text)
        if j.on_text:
            rest = scan.finish()
            if rest:
                j.on_text(rest)
        return [{"text": scan.text, "finish_reason": finish, "completion_tokens": len(out), "prompt_tokens": len(ids)}]


def _adapter_folder(path: Path) -> Path:
    """A run folder (its adapter/) or an adapter folder itself."""
    for cand in (path / "adapter", path):
        if (cand / "adapter_config.json").is_file():
            return cand
    raise OrgtuneError(
        f"{path}: no adapter here (adapter_config.json)",
        fix="pass a finished run folder made by `orgtune train`, or its adapter/ folder",
    )


def _check_same_base(adapter: Path, model_spec: str) -> None:
    """An adapter trained on another base would load silently and answer nonsense: refuse it."""
    from orgtune.models.loading import resolve_source
    from orgtune.train.runfolder import read_run

    if not (adapter.parent / "manifest.json").is_file():
        return
    try:
        trained_on = read_run(adapter.parent).base_model
    except OrgtuneError:
        return
    if resolve_source(trained_on).path.resolve() != resolve_source(model_spec).path.resolve():
        raise OrgtuneError(
            f"{adapter}: trained on {trained_on}, but this server's base is {model_spec}",
            fix=f"serve it with --model {trained_on}",
        )
