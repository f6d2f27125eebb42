"""LoRA / QLoRA supervised fine-tuning through TRL's SFTTrainer and PEFT, crash-safe and resumable.

    orgtune train --data data/train.jsonl --model smollm2-135m --out runs/first
    orgtune train --data nightly.jsonl --init-adapter runs/first --out runs/nightly-1 --epochs 1 --lr 1e-4

Everything the user can get wrong (data rows, config keys, missing bitsandbytes, a run folder that
holds another run) is checked before a model is loaded or the run folder is created. Re-running the
same command after a crash resumes from the last complete checkpoint; a finished run is left alone.
The run folder is locked while a run trains in it: a second command on the same folder fails at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orgtune import atomic
from orgtune.config import RunConfig, resolve_config, save_config
from orgtune.data.formats import load_rows
from orgtune.data.tokenize import EncodedSet, encode_rows
from orgtune.errors import OrgtuneError
from orgtune.train import distributed, lock, runfolder
from orgtune.train.checkpoints import SaveAtEpochEnd, last_checkpoint
from orgtune.train.metrics import MetricsLog, QuietProgress, truncate_metrics
from orgtune.train.trainer import OrgtuneSFTTrainer, ship_best

SFT_FORMATS = ("chat", "alpaca", "sharegpt", "prompt_completion")


@dataclass
class Prepared:
    """Everything checked and decided before the model loads."""

    cfg: RunConfig
    out: Path
    train_path: Path
    val_path: Path | None
    data_hashes: dict[str, str]
    parent: runfolder.Run | None
    fingerprint: str
    resuming: bool
    strategy: str | None = None  # under torchrun / --launch: ddp, zero2, zero3, fsdp2 or a JSON file (distributed.py)


def resolve_data(data: Path, val: Path | None, *, sibling_val: bool = False) -> tuple[Path, Path | None]:
    """--data is a JSONL file or a folder with train.jsonl (and val.jsonl, used unless --val is given);
    with `sibling_val`, X.jsonl's validation file X.val.jsonl is used too (preference files)."""
    data, val = Path(data), Path(val) if val is not None else None
    if sibling_val and data.is_file() and val is None and data.with_name(data.stem + ".val.jsonl").is_file():
        return data, data.with_name(data.stem + ".val.jsonl")
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise OrgtuneError(f"{data}: folder has no train.jsonl", fix="pass a JSONL file or a folder made by `orgtune data build`")
        if val is None and (data / "val.jsonl").is_file():
            val = data / "val.jsonl"
        return train, val
    if not data.is_file():
        raise OrgtuneError(f"{data}: training data not found", fix="pass an existing JSONL file or data folder to --data")
    return data, val


def prepare(data: Path, out: Path, *, config_path: Path | None = None, overrides: dict | None = None,
            val: Path | None = None, resume: bool = False, init_adapter: Path | None = None,
            formats: tuple[str, ...] = SFT_FORMATS, more_files=None, strategy: str | None = None) -> Prepared:
    """Check everything before the model loads. `more_files(cfg, parent)` names further input files
    (checked by the caller) whose contents join the run's fingerprint. `strategy` is checked here too."""
    overrides = dict(overrides or {})
    parent = runfolder.read_complete_run(init_adapter) if init_adapter else None
    if parent is not None:
        overrides.setdefault("model", {}).setdefault("name", parent.base_model)
    cfg = resolve_config(yaml_path=config_path, overrides=overrides)
    if parent is not None:
        if cfg.model.name != parent.base_model:
            raise OrgtuneError(f"--init-adapter {init_adapter} was trained on {parent.base_model!r}, not {cfg.model.name!r}",
                               fix="drop --model (the parent's base is used) or start a fresh run without --init-adapter")
        cfg.lora = parent.config.lora  # an adapter keeps its rank and targets

    train_path, val_path = resolve_data(data, val, sibling_val=formats == ("preference",))
    files = [load_rows(train_path, allowed=formats)]
    if val_path is not None:
        files.append(load_rows(val_path, allowed=formats))
    _check_minimums(files)
    _check_backends(cfg)
    _check_strategy(cfg, strategy)

    hashes = {str(f.path): runfolder.sha256_file(f.path) for f in files}
    for extra in (more_files(cfg, parent) if more_files else []):
        hashes[str(extra)] = runfolder.sha256_file(extra)
    parent_sha = parent.manifest.get("adapter_sha256") if parent else None
    fp = runfolder.fingerprint(cfg, hashes, parent_sha)
    out = Path(out)
    resuming = resuming_run(out, fp, resume) if distributed.is_main() else False  # rank 0 decides (locked)
    return Prepared(cfg, out, train_path, val_path, hashes, parent, fp, resuming, strategy)


def resuming_run(out: Path, fp: str, resume: bool) -> bool:
    """Whether `out` holds this command's run (True), is new or empty (False), or is refused."""
    if (out / "manifest.json").is_file():
        existing = runfolder.read_run(out)
        if existing.manifest.get("fingerprint") != fp:
            raise OrgtuneError(f"{out} holds a different run (its config or data differ from this command's)",
                               fix="choose a new --out, or delete that folder to start over")
        return True
    if out.exists() and any(p.name != lock.LOCK_NAME for p in out.iterdir()):
        raise OrgtuneError(f"{out} exists and is not an orgtune run folder", fix="choose a new or empty --out folder")
    if resume:
        raise OrgtuneError(f"--resume: {out} holds no run to resume", fix="drop --resume to start a new run")
    return False


@contextlib.contextmanager
def locked(p: Prepared, resume: bool = False) -> Iterator[Prepared]:
    """Hold `p.out`'s lock for the block (before anything in it is written or deleted), with the folder
    checked again under it: another command may have created or finished the run since `prepare` looked.
    Under torchrun only rank 0 takes the lock and looks; the other ranks get its answer."""
    if not distributed.is_main():
        yield dataclasses.replace(p, resuming=distributed.broadcast(None))
        return
    with lock.hold(p.out):
        resuming = resuming_run(p.out, p.fingerprint, resume)
        yield dataclasses.replace(p, resuming=distributed.broadcast(resuming))


MIN_TRAIN_ROWS = 2  # one row cannot be shuffled, split or told apart from memorising it


def _check_minimums(files) -> None:
    train, *val = files
    if len(train.rows) < MIN_TRAIN_ROWS:
        raise OrgtuneError(f"{train.path}: {len(train.rows)} training row(s); at least {MIN_TRAIN_ROWS} are needed "
                           "(and a few hundred to teach a model facts)",
                           fix="add examples; `orgtune data build DOCS --out DATA` writes them from documents")
    if val and not val[0].rows:
        raise OrgtuneError(f"{val[0].path}: the validation file has no rows", fix="add rows to it, or leave it out")


def _check_backends(cfg: RunConfig) -> None:
    import importlib.util

    import torch

    needs_bnb = cfg.qlora.enabled or "8bit" in cfg.training.optim
    if needs_bnb and importlib.util.find_spec("bitsandbytes") is None:
        what = "--qlora (4-bit base)" if cfg.qlora.enabled else f"optim {cfg.training.optim}"
        raise OrgtuneError(f"{what} needs bitsandbytes, which is not installed",
                           fix="pip install bitsandbytes on a CUDA machine, or train 16-bit LoRA (drop --qlora / use optim adamw_torch)")
    if cfg.qlora.enabled and not torch.cuda.is_available():
        raise OrgtuneError("--qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); none is visible",
                           fix="run on a GPU machine, or drop --qlora to train 16-bit LoRA on this device")


def _check_strategy(cfg: RunConfig, strategy: str | None) -> None:
    if strategy is None and not distributed.active():
        return
    fields = distributed.strategy_args(strategy)
    if cfg.training.load_best_model_at_end and distributed.sharded(fields):
        raise OrgtuneError(f"load_best_model_at_end cannot reload a checkpoint into weights split between ranks "
                           f"(--strategy {strategy})", fix="set training.load_best_model_at_end: false, or use --strategy ddp")
    if cfg.qlora.enabled and distributed.sharded(fields):
        raise OrgtuneError(f"--qlora with weights split between ranks (--strategy {strategy}) is not supported here",
                           fix="use --strategy ddp or zero2 with --qlora, or train 16-bit LoRA under zero3/fsdp2")


def _silent(*args, **kwargs) -> None:
    """Ranks other than 0 say nothing: rank 0 speaks for the run."""


def _split_val(encoded: EncodedSet, fraction: float, seed: int) -> tuple[EncodedSet, EncodedSet | None]:
    if fraction <= 0 or len(encoded.rows) < 2:
        return encoded, None
    idx = list(range(len(encoded.rows)))
    random.Random(seed).shuffle(idx)
    n_val = max(1, int(round(fraction * len(idx))))
    val_idx, train_idx = sorted(idx[:n_val]), sorted(idx[n_val:])

    def pick(ix):
        return EncodedSet([encoded.rows[i] for i in ix], [encoded.lines[i] for i in ix], [], 0)

    return pick(train_idx), pick(val_idx)


def _to_dataset(encoded: EncodedSet):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [r.input_ids for r in encoded.rows],
                              "labels": [r.labels for r in encoded.rows]})


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


def sft_args(cfg: RunConfig, output_dir: Path, *, device: str, has_eval: bool, strategy: str | None = None):
    """TRL SFTConfig for a config; shared with the throughput benchmark."""
    from trl import SFTConfig

    return SFTConfig(**trainer_args(cfg, output_dir, device=device, has_eval=has_eval, strategy=strategy),
                     padding_free=cfg.training.padding_free,
                     max_length=None)  # rows are truncated (and fully-cut rows dropped) before they get here


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


def train(data: Path, out: Path, *, config_path: Path | None = None, overrides: dict | None = None,
          val: Path | None = None, resume: bool = False, init_adapter: Path | None = None,
          log=print, callbacks: list | None = None, strategy: str | None = None) -> runfolder.Run:
    """Train a LoRA adapter into run folder `out`; resume it if `out` holds the same unfinished run.
    `callbacks` are more transformers TrainerCallbacks (the service's progress and stop hooks). Under
    torchrun (or `orgtune train --launch N`) every rank calls this; `strategy` names how they share the work."""
    general: list[Path] = []
    distributed.init()
    if not distributed.is_main():
        log = _silent

    def general_file(cfg: RunConfig, parent) -> list[Path]:  # after every cheap check, before the model loads
        if cfg.training.general_replay > 0:
            from orgtune.train.general import self_distilled

            with distributed.main_first():  # one rank fills the cache
                general.append(self_distilled(cfg.model.name, device=cfg.model.device, log=log))
        return general

    p = prepare(data, out, config_path=config_path, overrides=overrides, val=val, resume=resume,
                init_adapter=init_adapter, more_files=general_file, strategy=strategy)
    with locked(p, resume) as p:
        done = distributed.broadcast(finished_run(p, log) is not None)
        if done:
            return runfolder.read_run(p.out)
        return _train(p, general, log=log, callbacks=callbacks)


def _train(p: Prepared, general: list[Path], *, log, callbacks: list | None) -> runfolder.Run:
    from orgtune.models.loading import load_tokenizer, pick_device, resolve_source

    cfg = p.cfg
    tok = load_tokenizer(resolve_source(cfg.model.name))
    train_rows = load_rows(p.train_path, allowed=SFT_FORMATS).rows
    replayed = []
    if general:
        replayed = load_rows(general[0], allowed=SFT_FORMATS).rows
        random.Random(cfg.training.seed).shuffle(replayed)
        if cfg.training.general_loss == "sft":  # kl streams all of them beside the batches instead
            replayed = replayed[:round(cfg.training.general_replay * len(train_rows))]
    encoded = encode_rows(tok, train_rows, max_len=cfg.model.max_seq_length)
    general_encoded = encode_rows(tok, replayed, max_len=cfg.model.max_seq_length)
    val_encoded = None
    if p.val_path is not None:
        val_encoded = encode_rows(tok, load_rows(p.val_path, allowed=SFT_FORMATS).rows, max_len=cfg.model.max_seq_length)
    else:
        encoded, val_encoded = _split_val(encoded, cfg.training.val_fraction, cfg.training.seed)
    if encoded.dropped_lines:
        log(f"dropped {len(encoded.dropped_lines)} row(s) whose assistant tokens are all beyond max_seq_length "
            f"{cfg.model.max_seq_length} (lines {', '.join(map(str, encoded.dropped_lines[:20]))})")
    if not encoded.rows:
        raise OrgtuneError(f"{p.train_path}: no row has an assistant token within max_seq_length {cfg.model.max_seq_length}",
                           fix="raise model.max_seq_length (--max-seq-length) or shorten the prompts")
    if val_encoded is not None and not val_encoded.rows:
        where = p.val_path or p.train_path
        raise OrgtuneError(f"{where}: no validation row is left (every one has its assistant tokens beyond "
                           f"max_seq_length {cfg.model.max_seq_length}, or the split took none)",
                           fix="raise --max-seq-length or val_fraction, or give a --val file with shorter rows")
    used = len(encoded.rows)
    kl = bool(general_encoded.rows) and cfg.training.general_loss == "kl"
    if not kl:
        encoded.rows += general_encoded.rows  # after the checks: they are about the user's own rows
        encoded.lines += [-1] * len(general_encoded.rows)
    device = rank_device(pick_device(cfg.model.device))

    run_dir = p.out
    ckpt_dir = run_dir / "checkpoints"
    manifest = {"method": "sft",
                "data": {"train": data_entry(p, p.train_path, rows=len(train_rows), used=used,
                                             dropped_lines=encoded.dropped_lines, truncated=encoded.truncated)}}
    if general:
        manifest["data"]["general_replay"] = data_entry(p, general[0], rows=len(general_encoded.rows),
                                                        share=cfg.training.general_replay, loss=cfg.training.general_loss)
    if p.val_path is not None:
        manifest["data"]["val"] = data_entry(p, p.val_path, rows=len(val_encoded.rows))
    elif val_encoded is not None:
        manifest["data"]["val"] = {"split_from_train": cfg.training.val_fraction, "rows": len(val_encoded.rows)}
    manifest, resume_from = open_run(p, manifest, log=log)

    model, tok, info, peft_config = load_policy(p, cfg, device)
    trainer = OrgtuneSFTTrainer(
        model=model, args=sft_args(cfg, ckpt_dir, device=device, has_eval=val_encoded is not None, strategy=p.strategy),
        train_dataset=_to_dataset(encoded), eval_dataset=_to_dataset(val_encoded) if val_encoded else None,
        processing_class=tok, peft_config=peft_config, callbacks=callbacks_for(run_dir, cfg, callbacks),
        keep_checkpoints=cfg.training.save_total_limit, general=general_encoded.rows if kl else None,
        general_batch=max(1, round(cfg.training.general_replay * cfg.training.per_device_train_batch_size)))
    quiet_progress(trainer)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    elapsed = time.time() - started
    shipped = ship_best(trainer, load_best=cfg.training.load_best_model_at_end and val_encoded is not None, log=log)

    finish_run(run_dir, trainer, tok, manifest, info, summary={
        "global_step": trainer.state.global_step, "train_loss": result.training_loss,
        "best_eval_loss": trainer.state.best_metric, "seconds_this_session": round(elapsed, 1),
        "trained_tokens_per_epoch": sum(r.n_trained for r in encoded.rows), "shipped": shipped},
        tensorboard=cfg.training.tensorboard)
    distributed.barrier()  # rank 0 has written the manifest
    return runfolder.read_run(run_dir)


def finished_run(p: Prepared, log=print) -> runfolder.Run | None:
    """The run in `p.out` when it is already complete (a re-run of a finished command), else None."""
    if p.resuming:
        existing = runfolder.read_run(p.out)
        if existing.complete:
            log(f"{p.out}: this run is already complete (adapter at {existing.adapter_dir})")
            return existing
    return None


def data_entry(p: Prepared, path: Path, **extra) -> dict:
    """A data file as the manifest records it: absolute path, sha256, and counts."""
    return {"path": str(path.resolve()), "sha256": p.data_hashes[str(path)], **extra}


def open_run(p: Prepared, manifest: dict, log=print) -> tuple[dict, Path | None]:
    """Create the run folder (config + manifest, all or nothing) unless resuming; clear what a crash left;
    returns the manifest on disk and the checkpoint to resume from (None: start at step 0)."""
    run_dir = p.out
    if not distributed.is_main():  # rank 0 has opened the folder; its choice of checkpoint is ours
        resume_from = distributed.broadcast(None)
        return runfolder.read_run(run_dir).manifest, Path(resume_from) if resume_from else None
    if distributed.active():
        manifest["distributed"] = {"world_size": distributed.world_size(), "strategy": p.strategy or "ddp"}
    if not p.resuming:
        manifest = {
            "run_id": run_dir.name, "status": "running", "fingerprint": p.fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": runfolder.versions(),
            "base_model": p.cfg.model.name, "parent": None, "lineage": [], **manifest,
        }
        if p.parent is not None:
            lineage = runfolder.lineage_of(p.parent)
            manifest.update(parent=lineage[-1], lineage=lineage)
        # The folder appears with its config and manifest, or not at all.
        with atomic.building_folder(run_dir, replace=run_dir.exists(), marker=False) as staging:
            save_config(p.cfg, staging / "config.yaml")
            runfolder.write_manifest(staging, manifest)
            lock.carry(run_dir, staging)  # the lock held on run_dir stays held in the folder replacing it
    manifest = runfolder.read_run(run_dir).manifest
    atomic.remove_partials(run_dir)  # e.g. an adapter folder cut short by a crash
    resume_from = last_checkpoint(run_dir / "checkpoints", log=log)
    if resume_from is not None:
        truncate_metrics(run_dir / "metrics.jsonl", int(resume_from.name.split("-")[1]))
        log(f"resuming from {resume_from}")
    else:
        if p.resuming:
            log(f"{run_dir}: no complete, intact checkpoint to resume from; training starts over at step 0")
        if (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()
    distributed.broadcast(str(resume_from) if resume_from else None)
    return manifest, resume_from


def rank_device(device: str) -> str:
    """This rank's GPU under torchrun (`cuda` → `cuda:LOCAL_RANK`); other devices as they are."""
    import os

    if distributed.active() and device == "cuda":
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def finish_run(run_dir: Path, trainer, tok, manifest: dict, info: dict, *, summary: dict, tensorboard: bool,
               adapters: list[str] | None = None) -> None:
    """Save the final adapter (whole or not at all) and mark the run complete. Under torchrun every rank
    takes part in saving (ZeRO-3 and FSDP gather the weights) and rank 0 writes."""
    with distributed.shared_building_folder(run_dir / "adapter", replace=True) as staging:
        if distributed.active():
            trainer.save_model(str(staging))  # the unwrapped PEFT model's adapter, gathered; writes on rank 0
        elif adapters:
            trainer.model.save_pretrained(str(staging), safe_serialization=True, selected_adapters=adapters)
        else:
            trainer.model.save_pretrained(str(staging), safe_serialization=True)
        if distributed.is_main():
            tok.save_pretrained(str(staging))
            (staging / "training_args.bin").unlink(missing_ok=True)  # Trainer.save_model's pickle: not shipped
    if not distributed.is_main():
        return
    manifest.update(
        status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), device=info["device"], dtype=info["dtype"],
        adapter_sha256=runfolder.sha256_file(run_dir / "adapter" / "adapter_model.safetensors"), summary=summary)
    runfolder.write_manifest(run_dir, manifest)
    if not tensorboard:
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)


def load_policy(p: Prepared, cfg: RunConfig, device: str):
    """The base model (4-bit under QLoRA) with the parent's adapter made trainable, or bare (a new
    adapter comes from `lora_config`). Returns (model, tok, info, peft_config)."""
    from orgtune.models.loading import load_model

    model, tok, info = load_model(cfg.model.name, device=device, dtype=cfg.model.dtype,
                                  quantization_config=_bnb_config(cfg))
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

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), bias=cfg.lora.bias, task_type=cfg.lora.task_type)


def _bnb_config(cfg: RunConfig):
    if not cfg.qlora.enabled:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.qlora.quant_type,
                              bnb_4bit_use_double_quant=cfg.qlora.double_quant,
                              bnb_4bit_compute_dtype=getattr(torch, cfg.qlora.compute_dtype))
