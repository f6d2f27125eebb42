"""The pieces every recipe (SFT, DPO) builds its trainer from: TrainingArguments fields from a config,
the policy model (base, 4-bit under QLoRA, with the parent's adapter or a new LoRA), callbacks, device."""

from __future__ import annotations

from pathlib import Path

from orgtune.config import RunConfig
from orgtune.train import distributed
from orgtune.train.checkpoints import SaveAtEpochEnd
from orgtune.train.metrics import MetricsLog, QuietProgress
from orgtune.train.runfolder import Prepared


def trainer_args(cfg: RunConfig, output_dir: Path, *, device: str, has_eval: bool, strategy: str | None = None) -> dict:
    """The TrainingArguments fields SFT and DPO share, from a config (and, under torchrun, the strategy's)."""
    t = cfg.training
    precision = resolve_precision(t.precision, device)
    extra = distributed.strategy_args(strategy) if distributed.active() else {}
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        seed=t.seed,
        logging_steps=t.logging_steps,
        save_strategy=t.save_strategy,  # epoch ends and the last step are saved whatever it says (SaveAtEpochEnd)
        save_steps=t.save_steps,
        save_total_limit=None,  # rotation is ours (OrgtuneSFTTrainer.keep_checkpoints)
        eval_strategy=t.evaluation_strategy if has_eval else "no",
        eval_steps=t.save_steps if has_eval and t.evaluation_strategy == "steps" else None,  # each checkpoint's
        metric_for_best_model=t.metric_for_best_model if has_eval else None,
        greater_is_better=False if has_eval else None,
        load_best_model_at_end=False,  # ours picks from orgtune's checkpoints (trainer.ship_best) and records it
        report_to="none",
        dataset_num_proc=None,
        dataloader_num_workers=0,
        **extra,
    )


def resolve_precision(requested: str, device: str) -> str:
    """auto: bf16 on CUDA (fp16 where bf16 is missing), fp32 elsewhere. Measured here: bf16 autocast on a
    2-core CPU with AVX512-BF16 (no AMX) trained the demo no faster than fp32 (956 s vs 895 s), so the
    CPU keeps exact fp32."""
    import torch

    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def rank_device(device: str) -> str:
    """This rank's GPU under torchrun (`cuda` → `cuda:LOCAL_RANK`); other devices as they are."""
    import os

    if distributed.active() and device == "cuda":
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def load_policy(p: Prepared, cfg: RunConfig, device: str):
    """The base model (4-bit under QLoRA) with the parent's adapter made trainable, or bare (a new
    adapter comes from `lora_config`). Returns (model, tok, info, peft_config)."""
    from orgtune.models.loading import load_model

    model, tok, info = load_model(
        cfg.model.name, device=device, dtype=cfg.model.dtype, quantization_config=_bnb_config(cfg)
    )
    model.config.use_cache = False  # no KV cache while training; lets packed rows get a block-diagonal mask
    peft_config = None
    if p.parent is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, p.parent.adapter_dir, is_trainable=True)
    else:
        peft_config = lora_config(cfg)
    if cfg.qlora.enabled:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.training.gradient_checkpointing)
    return model, tok, info, peft_config


def callbacks_for(run_dir: Path, cfg: RunConfig, extra: list | None = None) -> list:
    callbacks = [SaveAtEpochEnd(), MetricsLog(run_dir / "metrics.jsonl"), *(extra or [])]
    if cfg.training.tensorboard and distributed.is_main():
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(str(run_dir / "tensorboard"))))
    return callbacks


def quiet_progress(trainer) -> None:
    from transformers.trainer_callback import ProgressCallback

    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress())


def lora_config(cfg: RunConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        bias=cfg.lora.bias,
        task_type=cfg.lora.task_type,
    )


def _bnb_config(cfg: RunConfig):
    if not cfg.qlora.enabled:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.qlora.quant_type,
        bnb_4bit_use_double_quant=cfg.qlora.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, cfg.qlora.compute_dtype),
    )
