"""Merge a run's LoRA adapter into a full-precision copy of its base and check that nothing moved.

The merged folder is what every later export step starts from: safetensors weights, config, tokenizer and
the chat template, so `AutoModelForCausalLM.from_pretrained(merged)` answers exactly like base + adapter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError

# Fixed inputs for the merged-vs-adapter check: a user turn and an assistant turn through the chat template.
CHECK_CONVERSATIONS = [
    [{"role": "user", "content": "What is the operating pressure?"}],
    [
        {"role": "user", "content": "List the steps to descale the machine."},
        {"role": "assistant", "content": "1. Empty the tank. 2. Add descaler. 3. Run the cycle."},
    ],
    [{"role": "user", "content": "Write one sentence about the weather in Paris."}],
]
# Largest allowed |logit difference| between merged and base + adapter, relative to the logits' own scale.
# fp32 merges differ only by summation order (observed ~1e-5 of the logit range); 16-bit merges round
# every merged weight once, which moves logits by up to about 1% of their range.
TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 2e-2}


def merge_dtype(run_dtype: str, device: str) -> str:
    """The dtype to merge in: fp32 on CPU, the run's 16-bit dtype (bf16 by default) on accelerators."""
    if device == "cpu":
        return "float32"
    return run_dtype if run_dtype in ("bfloat16", "float16", "float32") else "bfloat16"


def refuse_quantized(model) -> None:
    """A 4-bit base cannot take a merged adapter without a lossy requantization: say so and what to do."""
    if (
        getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
        or getattr(getattr(model, "config", None), "quantization_config", None) is not None
    ):
        raise OrgtuneError(
            "cannot merge a LoRA adapter into a quantized (4/8-bit) base: the merged weights would be rounded "
            "back to 4 bit and lose what the adapter learned",
            fix="orgtune export reloads the base in 16 bit for the merge (the default; QLoRA runs included); "
            "or ship the adapter alone with --keep-adapter",
        )


def merge_run(run, out: Path, *, device: str = "cpu", log=print) -> dict:
    """Write `out` (merged model folder, built atomically) and return the verification figures."""
    import torch
    from peft import PeftModel

    from orgtune.models.loading import load_model

    dtype = merge_dtype(run.config.model.dtype, device)
    if run.config.qlora.enabled:
        log(f"the run trained on a 4-bit base (QLoRA); merging into a {dtype} reload of {run.base_model}")
    base, tok, info = load_model(run.base_model, device=device, dtype=dtype)
    refuse_quantized(base)
    peft_model = PeftModel.from_pretrained(base, run.adapter_dir)
    peft_model.eval()
    batch = _check_batch(tok, device)
    with torch.inference_mode():
        reference = peft_model(**batch).logits.float()
    merged = peft_model.merge_and_unload()
    merged.eval()
    with torch.inference_mode():
        got = merged(**batch).logits.float()
    mask = batch["attention_mask"].bool()
    diff = (got - reference).abs()[mask].max().item()
    scale = (reference[mask].max() - reference[mask].min()).item()
    rel = diff / scale if scale else diff
    tol = TOLERANCE[dtype]
    figures = {
        "dtype": dtype,
        "max_abs_logit_diff": diff,
        "logit_range": scale,
        "relative_diff": rel,
        "tolerance": tol,
        "tokens_checked": int(mask.sum()),
    }
    if rel > tol:
        raise OrgtuneError(
            f"merged model disagrees with base + adapter: max |Δlogit| {diff:.3g} "
            f"({rel:.2%} of the logit range, limit {tol:.2%})",
            fix="report this: the adapter may target modules PEFT cannot merge; use --keep-adapter",
        )
    with atomic.building_folder(Path(out), replace=True) as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        tok.save_pretrained(staging)
        _ensure_chat_template(tok, staging)
        atomic.write_json(
            staging / "orgtune_merge.json",
            {
                "run": str(run.path.resolve()),
                "base_model": run.base_model,
                "adapter_sha256": run.manifest.get("adapter_sha256"),
                **figures,
            },
        )
    log(f"merged → {out} ({dtype}; max |Δlogit| vs base + adapter {diff:.2e}, {rel:.1e} of range)")
    return figures


def copy_adapter(run, out: Path) -> Path:
    """The adapter alone (safetensors + adapter_config.json) with the tokenizer files, for run-time switching."""
    from orgtune.models.loading import load_tokenizer, resolve_source

    with atomic.building_folder(Path(out), replace=True) as staging:
        for f in run.adapter_dir.iterdir():
            if f.is_file() and f.name != atomic.COMPLETE_MARKER:
                shutil.copy2(f, staging / f.name)
        tok = load_tokenizer(resolve_source(run.base_model))
        tok.save_pretrained(staging)
        _ensure_chat_template(tok, staging)
    return Path(out)


def _check_batch(tok, device: str) -> dict:
    from orgtune.models.template import render

    texts = [render(tok, c, add_generation_prompt=c[-1]["role"] == "user") for c in CHECK_CONVERSATIONS]
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    return {k: v.to(device) for k, v in enc.items()}


def _ensure_chat_template(tok, folder: Path) -> None:
    """transformers 5 writes chat_template.jinja itself; older tokenizers kept it in tokenizer_config.json."""
    if not (folder / "chat_template.jinja").is_file() and isinstance(tok.chat_template, str):
        (folder / "chat_template.jinja").write_text(tok.chat_template, encoding="utf-8")
