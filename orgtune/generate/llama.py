"""llama.cpp, the answering side: open a GGUF file (or say plainly why it cannot be opened), the token
loop every llama.cpp caller uses, and LlamaCppBackend, which answers and scores like HFBackend.

    LlamaCppBackend(path, tok)      # answers and perplexity through llama.cpp, prompts by the HF template
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from orgtune.errors import OrgtuneError
from orgtune.generate.settings import GenerationSettings
from orgtune.generate.stops import gguf_stop_ids
from orgtune.home import cpu_threads

LLAMA_CPP_INSTALL = (
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' pip install --no-cache-dir 'orgtune[gguf]'  "
    "(builds llama-cpp-python from source once, ~11 min on 2 cores; not native: its AMX kernels crash)"
)

_LOG: list[str] = []  # llama.cpp's warnings (e.g. k-quant fallbacks), kept for the report instead of the terminal
_log_callback = None


def llama_cpp():
    global _log_callback
    try:
        import llama_cpp
    except ImportError:
        raise OrgtuneError(
            "llama.cpp bindings (llama-cpp-python) are not installed; they quantize to k-types and verify every GGUF",
            fix=LLAMA_CPP_INSTALL,
        ) from None
    if _log_callback is None:
        import ctypes

        @llama_cpp.llama_log_callback
        def _keep_warnings(level, text, user_data):
            if level in (3, 4) and text:  # ggml's WARN and ERROR levels; INFO/DEBUG are dropped
                _LOG.append(text.decode("utf-8", errors="replace").rstrip())

        _log_callback = _keep_warnings
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return llama_cpp


def take_log() -> list[str]:
    out = [x for x in _LOG if x]
    _LOG.clear()
    return out


def open_llama(path: Path, **kwargs):
    """`llama_cpp.Llama` on a GGUF file, or an error naming the file when it is not one llama.cpp can load
    (truncated, another format, random bytes): llama.cpp itself only says "Failed to load model"."""
    lc = llama_cpp()
    path = Path(path)
    if not path.is_file():
        raise OrgtuneError(f"{path}: no such GGUF file", fix="pass a file written by `orgtune export`")
    with open(path, "rb") as f:
        head = f.read(8)
    fix = "export it again (`orgtune export RUN_DIR --gguf TYPE`) or copy it again in full"
    if head[:4] != b"GGUF":
        raise OrgtuneError(f"{path}: not a GGUF file (it starts with {head[:4]!r}, not b'GGUF')", fix=fix)
    version = int.from_bytes(head[4:8], "little") if len(head) == 8 else None
    if version not in (2, 3):
        raise OrgtuneError(f"{path}: GGUF version {version} is not one llama.cpp reads (2 or 3)", fix=fix)
    take_log()
    try:
        return lc.Llama(model_path=str(path), **kwargs)
    except (ValueError, RuntimeError, OSError, IndexError) as e:
        why = "; ".join(take_log()[-3:]) or str(e)
        raise OrgtuneError(
            f"{path}: llama.cpp cannot load this GGUF file ({why})", fix=f"the file is damaged or cut short: {fix}"
        ) from None


def sample(llm, prompt_ids: list[int], stop_ids: list[int], s: GenerationSettings) -> Iterator[int]:
    """Token ids generated after the prompt, up to a stop id (not yielded) or s.max_new_tokens: greedy at
    temperature 0, else nucleus sampling; no repetition penalty (the HF side has none)."""
    if s.max_new_tokens <= 0:
        return
    n = 0
    for t in llm.generate(
        prompt_ids,
        temp=0.0 if s.greedy else s.temperature,
        top_k=1 if s.greedy else 0,
        top_p=1.0 if s.greedy else s.top_p,
        min_p=0.0,
        repeat_penalty=1.0,
        reset=True,
    ):
        if t in stop_ids:
            return
        yield t
        n += 1
        if n >= s.max_new_tokens:
            return


class LlamaCppBackend:
    """Answers through llama.cpp from a GGUF file. Prompts are rendered by the HF tokenizer's chat template
    (the one training used) and tokenized by llama.cpp; `check_tokenizer` proves both tokenizers agree."""

    def __init__(
        self,
        path: Path,
        tok,
        *,
        name: str | None = None,
        settings: GenerationSettings | None = None,
        n_ctx: int = 2048,
        threads: int | None = None,
    ):
        self.path, self.tok = Path(path), tok
        self.name = name or f"gguf:{self.path.stem}"
        self.settings = settings or GenerationSettings()
        self.llm = open_llama(
            path, n_ctx=n_ctx, n_threads=threads or cpu_threads(), n_batch=512, logits_all=True, verbose=False, seed=0
        )
        self.stop_ids = gguf_stop_ids(self.llm, tok)

    def close(self) -> None:
        self.llm.close()

    def tokens(self, text: str) -> list[int]:
        # The rendered prompt already holds whatever BOS text the chat template writes (training tokenized
        # it the same way), so llama.cpp must not add another.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def check_tokenizer(self, texts: list[str]) -> int:
        """How many texts tokenize to exactly the HF tokenizer's ids."""
        return sum(self.tokens(t) == self.tok(t, add_special_tokens=False)["input_ids"] for t in texts)

    def generate(self, prompt: str, settings: GenerationSettings) -> tuple[str, bool]:
        """The continuation of a rendered prompt and whether it ended on a stop token (not the token budget)."""
        out = list(sample(self.llm, self.tokens(prompt), self.stop_ids, settings))
        text = self.llm.detokenize(out, special=False).decode("utf-8", errors="replace")
        return text.strip(), len(out) < settings.max_new_tokens

    def answer(self, conversations: list[list[dict]], settings: GenerationSettings | None = None) -> list[str]:
        from orgtune.models.template import render

        s = settings or self.settings
        return [self.generate(render(self.tok, c, add_generation_prompt=True), s)[0] for c in conversations]

    def assistant_loss(self, rows: list[dict], *, max_len: int) -> tuple[float, float, int]:
        """Cross-entropy per assistant token computed from llama.cpp's logits (same tokens as the HF figure)."""
        import numpy as np

        from orgtune.data.formats import Row
        from orgtune.data.tokenize import IGNORE, encode_rows

        enc = encode_rows(
            self.tok, [Row(line=i, messages=r["messages"], raw=r) for i, r in enumerate(rows, 1)], max_len=max_len
        )
        total, n = 0.0, 0
        for r in enc.rows:
            ids = list(r.input_ids)
            self.llm.reset()
            self.llm.eval(ids)
            logits = np.asarray(self.llm.scores[: len(ids) - 1], dtype=np.float64)
            labels = np.asarray(r.labels[1:])
            keep = labels != IGNORE
            lg = logits[keep]
            lg = lg - lg.max(axis=1, keepdims=True)
            logp = lg[np.arange(len(lg)), labels[keep]] - np.log(np.exp(lg).sum(axis=1))
            total -= float(logp.sum())
            n += int(keep.sum())
        mean = total / n if n else float("nan")
        return mean, math.exp(mean) if n else float("nan"), n
