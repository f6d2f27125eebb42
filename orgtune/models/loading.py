"""Load a model and its tokenizer from a preset, a local Hugging Face folder, or a hub id.

    model, tok, info = load_model("smollm2-135m")            # embedded: offline, CPU is fine
    model, tok, info = load_model("/data/my-merged-model")   # any local HF folder (safetensors)
    model, tok, info = load_model("Qwen/Qwen2.5-3B-Instruct")# through the normal HF cache

Weights load only from safetensors; `trust_remote_code` is always off. Device and dtype default to
the best available (cuda bf16/fp16 → mps fp16 → cpu fp32) and can be set explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orgtune.errors import OrgtuneError
from orgtune.models.embedded import ensure_embedded_cached
from orgtune.models.presets import all_presets, find_preset, offline_presets

# Files a model folder needs; never *.bin/*.pt (pickles).
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt", "*.tiktoken"]


@dataclass
class ModelSource:
    """Where a model spec resolved to."""

    spec: str
    path: Path
    kind: str  # "embedded" | "folder" | "hub"
    preset: str | None = None


def resolve_source(spec: str) -> ModelSource:
    """Turn MODEL (preset name, folder, or hub id) into a local folder, or raise a clear error."""
    preset = find_preset(spec)
    if preset is not None and preset.embedded:
        return ModelSource(spec, ensure_embedded_cached(preset), "embedded", preset.name)
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise OrgtuneError(
                f"{local}: not a model folder (no config.json)",
                fix="pass a folder saved by save_pretrained, a preset (`orgtune models`), or a hub id",
            )
        _refuse_custom_code(local)
        return ModelSource(spec, local.resolve(), "folder", preset.name if preset else None)
    hub_id = preset.hub_id if preset else spec
    if preset is None and (spec.startswith((".", "/", "~")) or spec.count("/") != 1):
        raise OrgtuneError(
            f"model {spec!r} is neither a preset, an existing folder, nor a hub id (owner/name)",
            fix=f"use one of the presets ({', '.join(all_presets())}) or a valid path",
        )
    path = _from_hub_cache(hub_id)
    _refuse_custom_code(path)
    return ModelSource(spec, path, "hub", preset.name if preset else None)


def _refuse_custom_code(folder: Path, e: Exception | None = None) -> None:
    """A model whose architecture exists only as its own Python code (config.json `auto_map`, what
    `trust_remote_code=True` would run): orgtune never runs it, so say so before transformers does."""
    config = folder / "config.json"
    if e is None:
        import json

        try:
            cfg = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # transformers reports an unreadable config itself
        if not (isinstance(cfg, dict) and cfg.get("auto_map")):
            return
        from transformers import CONFIG_MAPPING

        if cfg.get("model_type") in CONFIG_MAPPING:
            return  # transformers has the architecture; the custom code is not needed
    elif "trust_remote_code" not in str(e):
        return
    raise OrgtuneError(
        f"{config}: this model needs its own Python code (auto_map: custom architecture), "
        "which orgtune never runs (trust_remote_code is off)",
        fix="use a model whose architecture transformers ships (see `orgtune models`), or one "
        "converted to such an architecture",
    )


def _from_hub_cache(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=True, allow_patterns=_HUB_PATTERNS))
    except Exception:  # noqa: BLE001 - any miss in the cache falls through to the download attempt
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline:
        try:
            return Path(snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS))
        except Exception as e:  # noqa: BLE001 - network, auth and not-found all end in the same advice
            reason = f"download failed: {type(e).__name__}"
        else:  # pragma: no cover
            reason = ""
    else:
        reason = "HF_HUB_OFFLINE is set"
    raise OrgtuneError(
        f"model {hub_id!r} is not in the Hugging Face cache and cannot be downloaded ({reason})",
        fix=f"download it on a connected machine (`hf download {hub_id}`) and copy the cache, pass a local "
        f"folder, or use a preset that works offline: {', '.join(offline_presets())}",
    )


def weights_stamp(folder: Path) -> str:
    """A short key that changes when a model folder's weights do (path, names, sizes, mtimes): for caches of
    what a base model answers."""
    import hashlib
    import json

    folder = Path(folder).resolve()
    stamp = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(folder.glob("*.safetensors"))]
    return hashlib.sha256(json.dumps([str(folder), stamp]).encode()).hexdigest()[:16]


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise OrgtuneError(
                f"device {requested!r} requested but no CUDA GPU is visible",
                fix="drop --device (auto picks what exists) or run on a GPU machine",
            )
        if requested == "mps" and not torch.backends.mps.is_available():
            raise OrgtuneError("device 'mps' requested but Apple MPS is not available", fix="use --device cpu")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str = "auto"):
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    from orgtune.models.template import render

    try:
        tok = AutoTokenizer.from_pretrained(source.path, trust_remote_code=False)
    except ValueError as e:
        _refuse_custom_code(source.path, e)
        raise
    if not tok.chat_template:
        raise OrgtuneError(
            f"{source.path}: the tokenizer has no chat template",
            fix="use an instruct model (its tokenizer_config.json or chat_template.jinja carries one)",
        )
    render(tok, [{"role": "user", "content": "hi"}], add_generation_prompt=True)  # a broken template fails here
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: str, *, device: str = "auto", dtype: str = "auto", quantization_config=None):
    """Load (model, tokenizer, info) for MODEL; `info` records where it came from, device and dtype."""
    from transformers import AutoModelForCausalLM

    source = resolve_source(spec)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dev, dtype)
    tok = load_tokenizer(source)
    kwargs = dict(dtype=torch_dtype, use_safetensors=True, trust_remote_code=False)
    if quantization_config is not None:
        kwargs.update(quantization_config=quantization_config, device_map={"": dev})
    try:
        model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    except OSError as e:
        raise OrgtuneError(
            f"{source.path}: cannot load model weights ({e})",
            fix="the folder needs config.json and *.safetensors weights (pickled .bin files are refused)",
        ) from None
    except ValueError as e:
        _refuse_custom_code(source.path, e)
        raise
    if quantization_config is None:
        model.to(dev)
    info = {
        "spec": spec,
        "path": str(source.path),
        "kind": source.kind,
        "preset": source.preset,
        "device": dev,
        "dtype": str(torch_dtype).removeprefix("torch."),
    }
    return model, tok, info
