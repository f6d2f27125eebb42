"""DPO with LoRA through TRL's DPOTrainer, on top of an SFT run, crash-safe and resumable like SFT.

    orgtune data prefs data/v1 --model runs/sft --out data/v1/prefs.jsonl
    orgtune train --method dpo --data data/v1/prefs.jsonl --init-adapter runs/sft --out runs/dpo

The policy is the base with the SFT adapter, trainable; the reference is the SFT policy itself: TRL
keeps a frozen copy of the SFT adapter (a few MB) next to the trainable one and switches to it for the
reference pass, so the base weights are in memory once. The run's adapter is the SFT adapter moved by
DPO: it applies to the base on its own, so eval, export and serve use it like any SFT run's. Without
--init-adapter a new adapter is trained and the reference is the base (adapter disabled).

The parent's own SFT rows (or --replay-data FILE) are replayed beside the pairs: each micro-batch adds
W × the policy's NLL on a micro-batch of them (--replay W, default 1; 0 = off), so the answers SFT
taught, in the words it taught them, stay where they were while DPO moves the ones the pairs name.

A preference file's validation pairs (--val, or PREFS.val.jsonl next to PREFS.jsonl) are scored at
each epoch end; `orgtune eval` reports the reward margin and preference accuracy on them.
"""

from __future__ import annotations

import time
from pathlib import Path

from orgtune.data.formats import SFT_FORMATS, load_rows
from orgtune.errors import OrgtuneError
from orgtune.train import distributed, runfolder
from orgtune.train.components import callbacks_for, load_policy, quiet_progress, trainer_args
from orgtune.train.runfolder import Prepared, data_entry, finish_run, finished_run, locked, open_run, prepare


def dpo_overrides(overrides: dict | None, parent_lr: float | None) -> dict:
    """Flags, with DPO's own defaults for what the user did not set: 1 epoch, a twentieth of the parent's
    learning rate (or of the preset's when there is no parent)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in (overrides or {}).items()}
    t = out.setdefault("training", {})
    t.setdefault("num_epochs", 1)
    if "learning_rate" not in t and parent_lr is not None:
        t["learning_rate"] = parent_lr * 0.05
    return out


def _pairs(rows) -> list[dict]:
    return [{"prompt": r.messages, "chosen": r.chosen, "rejected": r.rejected} for r in rows]


def replay_file(cfg, parent: runfolder.Run | None, log=None) -> tuple[Path | None, float]:
    """The SFT rows DPO replays, checked, and their weight: --replay-data, else the parent run's training
    file, which must be the very file it was trained on. By default (no --replay) the parent's file is
    replayed at weight 1 when it is at hand, and replay is off (with a note) when it is not."""
    weight, explicit = (cfg.dpo.replay, True) if cfg.dpo.replay is not None else (1.0, False)
    if weight <= 0 or (not explicit and parent is None and not cfg.dpo.replay_data):
        return None, 0.0
    if cfg.dpo.replay_data:
        path = Path(cfg.dpo.replay_data)
        if not path.is_file():
            raise OrgtuneError(
                f"--replay-data {path}: file not found",
                fix="pass an SFT JSONL file (chat, alpaca, sharegpt or prompt/completion)",
            )
    else:
        if parent is None:
            raise OrgtuneError(
                "--replay needs SFT rows to replay: none without --init-adapter",
                fix="add --init-adapter SFT_RUN (its training file is replayed) or --replay-data FILE",
            )
        entry = parent.manifest.get("data", {}).get("train", {})
        path = Path(entry.get("path", ""))
        problem = None
        if not entry.get("path") or not path.is_file():
            problem = (
                f"--replay: {parent.path}'s training file {entry.get('path')!r} is gone",
                "pass it again with --replay-data FILE, or --replay 0",
            )
        elif entry.get("sha256") and runfolder.sha256_file(path) != entry["sha256"]:
            problem = (
                f"--replay: {path} changed since {parent.path} was trained on it",
                "pass the rows to replay with --replay-data FILE, or --replay 0",
            )
        if problem and explicit:
            raise OrgtuneError(problem[0], fix=problem[1])
        if problem:
            if log is not None:
                log(f"SFT replay off: {problem[0].removeprefix('--replay: ')} ({problem[1]})")
            return None, 0.0
    load_rows(path, allowed=SFT_FORMATS)  # file:line errors before the model loads
    return path, weight


def dpo_args(cfg, output_dir: Path, *, device: str, has_eval: bool):
    from trl import DPOConfig

    return DPOConfig(
        **trainer_args(cfg, output_dir, device=device, has_eval=has_eval),
        beta=cfg.dpo.beta,
        loss_type=list(cfg.dpo.loss_type),
        loss_weights=cfg.dpo.loss_weights,
        label_smoothing=cfg.dpo.label_smoothing,
        max_length=cfg.model.max_seq_length,
        precompute_ref_log_probs=False,
    )


def train_dpo(
    data: Path,
    out: Path,
    *,
    config_path: Path | None = None,
    overrides: dict | None = None,
    val: Path | None = None,
    resume: bool = False,
    init_adapter: Path | None = None,
    log=print,
    callbacks: list | None = None,
) -> runfolder.Run:
    """Train a DPO adapter into run folder `out` (resumed if `out` holds the same unfinished run).
    `orgtune train --method dpo --data PREFS.jsonl --init-adapter SFT_RUN --out OUT` runs it."""
    if distributed.active():
        raise OrgtuneError(
            "orgtune dpo trains in one process; torchrun / --launch is for orgtune train (SFT)",
            fix="run orgtune dpo without torchrun (one GPU holds a LoRA DPO run of the bases orgtune names)",
        )
    parent_lr = None
    if init_adapter is not None:
        parent_lr = runfolder.read_complete_run(init_adapter).config.training.learning_rate
    else:
        from orgtune.config import resolve_config

        parent_lr = resolve_config(yaml_path=config_path, overrides=overrides).training.learning_rate
    replay_choice: list[tuple[Path | None, float]] = []  # resolved once, inside prepare's checks

    def replayed(cfg, parent) -> list[Path]:
        replay_choice.append(replay_file(cfg, parent, log=log))
        return [replay_choice[0][0]] if replay_choice[0][0] is not None else []

    p = prepare(
        data,
        out,
        config_path=config_path,
        overrides=dpo_overrides(overrides, parent_lr),
        val=val,
        resume=resume,
        init_adapter=init_adapter,
        formats=("preference",),
        more_files=replayed,
    )
    with locked(p, resume) as p:  # the same run-folder lock as SFT, before the model loads
        done = finished_run(p, log)
        if done is not None:
            return done
        return _train_dpo(p, replay_choice[0], log=log, callbacks=callbacks)


def _train_dpo(p: Prepared, replay_choice: tuple[Path | None, float], *, log, callbacks: list | None) -> runfolder.Run:
    from datasets import Dataset

    from orgtune.models.loading import pick_device
    from orgtune.train.trainer import OrgtuneDPOTrainer

    cfg = p.cfg
    train_rows = _pairs(p.train_rows)
    val_rows = _pairs(p.val_rows or [])
    device = pick_device(cfg.model.device)
    manifest = {
        "method": "dpo",
        "dpo": {
            "beta": cfg.dpo.beta,
            "loss_type": cfg.dpo.loss_type,
            "reference": "parent SFT adapter (frozen copy)" if p.parent else "base (adapter disabled)",
        },
        "data": {"train": data_entry(p, p.train_path, rows=len(train_rows), format="preference")},
    }
    if p.val_path is not None:
        manifest["data"]["val"] = data_entry(p, p.val_path, rows=len(val_rows), format="preference")
    replay_path, replay_weight = replay_choice
    model, tok, info, peft_config = load_policy(p, cfg, device)
    replay = None
    if replay_path is not None:
        from orgtune.data.tokenize import encode_rows

        replay = encode_rows(tok, load_rows(replay_path, allowed=SFT_FORMATS).rows, max_len=cfg.model.max_seq_length)
        if not replay.rows:
            raise OrgtuneError(
                f"{replay_path}: no row to replay has an assistant token within max_seq_length",
                fix="raise --max-seq-length, or --replay 0",
            )
        manifest["data"]["replay"] = data_entry(p, replay_path, rows=len(replay.rows), weight=replay_weight)
    manifest, resume_from = open_run(p, manifest, log=log)
    run_dir = p.out

    trainer = OrgtuneDPOTrainer(
        model=model,
        ref_model=None,
        args=dpo_args(cfg, run_dir / "checkpoints", device=device, has_eval=bool(val_rows)),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=callbacks_for(run_dir, cfg, callbacks),
        keep_checkpoints=cfg.training.save_total_limit,
        replay=replay,
        replay_weight=replay_weight,
        replay_batch=cfg.training.per_device_train_batch_size,
    )
    quiet_progress(trainer)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    elapsed = time.time() - started
    finish_run(
        run_dir,
        trainer,
        tok,
        manifest,
        info,
        tensorboard=cfg.training.tensorboard,
        adapters=["default"],
        summary={
            "global_step": trainer.state.global_step,
            "train_loss": result.training_loss,
            "best_eval_loss": trainer.state.best_metric,
            "seconds_this_session": round(elapsed, 1),
        },
    )
    return runfolder.read_run(run_dir)
