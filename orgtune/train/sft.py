"""LoRA / QLoRA supervised fine-tuning through TRL's SFTTrainer and PEFT, crash-safe and resumable.

    orgtune train --data data/train.jsonl --model smollm2-135m --out runs/first
    orgtune train --data nightly.jsonl --init-adapter runs/first --out runs/nightly-1 --epochs 1 --lr 1e-4

Everything the user can get wrong (data rows, config keys, missing bitsandbytes, a run folder that
holds another run) is checked before a model is loaded or the run folder is created. Re-running the
same command after a crash resumes from the last complete checkpoint; a finished run is left alone.
The run folder is locked while a run trains in it: a second command on the same folder fails at once.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from orgtune.config import RunConfig
from orgtune.data.formats import SFT_FORMATS, load_rows
from orgtune.data.tokenize import EncodedSet, encode_rows
from orgtune.errors import OrgtuneError
from orgtune.train import distributed, runfolder
from orgtune.train.components import callbacks_for, load_policy, quiet_progress, rank_device, trainer_args
from orgtune.train.runfolder import Prepared, data_entry, finish_run, finished_run, locked, open_run, prepare
from orgtune.train.trainer import OrgtuneSFTTrainer, ship_best


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

    return Dataset.from_dict(
        {"input_ids": [r.input_ids for r in encoded.rows], "labels": [r.labels for r in encoded.rows]}
    )


def sft_args(cfg: RunConfig, output_dir: Path, *, device: str, has_eval: bool, strategy: str | None = None):
    """TRL SFTConfig for a config; shared with the throughput benchmark."""
    from trl import SFTConfig

    return SFTConfig(
        **trainer_args(cfg, output_dir, device=device, has_eval=has_eval, strategy=strategy),
        padding_free=cfg.training.padding_free,
        max_length=None,
    )  # rows are truncated (and fully-cut rows dropped) before they get here


def train(
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
    strategy: str | None = None,
) -> runfolder.Run:
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

    p = prepare(
        data,
        out,
        config_path=config_path,
        overrides=overrides,
        val=val,
        resume=resume,
        init_adapter=init_adapter,
        formats=SFT_FORMATS,
        more_files=general_file,
        strategy=strategy,
    )
    with locked(p, resume) as p:
        done = distributed.broadcast(finished_run(p, log) is not None)
        if done:
            return runfolder.read_run(p.out)
        return _train(p, general, log=log, callbacks=callbacks)


def _train(p: Prepared, general: list[Path], *, log, callbacks: list | None) -> runfolder.Run:
    from orgtune.models.loading import load_tokenizer, pick_device, resolve_source

    cfg = p.cfg
    tok = load_tokenizer(resolve_source(cfg.model.name))
    train_rows = p.train_rows
    replayed = []
    if general:
        replayed = load_rows(general[0], allowed=SFT_FORMATS).rows
        random.Random(cfg.training.seed).shuffle(replayed)
        if cfg.training.general_loss == "sft":  # kl streams all of them beside the batches instead
            replayed = replayed[: round(cfg.training.general_replay * len(train_rows))]
    encoded = encode_rows(tok, train_rows, max_len=cfg.model.max_seq_length)
    general_encoded = encode_rows(tok, replayed, max_len=cfg.model.max_seq_length)
    val_encoded = None
    if p.val_path is not None:
        val_encoded = encode_rows(tok, p.val_rows, max_len=cfg.model.max_seq_length)
    else:
        encoded, val_encoded = _split_val(encoded, cfg.training.val_fraction, cfg.training.seed)
    _check_encoded(p, encoded, val_encoded, log)
    used = len(encoded.rows)
    kl = bool(general_encoded.rows) and cfg.training.general_loss == "kl"
    if not kl:
        encoded.rows += general_encoded.rows  # after the checks: they are about the user's own rows
        encoded.lines += [-1] * len(general_encoded.rows)
    device = rank_device(pick_device(cfg.model.device))

    run_dir = p.out
    ckpt_dir = run_dir / "checkpoints"
    manifest = {
        "method": "sft",
        "data": {
            "train": data_entry(
                p,
                p.train_path,
                rows=len(train_rows),
                used=used,
                dropped_lines=encoded.dropped_lines,
                truncated=encoded.truncated,
            )
        },
    }
    if general:
        manifest["data"]["general_replay"] = data_entry(
            p,
            general[0],
            rows=len(general_encoded.rows),
            share=cfg.training.general_replay,
            loss=cfg.training.general_loss,
            **({"weight": cfg.training.general_weight} if kl else {}),
        )
    if p.val_path is not None:
        manifest["data"]["val"] = data_entry(p, p.val_path, rows=len(val_encoded.rows))
    elif val_encoded is not None:
        manifest["data"]["val"] = {"split_from_train": cfg.training.val_fraction, "rows": len(val_encoded.rows)}
    manifest, resume_from = open_run(p, manifest, log=log)

    model, tok, info, peft_config = load_policy(p, cfg, device)
    trainer = OrgtuneSFTTrainer(
        model=model,
        args=sft_args(cfg, ckpt_dir, device=device, has_eval=val_encoded is not None, strategy=p.strategy),
        train_dataset=_to_dataset(encoded),
        eval_dataset=_to_dataset(val_encoded) if val_encoded else None,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=callbacks_for(run_dir, cfg, callbacks),
        keep_checkpoints=cfg.training.save_total_limit,
        general=general_encoded.rows if kl else None,
        general_batch=max(1, round(cfg.training.general_replay * cfg.training.per_device_train_batch_size)),
        general_weight=cfg.training.general_weight,
    )
    quiet_progress(trainer)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    elapsed = time.time() - started
    shipped = ship_best(trainer, load_best=cfg.training.load_best_model_at_end and val_encoded is not None, log=log)

    finish_run(
        run_dir,
        trainer,
        tok,
        manifest,
        info,
        summary={
            "global_step": trainer.state.global_step,
            "train_loss": result.training_loss,
            "best_eval_loss": trainer.state.best_metric,
            "seconds_this_session": round(elapsed, 1),
            "trained_tokens_per_epoch": sum(r.n_trained for r in encoded.rows),
            "shipped": shipped,
        },
        tensorboard=cfg.training.tensorboard,
    )
    distributed.barrier()  # rank 0 has written the manifest
    return runfolder.read_run(run_dir)


def _check_encoded(p: Prepared, encoded: EncodedSet, val_encoded: EncodedSet | None, log) -> None:
    """Say which rows max_seq_length dropped; refuse a run left with no training or no validation row."""
    cfg = p.cfg
    if encoded.dropped_lines:
        log(
            f"dropped {len(encoded.dropped_lines)} row(s) whose assistant tokens are all beyond max_seq_length "
            f"{cfg.model.max_seq_length} (lines {', '.join(map(str, encoded.dropped_lines[:20]))})"
        )
    if not encoded.rows:
        raise OrgtuneError(
            f"{p.train_path}: no row has an assistant token within max_seq_length {cfg.model.max_seq_length}",
            fix="raise model.max_seq_length (--max-seq-length) or shorten the prompts",
        )
    if val_encoded is not None and not val_encoded.rows:
        where = p.val_path or p.train_path
        raise OrgtuneError(
            f"{where}: no validation row is left (every one has its assistant tokens beyond "
            f"max_seq_length {cfg.model.max_seq_length}, or the split took none)",
            fix="raise --max-seq-length or val_fraction, or give a --val file with shorter rows",
        )
