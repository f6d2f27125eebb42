"""Training on several processes through torch.distributed: DDP, DeepSpeed ZeRO-2/3 or FSDP2, chosen by a
shipped strategy file (or your own), with one run folder that only rank 0 owns.

    orgtune train --data D --out R --launch 2                     # 2 local ranks, DDP (gloo on CPU, NCCL on GPUs)
    orgtune train --data D --out R --launch 8 --strategy zero3    # DeepSpeed ZeRO-3 (needs `pip install deepspeed`)
    torchrun --nnodes 2 --nproc-per-node 8 ... -m orgtune train --data D --out R --strategy fsdp2   # many nodes

`--launch N` re-runs the same command as N processes under `torch.distributed.run` (standalone
rendezvous on this machine); under torchrun (WORLD_SIZE > 1) every rank runs the same `train`. A
strategy is a JSON file of TrainingArguments fields (train/strategies/*.json: `ddp`, `zero2`, `zero3`,
`fsdp2`); a path to your own file works the same way. The global batch is per-device batch ×
gradient accumulation × ranks: two ranks with half the accumulation train what one process trains.

Rank 0 holds the run folder's lock, creates it, decides whether to resume and from which checkpoint,
and writes the manifest and metrics; every rank writes its own part of a checkpoint (its RNG state,
and under ZeRO/FSDP its shard of the weights) into the one staging folder rank 0 created, which rank
0 then marks complete and renames into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError

STRATEGIES = ("ddp", "zero2", "zero3", "fsdp2")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    """Whether this process is one rank of several (started by torchrun or `--launch`)."""
    return world_size() > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group (gloo on CPU, NCCL for CUDA tensors with gloo beside it for objects) before
    anything else, so that rank 0 can go first; accelerate and the Trainer use this group."""
    import torch
    import torch.distributed as dist

    if not active() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="cuda:nccl,cpu:gloo")
    else:
        dist.init_process_group(backend="gloo")


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def broadcast(value):
    """Rank 0's `value` on every rank (any picklable object made by orgtune itself, never user input)."""
    if not active():
        return value
    import torch.distributed as dist

    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. filling a cache), then the other ranks."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


@contextlib.contextmanager
def shared_building_folder(final: Path, **kwargs) -> Iterator[Path]:
    """`atomic.building_folder` for every rank: rank 0 creates the staging folder and tells the others its
    name; all ranks write into it; once all are done rank 0 marks it complete and renames it into place,
    and no rank leaves before the folder is there."""
    if not active():
        with atomic.building_folder(final, **kwargs) as staging:
            yield staging
        return
    if is_main():
        with atomic.building_folder(final, **kwargs) as staging:
            broadcast(str(staging))
            yield staging
            barrier()  # every rank has written its part
        barrier()  # the folder is in place
    else:
        staging = Path(broadcast(None))
        yield staging
        barrier()
        barrier()


def strategy_file(strategy: str) -> Path:
    if strategy in STRATEGIES:
        return Path(str(resources.files("orgtune.train").joinpath("strategies", f"{strategy}.json")))
    path = Path(strategy)
    if not path.is_file():
        raise OrgtuneError(
            f"--strategy {strategy}: neither a shipped strategy nor a file",
            fix=f"use one of {', '.join(STRATEGIES)}, or a JSON file of TrainingArguments fields",
        )
    return path


def strategy_args(strategy: str | None) -> dict:
    """The TrainingArguments fields of a strategy (empty when this process trains alone), checked before
    any model loads: DeepSpeed must be importable for a `deepspeed` section."""
    if strategy is None:
        strategy = "ddp"
    path = strategy_file(strategy)
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise OrgtuneError(
            f"{path}: not a readable JSON file ({e})", fix="fix the JSON, or pick a shipped strategy"
        ) from None
    if not isinstance(fields, dict):
        raise OrgtuneError(
            f"{path}: a strategy is a JSON object of TrainingArguments fields",
            fix='e.g. {"ddp_find_unused_parameters": false}',
        )
    fields.pop("_comment", None)
    if "deepspeed" in fields:
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise OrgtuneError(
                f"--strategy {strategy} needs DeepSpeed, which is not installed",
                fix="pip install deepspeed on the CUDA machines, or use --strategy ddp or fsdp2",
            )
    return fields


def sharded(fields: dict) -> bool:
    """Whether the weights are split between ranks (ZeRO-3, FSDP): saving then gathers them on every rank."""
    return bool(fields.get("fsdp")) or (fields.get("deepspeed") or {}).get("zero_optimization", {}).get("stage") == 3


def launch_command(argv: list[str], nproc: int) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m orgtune ARGV`, ARGV without --launch."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--launch":
            skip = True
        elif not a.startswith("--launch="):
            rest.append(a)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "orgtune",
        *rest,
    ]
