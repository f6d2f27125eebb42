"""One process at a time in a folder: an flock on FOLDER/.lock, held while a run trains into it.

    with hold(run_dir):      # OrgtuneError at once, naming the holder's pid, if another process holds it
        ...                  # nothing in run_dir is touched before this point

The kernel drops an flock when its process dies, so a killed run leaves no stale lock; the pid written
into the file only names the holder in the error. A folder that `hold` had to create, and that still
holds nothing but the lock when the block ends, is removed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from orgtune.errors import OrgtuneError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def hold(folder: Path, what: str = "orgtune train") -> Iterator[Path]:
    """Hold `folder`'s lock for the block (or until the process dies); yields the lock file's path."""
    folder = Path(folder)
    created = not folder.exists()
    fd = _acquire(folder, what)
    try:
        yield folder / LOCK_NAME
    finally:
        with contextlib.suppress(OSError):  # unlinked while still held: whoever opened it meanwhile starts over
            if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                (folder / LOCK_NAME).unlink()
                folder.rmdir()
        os.close(fd)


def carry(folder: Path, replacement: Path) -> None:
    """Link the lock file into a folder about to replace `folder`: the same file, so the lock stays held."""
    if (folder / LOCK_NAME).is_file():
        os.link(folder / LOCK_NAME, replacement / LOCK_NAME)


def _acquire(folder: Path, what: str) -> int:
    path = folder / LOCK_NAME
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise OrgtuneError(
                f"{folder} is in use: another {what} (pid {pid}) is running in it",
                fix=f"wait for it to finish, or kill {pid}; then run this command again (it resumes)",
                details=[f"lock file: {path}"],
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # the file was removed or replaced after we opened it: lock the current one


def _holder(fd: int) -> str:
    """The pid the holder wrote (it may be a moment behind its flock)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return text
        time.sleep(0.05)
    return "unknown"
