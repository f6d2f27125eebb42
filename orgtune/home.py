"""Where orgtune keeps its state: one home folder, `ORGTUNE_HOME` (default ~/.cache/orgtune); and how many CPU
threads it may use."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("ORGTUNE_HOME") or Path.home() / ".cache" / "orgtune").expanduser()


def models_dir() -> Path:
    """Cached model folders (the embedded model's safetensors copy lives here)."""
    return home() / "models"


def cpu_threads() -> int:
    """Threads for llama.cpp's CPU work: OMP_NUM_THREADS when set (as torch honours it, so that processes sharing
    a machine split its cores), else the cores this process may run on."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS") or 0)
    except ValueError:
        n = 0
    return n if n > 0 else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
