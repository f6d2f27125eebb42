"""A run folder describes itself: resolved config, versions, data hashes, parent adapter, status.

    runs/<id>/config.yaml      the resolved RunConfig (later steps read it, they never ask again)
    runs/<id>/manifest.json    versions, data files with sha256, lineage, status, fingerprint
    runs/<id>/metrics.jsonl    one line per logged step / evaluation
    runs/<id>/checkpoints/     checkpoint-N folders, each complete or absent
    runs/<id>/adapter/         the final adapter (safetensors + adapter_config.json), with COMPLETE

The fingerprint (config + data hashes + parent adapter) tells a re-run of the same command, which
resumes, from a different command pointed at the same folder, which is refused.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from orgtune import atomic
from orgtune.config import RunConfig, load_config
from orgtune.errors import OrgtuneError

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
    blob = json.dumps({"config": config.to_dict(), "data": sorted(data_hashes.values()),
                       "parent": parent_adapter_sha}, sort_keys=True)
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
        raise OrgtuneError(f"{path}: not an orgtune run folder (no manifest.json)",
                           fix="pass the folder given to `orgtune train --out`")
    try:
        manifest = json.loads(man.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise OrgtuneError(f"{man}:{e.lineno}: manifest is not valid JSON", fix="restore it or re-run training") from None
    return Run(path=path, config=load_config(path / "config.yaml"), manifest=manifest)


def read_complete_run(path: Path) -> Run:
    run = read_run(path)
    if not run.complete:
        raise OrgtuneError(f"{path}: the run has not finished (status {run.manifest.get('status')!r}, no complete adapter/)",
                           fix=f"finish it first: re-run the same `orgtune train ... --out {path}` command to resume")
    return run


def write_manifest(path: Path, manifest: dict) -> None:
    manifest = {**manifest, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic.write_json(Path(path) / "manifest.json", manifest)


def lineage_of(parent: Run) -> list[dict]:
    """The chain of adapters a run descends from, oldest first, ending with `parent` itself."""
    me = {"run": str(parent.path.resolve()), "adapter_sha256": parent.manifest.get("adapter_sha256"),
          "fingerprint": parent.manifest.get("fingerprint")}
    return [*parent.manifest.get("lineage", []), me]
