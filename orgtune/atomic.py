"""Atomic writes: nothing half-written is ever visible under its final name.

Files are written to a temporary sibling and renamed; folders are built under a `.partial-` name,
get a completion marker, and are renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

COMPLETE_MARKER = "COMPLETE"
PARTIAL_PREFIX = ".partial-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def building_folder(final: Path, *, replace: bool = False, marker: bool = True) -> Iterator[Path]:
    """Yield a staging folder; on success mark it complete (unless `marker` is False) and rename it to `final`.

    On any exception the staging folder is removed and `final` is untouched. With `replace`, an
    existing `final` is swapped out only after the new folder is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A unique staging name, so that two processes building the same folder never share one.
    staging = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{final.name}-", dir=final.parent))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        if marker:
            (staging / COMPLETE_MARKER).write_text("ok\n")
        _fsync_dir(staging)
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} already exists")
            old = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}old-{final.name}-", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_partials(parent: Path) -> list[Path]:
    """Delete folders left by an interrupted `building_folder` under `parent`; return what was removed."""
    removed = []
    parent = Path(parent)
    if parent.is_dir():
        for p in parent.iterdir():
            if p.name.startswith(PARTIAL_PREFIX):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
