"""Atomic writes: nothing half-written is ever visible under its final name.

Files are written to a temporary sibling and renamed; folders are built under a `.partial-` name,
get a completion marker, and are renamed into place. A folder's files are fsynced before its marker is
written, so a marker never outlives the data it vouches for; with `checksums` the marker records each
file's size and sha256, and `verify` checks them. Replacing a folder swaps old and new in one step
(renameat2 RENAME_EXCHANGE) where the system can; elsewhere the old folder is set aside under a
`.replaced-` name that `remove_partials` puts back if a crash left no folder under the final name.
Append-only logs (`append_jsonl`) add whole lines; `read_jsonl_appended` skips a last line a kill cut.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orgtune.errors import OrgtuneError

COMPLETE_MARKER = "COMPLETE"
PARTIAL_PREFIX = ".partial-"
ASIDE_PREFIX = ".replaced-"  # an old folder set aside while its replacement moves in

_crash_hook = None  # tests set a callable(name) that kills the process at a named step; None otherwise


def _crash_point(name: str) -> None:
    if _crash_hook is not None:
        _crash_hook(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}  # no space, over RLIMIT_FSIZE, over quota


def disk_full(e: BaseException, path: Path) -> OrgtuneError | None:
    """The user-facing error for a write to `path` that failed for lack of space, else None. A path inside
    a staging folder is shown under the folder's final name."""
    if not (isinstance(e, OSError) and e.errno in DISK_FULL):
        return None
    shown = Path(*(re.sub(rf"^{re.escape(PARTIAL_PREFIX)}(.+)-[^-]{{8}}$", r"\1", p) for p in Path(path).parts))
    return OrgtuneError(
        f"{shown}: cannot write it, the disk is full ({e.strerror})",
        fix=f"free space on the disk that holds {shown.parent} (or write to another disk), then run "
        "the command again; nothing half-written was left behind",
    )


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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if (err := disk_full(e, path)) is not None:
            raise err from None
        raise


def write_json(path: Path, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line with a single write to an O_APPEND file, then fsync: a kill leaves at most a
    cut last line, never a torn one in the middle."""
    data = (json.dumps(record) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it in one write unless the disk is full
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl_appended(path: Path) -> list[dict]:
    """The records of a file written by `append_jsonl`; a last line cut by a kill is skipped."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):  # no newline after it: the append was cut short
                continue
            raise OrgtuneError(
                f"{path}:{i}: not a JSON record ({e.msg})",
                fix="delete that line (the file is append-only; the other lines are intact)",
            ) from None
    return rows


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


def verify(folder: Path) -> str | None:
    """What is wrong with a complete folder's files against the sizes and sha256 its marker records, or
    None when they match. A marker without checksums (the older plain "ok") is taken as it is."""
    folder = Path(folder)
    marker = folder / COMPLETE_MARKER
    text = marker.read_text(encoding="utf-8", errors="replace")
    if text.strip() == "ok":
        return None
    try:
        files = {name: (int(w["size"]), str(w["sha256"])) for name, w in json.loads(text)["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"its {COMPLETE_MARKER} marker is unreadable"
    for name, (size, sha) in sorted(files.items()):
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} is {f.stat().st_size} bytes, {size} when it was written (truncated or overwritten)"
        with open(f, "rb") as fh:
            if hashlib.file_digest(fh, "sha256").hexdigest() != sha:
                return f"{name} does not match the sha256 recorded when it was written (changed on disk)"
    return None


@contextlib.contextmanager
def building_folder(
    final: Path, *, replace: bool = False, marker: bool = True, checksums: bool = False
) -> Iterator[Path]:
    """Yield a staging folder; on success fsync its files, mark it complete (unless `marker` is False;
    with `checksums` the marker records every file's size and sha256) and move it to `final`.

    On any exception the staging folder is removed and `final` is untouched. With `replace`, an
    existing `final` is swapped out only after the new folder is complete; a kill at any point leaves
    the old or the new folder under `final` (after `remove_partials(final.parent)`, which restores an
    old folder set aside when the kill came between the two renames of the fallback).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A unique staging name, so that two processes building the same folder never share one.
    staging = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{final.name}-", dir=final.parent))
    os.chmod(staging, 0o777 & ~_umask())
    try:
        yield staging
        _crash_point("written")
        files = _fsync_tree(staging, checksums)
        if marker:  # written last, after the files it vouches for are on disk
            _write_synced(
                staging / COMPLETE_MARKER, json.dumps({"files": files}, indent=1) + "\n" if checksums else "ok\n"
            )
        _fsync_dir(staging)
        _crash_point("marked")
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} already exists")
            _swap_in(staging, final)
        else:
            os.rename(staging, final)
        _fsync_dir(final.parent)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if (err := disk_full(e, final)) is not None:  # e.g. a model's save_pretrained
            raise err from None
        raise


def _swap_in(staging: Path, final: Path) -> None:
    """Put `staging` under `final`'s name and delete the old `final`, with a complete folder there throughout."""
    if _exchange(staging, final):  # one step: `staging` now names the old folder
        _fsync_dir(final.parent)
        _crash_point("swapped")
        shutil.rmtree(staging, ignore_errors=True)
        return
    aside = Path(tempfile.mkdtemp(prefix=f"{ASIDE_PREFIX}{final.name}-", dir=final.parent))
    os.rename(final, aside / final.name)
    _fsync_dir(final.parent)
    _crash_point("aside")  # no `final` now: remove_partials puts the old one back
    try:
        os.rename(staging, final)
    except BaseException:
        os.rename(aside / final.name, final)
        raise
    _fsync_dir(final.parent)
    _crash_point("swapped")
    shutil.rmtree(aside, ignore_errors=True)


def remove_partials(parent: Path) -> list[Path]:
    """Clear what an interrupted `building_folder` left under `parent`: put back an old folder set aside
    whose replacement never arrived, delete staging folders and the rest; return what was removed."""
    removed = []
    parent = Path(parent)
    if parent.is_dir():
        for p in parent.iterdir():
            if p.name.startswith(ASIDE_PREFIX) and p.is_dir():
                for old in p.iterdir():
                    if not (parent / old.name).exists():
                        os.rename(old, parent / old.name)
                        _fsync_dir(parent)
            if p.name.startswith((PARTIAL_PREFIX, ASIDE_PREFIX)):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


@functools.cache
def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28+
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where the system or filesystem can't."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _fsync_tree(folder: Path, checksums: bool) -> dict[str, dict]:
    """fsync every file and subfolder under `folder`; with `checksums`, return {relative path: size, sha256}."""
    files = {}
    for root, dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            with open(path, "rb") as f:
                if checksums:
                    files[path.relative_to(folder).as_posix()] = {
                        "size": os.fstat(f.fileno()).st_size,
                        "sha256": hashlib.file_digest(f, "sha256").hexdigest(),
                    }
                os.fsync(f.fileno())
        for name in dirs:
            _fsync_dir(Path(root) / name)
    return files


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
