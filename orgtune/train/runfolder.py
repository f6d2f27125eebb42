"""A run folder describes itself: resolved config, versions, data hashes, parent adapter, status.

    runs/<id>/config.yaml      the resolved RunConfig (later steps read it, they never ask again)
    runs/<id>/manifest.json    versions, data files with sha256, lineage, status, fingerprint
    runs/<id>/metrics.jsonl    one line per logged step / evaluation
    runs/<id>/checkpoints/     checkpoint-N folders, each complete or absent
    runs/<id>/adapter/         the final adapter (safetensors + adapter_config.json), with COMPLETE

The fingerprint (config + data hashes + parent adapter) tells a re-run of the same command, which
resumes, from a different command pointed at the same folder, which is refused.

A run's life, the same for every recipe (SFT in sft.py, DPO in dpo.py): `prepare` checks everything
before a model loads; `locked` holds the folder; `finished_run` leaves a complete run alone; `open_run`
creates the folder (config + manifest, all or nothing) or finds the checkpoint to resume from;
`finish_run` saves the adapter and marks the run complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from orgtune import atomic
from orgtune.config import RunConfig, load_config, resolve_config, save_config
from orgtune.data.formats import load_rows
from orgtune.errors import OrgtuneError
from orgtune.train import distributed, lock

PACKAGES = ("orgtune", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(config: RunConfig, data_hashes: dict[str, str], parent_adapter_sha: str | None) -> str:
    blob = json.dumps(
        {"config": config.to_dict(), "data": sorted(data_hashes.values()), "parent": parent_adapter_sha}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Run:
    """An existing run folder, read back."""

    path: Path
    config: RunConfig
    manifest: dict

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete" and atomic.is_complete(self.adapter_dir)

    @property
    def base_model(self) -> str:
        return self.config.model.name


def read_run(path: Path) -> Run:
    path = Path(path)
    man = path / "manifest.json"
    if not man.is_file():
        raise OrgtuneError(
            f"{path}: not an orgtune run folder (no manifest.json)",
            fix="pass the folder given to `orgtune train --out`",
        )
    try:
        manifest = json.loads(man.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise OrgtuneError(
            f"{man}:{e.lineno}: manifest is not valid JSON", fix="restore it or re-run training"
        ) from None
    return Run(path=path, config=load_config(path / "config.yaml"), manifest=manifest)


def read_complete_run(path: Path) -> Run:
    run = read_run(path)
    if not run.complete:
        raise OrgtuneError(
            f"{path}: the run has not finished (status {run.manifest.get('status')!r}, no complete adapter/)",
            fix=f"finish it first: re-run the same `orgtune train ... --out {path}` command to resume",
        )
    return run


def write_manifest(path: Path, manifest: dict) -> None:
    manifest = {**manifest, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic.write_json(Path(path) / "manifest.json", manifest)


def lineage_of(parent: Run) -> list[dict]:
    """The chain of adapters a run descends from, oldest first, ending with `parent` itself."""
    me = {
        "run": str(parent.path.resolve()),
        "adapter_sha256": parent.manifest.get("adapter_sha256"),
        "fingerprint": parent.manifest.get("fingerprint"),
    }
    return [*parent.manifest.get("lineage", []), me]


@dataclass
class Prepared:
    """Everything checked and decided before the model loads."""

    cfg: RunConfig
    out: Path
    train_path: Path
    val_path: Path | None
    data_hashes: dict[str, str]
    parent: Run | None
    fingerprint: str
    resuming: bool
    strategy: str | None = None  # under torchrun / --launch: ddp, zero2, zero3, fsdp2 or a JSON file (distributed.py)
    train_rows: list = dataclasses.field(default_factory=list)  # parsed once, here, from the hashed files
    val_rows: list | None = None
    existing: Run | None = None  # the run folder's manifest as read under the lock (rank 0, when resuming)


def resolve_data(data: Path, val: Path | None, *, sibling_val: bool = False) -> tuple[Path, Path | None]:
    """--data is a JSONL file or a folder with train.jsonl (and val.jsonl, used unless --val is given);
    with `sibling_val`, X.jsonl's validation file X.val.jsonl is used too (preference files)."""
    data, val = Path(data), Path(val) if val is not None else None
    if sibling_val and data.is_file() and val is None and data.with_name(data.stem + ".val.jsonl").is_file():
        return data, data.with_name(data.stem + ".val.jsonl")
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise OrgtuneError(
                f"{data}: folder has no train.jsonl", fix="pass a JSONL file or a folder made by `orgtune data build`"
            )
        if val is None and (data / "val.jsonl").is_file():
            val = data / "val.jsonl"
        return train, val
    if not data.is_file():
        raise OrgtuneError(
            f"{data}: training data not found", fix="pass an existing JSONL file or data folder to --data"
        )
    return data, val


def prepare(
    data: Path,
    out: Path,
    *,
    config_path: Path | None = None,
    overrides: dict | None = None,
    val: Path | None = None,
    resume: bool = False,
    init_adapter: Path | None = None,
    formats: tuple[str, ...],
    more_files=None,
    strategy: str | None = None,
) -> Prepared:
    """Check everything before the model loads. `more_files(cfg, parent)` names further input files
    (checked by the caller) whose contents join the run's fingerprint. `strategy` is checked here too."""
    overrides = dict(overrides or {})
    parent = read_complete_run(init_adapter) if init_adapter else None
    if parent is not None:
        overrides.setdefault("model", {}).setdefault("name", parent.base_model)
    cfg = resolve_config(yaml_path=config_path, overrides=overrides)
    if parent is not None:
        if cfg.model.name != parent.base_model:
            raise OrgtuneError(
                f"--init-adapter {init_adapter} was trained on {parent.base_model!r}, not {cfg.model.name!r}",
                fix="drop --model (the parent's base is used) or start a fresh run without --init-adapter",
            )
        cfg.lora = parent.config.lora  # an adapter keeps its rank and targets

    train_path, val_path = resolve_data(data, val, sibling_val=formats == ("preference",))
    files = [load_rows(train_path, allowed=formats)]
    if val_path is not None:
        files.append(load_rows(val_path, allowed=formats))
    _check_minimums(files)
    _check_backends(cfg)
    _check_strategy(cfg, strategy)

    hashes = {str(f.path): sha256_file(f.path) for f in files}
    for extra in more_files(cfg, parent) if more_files else []:
        hashes[str(extra)] = sha256_file(extra)
    parent_sha = parent.manifest.get("adapter_sha256") if parent else None
    fp = fingerprint(cfg, hashes, parent_sha)
    out = Path(out)
    existing = resuming_run(out, fp, resume) if distributed.is_main() else None  # rank 0 decides (locked)
    return Prepared(
        cfg,
        out,
        train_path,
        val_path,
        hashes,
        parent,
        fp,
        existing is not None,
        strategy,
        train_rows=files[0].rows,
        val_rows=files[1].rows if val_path is not None else None,
    )


def resuming_run(out: Path, fp: str, resume: bool) -> Run | None:
    """The run in `out` when it is this command's (to resume or already finished), None when `out` is new
    or empty; a folder holding anything else is refused."""
    if (out / "manifest.json").is_file():
        existing = read_run(out)
        if existing.manifest.get("fingerprint") != fp:
            raise OrgtuneError(
                f"{out} holds a different run (its config or data differ from this command's)",
                fix="choose a new --out, or delete that folder to start over",
            )
        return existing
    if out.exists() and any(p.name != lock.LOCK_NAME for p in out.iterdir()):
        raise OrgtuneError(f"{out} exists and is not an orgtune run folder", fix="choose a new or empty --out folder")
    if resume:
        raise OrgtuneError(f"--resume: {out} holds no run to resume", fix="drop --resume to start a new run")
    return None


@contextlib.contextmanager
def locked(p: Prepared, resume: bool = False) -> Iterator[Prepared]:
    """Hold `p.out`'s lock for the block (before anything in it is written or deleted), with the folder
    checked again under it: another command may have created or finished the run since `prepare` looked.
    Under torchrun only rank 0 takes the lock and looks; the other ranks get its answer."""
    if not distributed.is_main():
        yield dataclasses.replace(p, resuming=distributed.broadcast(None))
        return
    with lock.hold(p.out):
        existing = resuming_run(p.out, p.fingerprint, resume)
        distributed.broadcast(existing is not None)
        yield dataclasses.replace(p, resuming=existing is not None, existing=existing)


MIN_TRAIN_ROWS = 2  # one row cannot be shuffled, split or told apart from memorising it


def _check_minimums(files) -> None:
    train, *val = files
    if len(train.rows) < MIN_TRAIN_ROWS:
        raise OrgtuneError(
            f"{train.path}: {len(train.rows)} training row(s); at least {MIN_TRAIN_ROWS} are needed "
            "(and a few hundred to teach a model facts)",
            fix="add examples; `orgtune data build DOCS --out DATA` writes them from documents",
        )
    if val and not val[0].rows:
        raise OrgtuneError(f"{val[0].path}: the validation file has no rows", fix="add rows to it, or leave it out")


def _check_backends(cfg: RunConfig) -> None:
    import importlib.util

    import torch

    needs_bnb = cfg.qlora.enabled or "8bit" in cfg.training.optim
    if needs_bnb and importlib.util.find_spec("bitsandbytes") is None:
        what = "--qlora (4-bit base)" if cfg.qlora.enabled else f"optim {cfg.training.optim}"
        raise OrgtuneError(
            f"{what} needs bitsandbytes, which is not installed",
            fix="pip install bitsandbytes on a CUDA machine, or train 16-bit LoRA (drop --qlora / use optim adamw_torch)",
        )
    if cfg.qlora.enabled and not torch.cuda.is_available():
        raise OrgtuneError(
            "--qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); none is visible",
            fix="run on a GPU machine, or drop --qlora to train 16-bit LoRA on this device",
        )


def _check_strategy(cfg: RunConfig, strategy: str | None) -> None:
    if strategy is None and not distributed.active():
        return
    fields = distributed.strategy_args(strategy)
    if cfg.training.load_best_model_at_end and distributed.sharded(fields):
        raise OrgtuneError(
            f"load_best_model_at_end cannot reload a checkpoint into weights split between ranks "
            f"(--strategy {strategy})",
            fix="set training.load_best_model_at_end: false, or use --strategy ddp",
        )
    if cfg.qlora.enabled and distributed.sharded(fields):
        raise OrgtuneError(
            f"--qlora with weights split between ranks (--strategy {strategy}) is not supported here",
            fix="use --strategy ddp or zero2 with --qlora, or train 16-bit LoRA under zero3/fsdp2",
        )


def finished_run(p: Prepared, log=print) -> Run | None:
    """The run in `p.out` when it is already complete (a re-run of a finished command), else None."""
    if p.resuming:
        existing = p.existing or read_run(p.out)  # other ranks have no copy of rank 0's
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
        return read_run(run_dir).manifest, Path(resume_from) if resume_from else None
    if distributed.active():
        manifest["distributed"] = {"world_size": distributed.world_size(), "strategy": p.strategy or "ddp"}
    if not p.resuming:
        manifest = {
            "run_id": run_dir.name,
            "status": "running",
            "fingerprint": p.fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "base_model": p.cfg.model.name,
            "parent": None,
            "lineage": [],
            **manifest,
        }
        if p.parent is not None:
            lineage = lineage_of(p.parent)
            manifest.update(parent=lineage[-1], lineage=lineage)
        # The folder appears with its config and manifest, or not at all.
        with atomic.building_folder(run_dir, replace=run_dir.exists(), marker=False) as staging:
            save_config(p.cfg, staging / "config.yaml")
            write_manifest(staging, manifest)
            lock.carry(run_dir, staging)  # the lock held on run_dir stays held in the folder replacing it
    else:
        manifest = p.existing.manifest if p.existing is not None else read_run(run_dir).manifest
    atomic.remove_partials(run_dir)  # e.g. an adapter folder cut short by a crash
    from orgtune.train.checkpoints import last_checkpoint
    from orgtune.train.metrics import truncate_metrics

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


def finish_run(
    run_dir: Path,
    trainer,
    tok,
    manifest: dict,
    info: dict,
    *,
    summary: dict,
    tensorboard: bool,
    adapters: list[str] | None = None,
) -> None:
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
        status="complete",
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        device=info["device"],
        dtype=info["dtype"],
        adapter_sha256=sha256_file(run_dir / "adapter" / "adapter_model.safetensors"),
        summary=summary,
    )
    write_manifest(run_dir, manifest)
    if not tensorboard:
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
