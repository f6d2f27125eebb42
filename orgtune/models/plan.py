"""Size a LoRA run before any weight is loaded: parameters, adapter size, and a training-memory estimate.

    orgtune plan qwen2.5-3b --lora-targets q_proj,k_proj,v_proj,o_proj
    p = plan_run("qwen2.5-coder-7b", lora_r=16)   # works on a laptop: the model is built on the meta device

Counts come from PEFT itself, applied to the architecture instantiated on the `meta` device, so they
are what `print_trainable_parameters()` would say on the real model. Memory is an estimate with its
terms shown (weights, adapter, gradients, optimizer, activations, logits, runtime).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from orgtune.errors import OrgtuneError

GiB = 1024**3
# nf4 stores 4 bits per weight plus one absmax per 64-weight block: fp32 (0.5 bit/weight) or, with
# double quantization, 8 bit per block plus an fp32 per 256 blocks (0.127 bit/weight).
NF4_BITS = {True: 4 + 8 / 64 + 32 / (64 * 256), False: 4 + 32 / 64}
RUNTIME_OVERHEAD = int(0.75 * GiB)  # CUDA context, allocator slack, kernels (measured ranges 0.5-1 GiB)


@dataclass
class MemoryEstimate:
    weights: int
    adapter: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    runtime: int

    @property
    def total(self) -> int:
        return sum(asdict(self).values())


@dataclass
class Plan:
    model: str
    architecture: str
    total_params: int
    trainable_params: int
    lora_r: int
    lora_targets: list[str]
    adapter_bytes_fp16: int
    adapter_bytes_fp32: int
    batch_size: int
    seq_len: int
    gradient_checkpointing: bool
    memory: dict[str, MemoryEstimate] = field(default_factory=dict)

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_params / self.total_params

    def to_dict(self) -> dict:
        d = asdict(self)
        d["trainable_percent"] = self.trainable_percent
        for k, m in self.memory.items():
            d["memory"][k]["total"] = m.total
        return d

    def render(self) -> str:
        lines = [
            f"model              {self.model} ({self.architecture})",
            f"total parameters   {self.total_params:,}",
            f"LoRA               r={self.lora_r} on {','.join(self.lora_targets)}",
            f"trainable          {self.trainable_params:,} ({self.trainable_percent:.4f}%)",
            f"adapter on disk    {_mb(self.adapter_bytes_fp16)} fp16 / {_mb(self.adapter_bytes_fp32)} fp32",
            f"memory estimate    batch {self.batch_size} x {self.seq_len} tokens, gradient checkpointing "
            f"{'on' if self.gradient_checkpointing else 'off'}",
        ]
        cols = ["weights", "adapter", "gradients", "optimizer", "activations", "logits", "runtime"]
        lines.append("  " + "mode".ljust(22) + "".join(c.rjust(12) for c in cols) + "total".rjust(12))
        for mode, m in self.memory.items():
            d = asdict(m)
            lines.append("  " + mode.ljust(22) + "".join(_gb(d[c]).rjust(12) for c in cols) + _gb(m.total).rjust(12))
        lines.append("  (estimate: activations assume SDPA/flash attention; real use varies by roughly 20%)")
        return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _gb(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def architecture_config(spec: str):
    """The transformers config for MODEL without loading weights (preset JSON, folder, or cached hub id)."""
    from orgtune.models.loading import resolve_source
    from orgtune.models.presets import find_preset

    preset = find_preset(spec)
    if preset is not None:
        return preset.hf_config()
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(resolve_source(spec).path, trust_remote_code=False)


def meta_model(config):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_lora(config, lora_r: int, targets: list[str], lora_alpha: float = 32) -> tuple[int, int, dict[str, int]]:
    """(total params, trainable params, bytes of the adapter's safetensors header) computed by PEFT on meta."""
    from peft import LoraConfig, get_peft_model

    model = meta_model(config)
    total = sum(p.numel() for p in model.parameters())
    linear_names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
    missing = [t for t in targets if t not in linear_names]
    if missing:
        raise OrgtuneError(
            f"LoRA target(s) {', '.join(missing)} not found in {config.model_type}",
            fix=f"choose from the model's linear layers: {', '.join(linear_names)}",
        )
    peft_model = get_peft_model(
        model, LoraConfig(r=lora_r, lora_alpha=lora_alpha, target_modules=targets, task_type="CAUSAL_LM")
    )
    trainable, _ = peft_model.get_nb_trainable_parameters()
    shapes = {n: list(p.shape) for n, p in peft_model.named_parameters() if p.requires_grad}
    return total, trainable, shapes


def safetensors_size(shapes: dict[str, list[int]], bytes_per_value: int) -> int:
    """Exact size of a safetensors file holding these tensors (header JSON + 8-byte length + data)."""
    dtype = {2: "F16", 4: "F32"}[bytes_per_value]
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    # PEFT saves adapter keys without the adapter name ("lora_A.default.weight" -> "lora_A.weight").
    for name, shape in sorted(shapes.items()):
        n = 1
        for s in shape:
            n *= s
        header[name.replace(".default", "")] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + n * bytes_per_value],
        }
        offset += n * bytes_per_value
    text = json.dumps(header, separators=(",", ":"))
    return 8 + len(text) + (-len(text)) % 8 + offset


def _activation_bytes(config, targets: list[str], tokens: int, checkpointing: bool, bytes_per_act: int) -> int:
    h = config.hidden_size
    inter = config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = getattr(config, "num_key_value_heads", heads) * head_dim
    layers = config.num_hidden_layers
    # Saved for backward per token in one decoder layer: norm inputs/outputs and residuals (~6h),
    # q, k, v and the attention output (q + 2kv + q), the MLP's gate, up, activation and product (4I);
    # each LoRA target also keeps its (dropped-out) input.
    q = heads * head_dim
    per_layer = 6 * h + 2 * q + 2 * kv + 4 * inter
    lora_inputs = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": q, "gate_proj": h, "up_proj": h, "down_proj": inter}
    per_layer += sum(lora_inputs.get(t, h) for t in targets)
    per_layer_bytes = per_layer * bytes_per_act * tokens
    if checkpointing:
        return layers * h * bytes_per_act * tokens + per_layer_bytes
    return layers * per_layer_bytes


def plan_run(
    spec: str,
    *,
    lora_r: int = 16,
    lora_alpha: float = 32,
    lora_targets: list[str] | None = None,
    batch_size: int = 4,
    seq_len: int = 512,
    gradient_checkpointing: bool = False,
    optim: str = "adamw_torch",
) -> Plan:
    """Count parameters with PEFT on the meta device and estimate training memory for LoRA-16 and QLoRA-4."""
    from orgtune.models import ALL_LINEAR
    from orgtune.models.presets import find_preset

    config = architecture_config(spec)
    preset = find_preset(spec)
    # What `orgtune train` would adapt: the preset's default targets, else every linear projection.
    targets = list(lora_targets or (preset and preset.defaults.get("lora", {}).get("target_modules")) or ALL_LINEAR)
    total, trainable, shapes = count_lora(config, lora_r, targets, lora_alpha)
    tokens = batch_size * seq_len
    vocab = config.vocab_size

    # Parameters inside the decoder layers' linear projections are what bitsandbytes quantizes; the
    # embeddings, norms and the LM head stay in 16 bit.
    model = meta_model(config)
    linear_in_layers = sum(
        m.weight.numel() for n, m in model.named_modules() if type(m).__name__ == "Linear" and ".layers." in n
    )
    adam_bytes = 2 if "8bit" in optim else 8
    memory = {}
    for mode, weight_bytes in (
        ("lora (16-bit base)", total * 2),
        ("qlora (4-bit nf4 base)", int(linear_in_layers * NF4_BITS[True] / 8) + (total - linear_in_layers) * 2),
    ):
        memory[mode] = MemoryEstimate(
            weights=weight_bytes,
            adapter=trainable * 4,
            gradients=trainable * 4,
            optimizer=trainable * adam_bytes,
            activations=_activation_bytes(config, targets, tokens, gradient_checkpointing, 2),
            logits=tokens * vocab * 4,
            runtime=RUNTIME_OVERHEAD,
        )
    return Plan(
        model=spec,
        architecture=config.architectures[0] if config.architectures else config.model_type,
        total_params=total,
        trainable_params=trainable,
        lora_r=lora_r,
        lora_targets=targets,
        adapter_bytes_fp16=safetensors_size(shapes, 2),
        adapter_bytes_fp32=safetensors_size(shapes, 4),
        batch_size=batch_size,
        seq_len=seq_len,
        gradient_checkpointing=gradient_checkpointing,
        memory=memory,
    )
