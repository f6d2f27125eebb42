"""Settings of `orgtune service` and `orgtune worker`, from the environment (ORGTUNE_*) and flags.

ORGTUNE_DATABASE_URL=postgresql://orgtune@db/orgtune   # default: SQLite under ORGTUNE_HOME
ORGTUNE_EXECUTOR=procrastinate                          # default: local (a supervisor in the service)
ORGTUNE_BASE_MODELS='["smollm2-135m","qwen2.5-3b"]'    # what jobs may train and chat may call
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from orgtune.home import home


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORGTUNE_", extra="ignore")

    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the service folder.")
    service_dir: Path | None = Field(
        None,
        description="Files, jobs and the SQLite store (default ORGTUNE_HOME/service); "
        "workers on other machines must see the same folder.",
    )
    executor: Literal["local", "procrastinate"] = Field(
        "local", description="local: this service runs jobs as subprocesses; procrastinate: `orgtune worker`s do."
    )
    slots: int | None = Field(None, ge=1, description="Jobs at once (local executor): default one per GPU, 1 on CPU.")
    base_models: list[str] = Field(
        default_factory=lambda: ["smollm2-135m"],
        description="Base models jobs may train and /v1/chat/completions serves.",
    )
    model_paths: list[Path] = Field(
        default_factory=list, description="Folders under which a local model folder may be named as `model`."
    )
    device: str = Field("auto", description="Device for serving fine-tuned models in this process.")
    heartbeat_interval: float = Field(5.0, gt=0, description="Seconds between a running job's heartbeats.")
    heartbeat_timeout: float = Field(60.0, gt=0, description="A job whose runner is silent this long is taken over.")
    max_attempts: int = Field(3, ge=1, description="Runs of one job (worker lost or crashed) before it fails.")
    max_upload_mb: float = Field(512, gt=0, description="Largest file a POST /v1/files may upload.")
    archive_max_entries: int = Field(2000, ge=1)
    archive_max_mb: float = Field(512, gt=0, description="Largest total decompressed size of an archive.")
    poll_interval: float = Field(0.5, gt=0, description="How often the local supervisor looks for work.")
    nightly_tick: float = Field(30.0, gt=0, description="How often the nightly scheduler looks for due nights.")
    cancel_wait: float = Field(10.0, ge=0, description="Seconds POST …/cancel waits for a running job to stop.")

    @property
    def root(self) -> Path:
        return Path(self.service_dir) if self.service_dir else home() / "service"

    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.root / 'orgtune.db'}"

    def files_dir(self) -> Path:
        return self.root / "files"

    def jobs_dir(self) -> Path:
        return self.root / "jobs"
