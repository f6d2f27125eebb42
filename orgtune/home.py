"""Where orgtune keeps its state: one home folder, `ORGTUNE_HOME` (default ~/.cache/orgtune)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("ORGTUNE_HOME") or Path.home() / ".cache" / "orgtune").expanduser()


def models_dir() -> Path:
    """Cached model folders (the embedded model's safetensors copy lives here)."""
    return home() / "models"
