"""Uploads: tell a JSONL dataset from a document from an archive, vet an archive from its headers alone,
and extract only its documents.

    kind = detect_kind("handbook.zip", head)                  # head: the upload's first 512 bytes
    members = inspect_archive(Path(upload), ArchiveLimits())  # raises OrgtuneError on a bad archive
    files = extract_documents(Path(upload), job_dir / "docs", ArchiveLimits())

An archive is rejected, before anything is written, for: absolute or `..` member names, NUL bytes,
links, devices and other special files, too many entries, too many declared bytes (in all or in one
member), a zip member that compresses too well (a bomb), or duplicate names. Extraction writes only
documents, streams each with a hard byte count, and builds `dest` atomically (see orgtune.atomic).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from orgtune.atomic import building_folder
from orgtune.errors import OrgtuneError

DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")  # as orgtune.ingest.read
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_MAGIC = {".zip": "zip", ".docx": "zip", ".tar.gz": "gzip", ".tgz": "gzip", ".tar": "tar", ".pdf": "pdf"}
_WHAT = {"zip": "a zip archive", "gzip": "gzip data", "tar": "a tar archive", "pdf": "a PDF", None: "plain data"}
_RATIO_MIN_BYTES = 1 << 20  # the ratio check starts here: a small, repetitive file is no bomb
_CHUNK = 1 << 20
_TAR_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, NotImplementedError)
_FIX = (
    "Re-create the archive from a plain folder of documents (`zip -r docs.zip docs/` or `tar czf docs.tar.gz docs/`)."
)
_FIX_MANY = "Split it into smaller archives, or leave out files that are not documents."
_ACCEPTED = (
    f"a .jsonl dataset, a document ({' '.join(DOCUMENT_SUFFIXES)}) "
    f"or an archive of documents ({' '.join(ARCHIVE_SUFFIXES)})"
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 2000  # entries of any kind (folders too), counted while reading
    max_total_bytes: int = 512 * 2**20  # declared uncompressed size of all regular members
    max_member_bytes: int = 100 * 2**20  # declared uncompressed size of one member
    max_ratio: float = 200  # zip: uncompressed / compressed size of one member (above 1 MiB)


@dataclass(frozen=True)
class Member:
    name: str  # normalised relative posix path
    size: int  # declared uncompressed bytes
    is_document: bool  # False: kept out of extraction (images, .DS_Store, __MACOSX/, hidden files)


def detect_kind(filename: str, head: bytes) -> str:
    """ "jsonl", "document" or "archive", from the extension, confirmed by the magic bytes in `head`."""
    lower = filename.lower()
    suffix = ".tar.gz" if lower.endswith(".tar.gz") else os.path.splitext(lower)[1]
    kind = (
        "jsonl"
        if suffix == ".jsonl"
        else "document"
        if suffix in DOCUMENT_SUFFIXES
        else "archive"
        if suffix in ARCHIVE_SUFFIXES
        else None
    )
    if kind is None:
        raise OrgtuneError(
            f"{filename}: {suffix or 'a name without an extension'} is not an accepted upload",
            fix=f"Upload {_ACCEPTED}.",
        )
    expected, found = _MAGIC.get(suffix), _sniff(head)
    if found != expected:
        raise OrgtuneError(
            f"{filename}: the name says {suffix} but the content is {_WHAT[found]}",
            fix=f"Rename the file to match what it is, or export it again as {suffix}.",
        )
    return kind


def inspect_archive(path: Path, limits: ArchiveLimits) -> list[Member]:
    """The archive's regular members, read from its headers only; raises OrgtuneError on anything unsafe."""
    path = Path(path)
    members: list[Member] = []
    seen: set[str] = set()
    count = total = 0
    with _entries(path, limits) as entries:
        for e in entries:
            count += 1
            if count > limits.max_entries:
                raise OrgtuneError(
                    f"{path} has more than {limits.max_entries} entries (the entry cap, "
                    f"max_entries); stopped reading at {e.raw!r}",
                    fix=_FIX_MANY,
                )
            name = _normalise(path, e.raw)
            if e.kind == "link":
                raise _reject(
                    path,
                    e.raw,
                    "is a symbolic or hard link",
                    "Archive the files themselves (`zip` without -y, `tar -h`).",
                )
            if e.kind == "special":
                raise _reject(path, e.raw, "is a device, fifo or other special file")
            if e.kind == "dir":
                continue
            if not name or name in seen:
                raise _reject(path, e.raw, "has an empty name" if not name else f"repeats the name {name!r}")
            seen.add(name)
            if e.size > limits.max_member_bytes:
                raise _reject(
                    path,
                    e.raw,
                    f"declares {e.size} bytes, over the {limits.max_member_bytes} bytes "
                    "allowed per member (max_member_bytes)",
                    "Split or shrink that file.",
                )
            total += e.size
            if total > limits.max_total_bytes:
                raise _reject(
                    path,
                    e.raw,
                    f"brings the archive's declared size to {total} bytes, over "
                    f"{limits.max_total_bytes} (max_total_bytes)",
                    "Split it into smaller archives.",
                )
            if e.packed is not None and e.size > _RATIO_MIN_BYTES and e.size > limits.max_ratio * max(e.packed, 1):
                raise _reject(
                    path,
                    e.raw,
                    f"compresses {e.size} bytes into {e.packed}, a ratio over "
                    f"{limits.max_ratio:g} (max_ratio): a zip bomb",
                    "Upload the real documents.",
                )
            members.append(Member(name, e.size, _is_document(name)))
            if e.encrypted and members[-1].is_document:
                raise _reject(path, e.raw, "is encrypted", "Upload an archive without a password.")
    for m in members:  # a file "a.md" and a file "a.md/b.txt" cannot both be written
        if clash := next((str(p) for p in PurePosixPath(m.name).parents if str(p) in seen), None):
            raise _reject(path, m.name, f"needs a folder {clash!r}, which is also a file in the archive")
    if not any(m.is_document for m in members):
        raise OrgtuneError(
            f"{path} contains no documents",
            details=[f"skipped: {m.name}" for m in members[:10]],
            fix=f"Put documents ({' '.join(DOCUMENT_SUFFIXES)}) in the archive.",
        )
    return members


def extract_documents(path: Path, dest: Path, limits: ArchiveLimits) -> list[Path]:
    """Inspect, then write the archive's documents under `dest` (created atomically); the sorted paths."""
    path, dest = Path(path), Path(dest)
    wanted = {m.name: m.size for m in inspect_archive(path, limits) if m.is_document}
    names: list[str] = []
    with building_folder(dest) as staging:
        os.chmod(staging, 0o755)
        root = staging.resolve()
        with _entries(path, limits) as entries:
            for e in entries:
                name = _normalise(path, e.raw)
                if e.kind != "file" or name not in wanted:
                    continue
                _write(path, e, root, name, wanted.pop(name))  # declared sizes are within the caps
                names.append(name)
        if wanted:
            raise OrgtuneError(
                f"{path} changed while it was being extracted: {sorted(wanted)[0]!r} is gone",
                fix="Upload the archive again.",
            )
    return sorted(dest / n for n in names)


@dataclass(frozen=True)
class _Entry:
    raw: str  # the name as stored (zip: before zipfile cuts it at a NUL byte)
    kind: str  # "file" | "dir" | "link" | "special"
    size: int
    open: Callable[[], IO[bytes]]
    packed: int | None = None  # zip: compressed size
    encrypted: bool = False


@contextlib.contextmanager
def _entries(path: Path, limits: ArchiveLimits) -> Iterator[Iterator[_Entry]]:
    """The archive's entries, one by one (tar is streamed); read errors become an OrgtuneError."""
    with open(path, "rb") as f:
        fmt = _sniff(f.read(512))
    try:
        if fmt == "zip":
            declared = _zip_declared_entries(path)
            if declared is not None and declared > limits.max_entries:
                raise OrgtuneError(
                    f"{path} declares {declared} entries, more than {limits.max_entries} (the entry cap, max_entries)",
                    fix=_FIX_MANY,
                )
            with zipfile.ZipFile(path) as zf:
                yield _zip_entries(zf)
        elif fmt in ("gzip", "tar"):
            with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) if fmt == "gzip" else raw as data:
                capped = _CappedReader(data, limits.max_total_bytes + 8192 * (limits.max_entries + 2), path)
                with tarfile.open(fileobj=capped, mode="r|") as tf:
                    yield _tar_entries(tf)
        else:
            raise OrgtuneError(f"{path} is not a zip, tar or tar.gz archive", fix=f"Upload {_ACCEPTED}.")
    except _READ_ERRORS as e:
        raise OrgtuneError(f"{path} could not be read as {_WHAT[fmt]}: {e}", fix=_FIX) from e


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        fmt = stat.S_IFMT(info.external_attr >> 16)
        kind = (
            "link"
            if fmt == stat.S_IFLNK
            else "dir"
            if info.is_dir() or fmt == stat.S_IFDIR
            else "file"
            if fmt in (0, stat.S_IFREG)
            else "special"
        )
        yield _Entry(
            info.orig_filename,
            kind,
            info.file_size,
            partial(zf.open, info),
            info.compress_size,
            bool(info.flag_bits & 0x1),
        )


def _tar_entries(tf: tarfile.TarFile) -> Iterator[_Entry]:
    for info in tf:
        kind = (
            "link"
            if info.issym() or info.islnk()
            else "dir"
            if info.isdir()
            else "file"
            if info.type in _TAR_REGULAR
            else "special"
        )
        yield _Entry(info.name, kind, info.size, partial(tf.extractfile, info))


def _zip_declared_entries(path: Path) -> int | None:
    """The entry count in the end-of-central-directory record, read before zipfile parses every entry."""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 65_557))
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    return struct.unpack_from("<H", tail, at + 10)[0] if 0 <= at <= len(tail) - 22 else None


class _CappedReader:
    """Fails once `cap` bytes have come out, so that neither a gzip bomb nor a huge pax header reaches memory."""

    def __init__(self, f: IO[bytes], cap: int, archive: Path):
        self.f, self.left, self.archive = f, cap, archive

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(self.left + 1 if n < 0 else min(n, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise OrgtuneError(f"{self.archive} holds more data than its headers allow (max_total_bytes)", fix=_FIX)
        return data


def _write(archive: Path, e: _Entry, root: Path, name: str, declared: int) -> None:
    """Stream one member to root/name (mode 0644), failing as soon as it yields more than `declared` bytes."""
    target = (root / name).resolve()
    if target == root or not target.is_relative_to(root):
        raise _reject(archive, e.raw, "would be written outside the destination folder")
    folder = root
    for part in target.parent.relative_to(root).parts:
        folder = folder / part
        if not folder.is_dir():
            folder.mkdir()
            os.chmod(folder, 0o755)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.fchmod(fd, 0o644)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, e.open() as src:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > declared:
                    raise _reject(archive, e.raw, f"decompresses to more than the {declared} bytes it declares")
                out.write(chunk)
    except _READ_ERRORS as err:
        raise _reject(archive, e.raw, f"could not be decompressed: {err}") from err
    if written != declared:
        raise _reject(archive, e.raw, f"holds {written} bytes but its header declares {declared}")


def _normalise(archive: Path, raw: str) -> str:
    """`raw` as a relative posix path without empty or "." parts; raises on NUL, absolute or ".." names."""
    if "\x00" in raw:
        raise _reject(archive, raw, "contains a NUL byte")
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise _reject(archive, raw, "is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _reject(archive, raw, "climbs out of the archive with '..'")
    return "/".join(parts)


def _is_document(name: str) -> bool:
    parts = name.split("/")
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    return not hidden and os.path.splitext(parts[-1].lower())[1] in DOCUMENT_SUFFIXES


def _sniff(head: bytes) -> str | None:
    magic = {b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"%PDF": "pdf"}.get(head[:4])  # PK 5 6: an empty zip
    return magic or ("gzip" if head[:2] == b"\x1f\x8b" else "tar" if head[257:262] == b"ustar" else None)


def _reject(archive: Path, member: str, problem: str, fix: str = _FIX) -> OrgtuneError:
    return OrgtuneError(f"{archive}: member {member!r} {problem}", fix=fix)
