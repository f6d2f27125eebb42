"""Typed run configuration: model / lora / qlora / training (and dpo), as in the design notes' YAML.

Precedence, lowest first: built-in defaults < the model preset's defaults < `--config run.yaml` <
command-line flags. The resolved config is saved as `config.yaml` in the run folder and read back by
every later step.

    cfg = resolve_config(yaml_path=Path("run.yaml"), overrides={"training": {"learning_rate": 1e-4}})
    save_config(cfg, run_dir / "config.yaml")

The design notes' own file shape is accepted as is: a `huggingface:` section (`model_name`,
`max_seq_length`, `task_prefix_format`) stands for `model:`, and LoRA fields (`r`, `lora_alpha`,
`lora_dropout`, `target_modules`) inside `qlora:` are LoRA settings that also switch QLoRA on.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from orgtune.errors import OrgtuneError
from orgtune.models import ALL_LINEAR


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


class ModelSection(_Section):
    name: str = Field(
        "smollm2-135m",
        validation_alias=AliasChoices("name", "model_name"),
        description="Preset name, local Hugging Face folder, or hub id.",
    )
    max_seq_length: int = Field(512, gt=8, description="Tokens per example; longer rows are truncated.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto picks bf16/fp16 on CUDA, fp16 on MPS, fp32 on CPU."
    )
    task_prefix_format: str = Field(
        "[{TASK}] {instruction}", description="How document-built examples prefix their task."
    )


class LoraSection(_Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: float = Field(
        32,
        gt=0,
        validation_alias=AliasChoices("alpha", "lora_alpha"),
        description="LoRA scaling numerator (scale = alpha / r).",
    )
    dropout: float = Field(
        0.05,
        ge=0,
        lt=1,
        validation_alias=AliasChoices("dropout", "lora_dropout"),
        description="Dropout on the LoRA input.",
    )
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_LINEAR), description="Linear layers that get an adapter."
    )
    bias: Literal["none", "all", "lora_only"] = "none"
    task_type: Literal["CAUSAL_LM"] = "CAUSAL_LM"


class QloraSection(_Section):
    enabled: bool = Field(False, description="Load the base in 4 bit (bitsandbytes, CUDA only).")
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = Field(True, description="Quantize the quantization constants too.")
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


class TrainingSection(_Section):
    num_epochs: float = Field(3, gt=0, validation_alias=AliasChoices("num_epochs", "epochs", "num_train_epochs"))
    per_device_train_batch_size: int = Field(
        4, gt=0, validation_alias=AliasChoices("per_device_train_batch_size", "batch_size")
    )
    gradient_accumulation_steps: int = Field(1, gt=0)
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (overrides epochs) when > 0.")
    learning_rate: float = Field(2e-4, gt=0, validation_alias=AliasChoices("learning_rate", "lr"))
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    optim: str = Field("adamw_torch", description="Any transformers optimizer name; *_8bit ones need bitsandbytes.")
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA (fp16 where bf16 is missing), fp32 elsewhere."
    )
    padding_free: bool = Field(True, description="Concatenate rows with per-row position ids instead of padding.")
    logging_steps: int = Field(1, gt=0)
    save_steps: int = Field(50, gt=0, description="Checkpoint every N optimizer steps (and at each epoch end).")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept; the newest and the best are never deleted.")
    save_strategy: Literal["steps", "epoch", "no"] = Field(
        "steps",
        description="steps: a checkpoint every save_steps and at each epoch end; epoch or no: at each epoch "
        "end only (those, and one at the last step, are always written: a crash resumes there).",
    )
    evaluation_strategy: Literal["steps", "epoch", "no"] = Field(
        "epoch",
        validation_alias=AliasChoices("evaluation_strategy", "eval_strategy"),
        description="With validation data, compute its loss at each epoch end, at every checkpoint of "
        "save_strategy steps (every save_steps), or never.",
    )
    load_best_model_at_end: bool = Field(
        False,
        description=(
            "With validation data: ship the adapter of the checkpoint with the best metric_for_best_model instead "
            "of the last step's; the run manifest records which step shipped and its validation loss."
        ),
    )
    metric_for_best_model: Literal["eval_loss"] = Field(
        "eval_loss", description="What 'best' means: the validation loss (lower is better); 'loss' means the same."
    )
    seed: int = 42
    val_fraction: float = Field(
        0.0, ge=0, lt=1, description="Split this share of --data off as validation when no validation file is given."
    )
    general_replay: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "SFT only: the base model's own answers to bundled general prompts (self-distillation), added as this "
            "share of the training rows, so that the tuned model keeps the base's behaviour where the documents "
            "say nothing; 0 = off."
        ),
    )
    general_loss: Literal["sft", "kl"] = Field(
        "kl",
        description=(
            "How the general answers are learnt: sft mixes them into the training rows (cross-entropy on the base's "
            "greedy answer); kl adds, to every micro-batch, KL(base || tuned) on general_replay x batch-size of them "
            "(the base's whole next-token distribution, the base being the same weights with the adapter off)."
        ),
    )
    general_weight: float = Field(
        1.0,
        ge=0,
        description=(
            "kl only: the weight of the KL(base || tuned) term beside the documents' loss; higher holds the tuned "
            "model closer to the base on general text."
        ),
    )
    tensorboard: bool = False

    @model_validator(mode="before")
    @classmethod
    def _design_note_precision(cls, data: Any) -> Any:
        # The design notes write `fp16: true` / `bf16: true`; map them onto `precision`.
        if isinstance(data, dict):
            data = dict(data)
            for key in ("fp16", "bf16"):
                if data.pop(key, False) is True:
                    data["precision"] = key
            if data.get("metric_for_best_model") == "loss":  # transformers prefixes eval_ itself
                data["metric_for_best_model"] = "eval_loss"
        return data

    @model_validator(mode="after")
    def _best_needs_evaluations(self):
        if self.load_best_model_at_end and self.evaluation_strategy == "no":
            raise ValueError("load_best_model_at_end needs evaluations: set evaluation_strategy to epoch or steps")
        if self.load_best_model_at_end and self.evaluation_strategy == "steps" and self.save_strategy != "steps":
            raise ValueError(
                "load_best_model_at_end with evaluation_strategy steps needs save_strategy steps, "
                "so that every evaluated step has a checkpoint"
            )
        return self


DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


class DpoSection(_Section):
    """Used by `orgtune train --method dpo` only."""

    beta: float = Field(0.1, gt=0, description="How far the policy may move from the reference (higher: less).")
    loss_type: list[Literal[DPO_LOSSES]] = Field(
        default_factory=lambda: ["sigmoid", "sft"],
        min_length=1,
        description="TRL DPO loss(es), summed: sigmoid (DPO), ipo, hinge, robust, …; 'sft' adds the chosen "
        "answers' NLL, which keeps DPO from lowering the grounded answers' likelihood (RPO).",
    )
    loss_weights: list[float] | None = Field(None, description="One weight per loss type (default: all 1).")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="Robust DPO / EXO label smoothing.")
    replay: float | None = Field(
        None,
        ge=0,
        description="Weight of an NLL term on SFT rows replayed beside the "
        "pairs (one micro-batch of them per pair micro-batch); 0 = off; default 1 when the "
        "--init-adapter run's training file is at hand, else off.",
    )
    replay_data: str | None = Field(
        None, description="SFT rows to replay (default: the --init-adapter run's own training file)."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_loss(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("loss_type"), str):  # 'loss_type: ipo' or 'sigmoid,sft'
            data = {**data, "loss_type": [x.strip() for x in data["loss_type"].split(",") if x.strip()]}
        return data

    @model_validator(mode="after")
    def _weights_match(self):
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} values for {len(self.loss_type)} loss types")
        return self


class RunConfig(_Section):
    model: ModelSection = Field(default_factory=ModelSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    qlora: QloraSection = Field(default_factory=QloraSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    dpo: DpoSection = Field(default_factory=DpoSection)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


_LORA_KEYS_IN_QLORA = {"r", "lora_alpha", "alpha", "lora_dropout", "dropout", "target_modules", "bias", "task_type"}


def _normalise_design_note(raw: dict) -> dict:
    raw = copy.deepcopy(raw)
    if "huggingface" in raw:
        hf = raw.pop("huggingface") or {}
        raw["model"] = {**hf, **(raw.get("model") or {})}
    q = raw.get("qlora")
    if isinstance(q, dict) and _LORA_KEYS_IN_QLORA & q.keys():
        lora = raw.setdefault("lora", {}) or {}
        for key in list(q):
            if key in _LORA_KEYS_IN_QLORA:
                lora.setdefault(key, q.pop(key))
        raw["lora"] = lora
        q.setdefault("enabled", True)
    return raw


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        elif v is not None:
            out[k] = copy.deepcopy(v)
    return out


def _yaml_line(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at `loc` (a pydantic error location), or of its nearest parent."""
    node, line = root, None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == key:
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return line


def read_yaml(path: Path) -> tuple[dict, yaml.Node | None]:
    path = Path(path)
    if not path.is_file():
        raise OrgtuneError(f"{path}: config file not found", fix="pass an existing YAML file to --config")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise OrgtuneError(
            f"{where}: not valid YAML ({getattr(e, 'problem', e)})", fix="correct the YAML syntax at that line"
        ) from None
    if not isinstance(raw, dict):
        raise OrgtuneError(
            f"{path}:1: a run config must be a mapping with model/lora/qlora/training sections",
            fix="see `orgtune train --help` and the README for the shape",
        )
    return raw, node


def validate_config(raw: dict, *, source: str = "config", node: yaml.Node | None = None) -> RunConfig:
    try:
        return RunConfig.model_validate(_normalise_design_note(raw))
    except ValidationError as e:
        details = []
        for err in e.errors():
            loc = tuple(str(x) for x in err["loc"])
            line = _yaml_line(node, loc) if node is not None else None
            where = f"{source}:{line}" if line else source
            details.append(f"{where}: {'.'.join(loc)}: {err['msg']}")
        raise OrgtuneError(
            f"{source}: invalid run config",
            details=details,
            fix="correct the listed keys (sections: model, lora, qlora, training, dpo)",
        ) from None


def resolve_config(
    *, yaml_path: Path | None = None, overrides: dict | None = None, base: dict | None = None
) -> RunConfig:
    """Merge defaults < preset defaults < YAML < overrides (flags), validate, and return the config.

    `base` replaces the built-in defaults (used to continue from a parent run's config).
    """
    from orgtune.models.presets import find_preset  # local: presets import nothing from here

    layers: list[tuple[dict, str, yaml.Node | None]] = []
    if yaml_path is not None:
        raw, node = read_yaml(yaml_path)
        layers.append((_normalise_design_note(raw), str(yaml_path), node))
    if overrides:
        layers.append((overrides, "command-line flags", None))
    merged = copy.deepcopy(base) if base else {}
    for layer, _, _ in layers:
        merged = deep_merge(merged, layer)
    name = (
        (merged.get("model") or {}).get("name") or (merged.get("model") or {}).get("model_name") or ModelSection().name
    )
    preset = find_preset(name)
    full = deep_merge(preset.defaults if preset and not base else {}, merged)
    # Validate each user layer on its own first, so an error names the file and line it came from.
    for layer, source, node in layers:
        validate_config(deep_merge(full, layer), source=source, node=node)
    return validate_config(full)


def save_config(cfg: RunConfig, path: Path) -> None:
    from orgtune import atomic

    atomic.write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def load_config(path: Path) -> RunConfig:
    raw, node = read_yaml(path)
    return validate_config(raw, source=str(path), node=node)
