"""The ingest stage's entry: find the supported files under some paths and read each into a Document.

    docs, skipped = ingest([Path("manuals/"), Path("faq.md")], max_bytes=20 * 2**20)
    for s in skipped:
        print(f"skipped {s.path}: {s.reason}")
    doc = read_document(Path("manual.pdf"))      # one file; raises IngestError(reason) if unreadable

A bad file never stops the stage: `ingest` reports it as Skipped with a one-line reason that says what
to do, and goes on. Identical files (same sha256) are read once.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from orgtune.errors import OrgtuneError
from orgtune.ingest.blocks import DocBuilder, Document
from orgtune.ingest.docx import read_docx
from orgtune.ingest.html import read_html
from orgtune.ingest.markdown import read_markdown
from orgtune.ingest.pdf import read_pdf
from orgtune.ingest.text import read_text

SUFFIXES = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
MAX_BYTES = 20 * 2**20
_TEXT_READERS = {"txt": read_text, "md": read_markdown, "html": read_html}


class IngestError(OrgtuneError):
    """A file that cannot be ingested; `str(err)` is the one-line reason."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class Skipped:
    path: str
    reason: str


def _walk(root: Path) -> list[Path]:
    """Files under `root`, sorted; hidden files and folders are not entered, symlinked folders not followed."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder) / n for n in names if not n.startswith(".")]
    return sorted(p for p in found if p.is_file())


def find_files(inputs: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Supported files among `inputs` (folders searched recursively, sorted, hidden entries skipped)."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for root in map(Path, inputs):
        if root.is_dir():
            candidates = _walk(root)
        elif root.is_file():
            candidates = [root]
        else:
            skipped.append(Skipped(str(root), "not found"))
            continue
        for path in candidates:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if path.suffix.lower() in SUFFIXES:
                files.append(path)
            else:
                skipped.append(Skipped(str(path), f"unsupported type {path.suffix.lower() or '(no suffix)'}"))
    return files, skipped


def _size(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n / 2**10:.1f} KB" if n >= 2**10 else f"{n} bytes"


def _limit(n: int) -> str:
    return f"{n // 2**20} MB" if n >= 2**20 and n % 2**20 == 0 else _size(n)


def _load(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; its size is checked before anything is read."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise IngestError(f"{_size(size)} is over the {_limit(max_bytes)} limit (raise --max-file-mb)")
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as e:
        raise IngestError(f"cannot read it ({e.strerror or type(e).__name__})") from None
    if len(raw) > max_bytes:
        raise IngestError(f"over the {_limit(max_bytes)} limit (raise --max-file-mb)")
    if not raw.strip():
        raise IngestError("empty file")
    return raw


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError("UTF-16 text, not UTF-8; convert it with iconv -f utf-16 -t utf-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise IngestError(
            f"not UTF-8 (first bad byte 0x{raw[e.start]:02x} on line {line}); convert it with iconv -f cp1252 -t utf-8"
        ) from None
    if "\x00" in text[:8192]:
        raise IngestError("binary data, not text (NUL bytes)")
    return text


def _check_container(raw: bytes, fmt: str) -> None:
    if fmt == "pdf" and b"%PDF" not in raw[:1024]:
        raise IngestError("not a PDF (no %PDF header)")
    if fmt == "docx":
        if raw.startswith(b"\xd0\xcf\x11\xe0"):
            raise IngestError("a legacy .doc or password-protected Office file, not .docx; save it as .docx")
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as z:
                infos = z.infolist()
        except Exception:  # BadZipFile, or a corrupt archive failing in some other way
            raise IngestError("not a .docx (not a zip archive)") from None
        if "word/document.xml" not in {i.filename for i in infos}:
            raise IngestError("not a .docx (no word/document.xml in the zip)")
        check_zip(infos)


MAX_ZIP_ENTRIES = 5000  # a long report with many images has a few hundred
MAX_UNZIPPED = 64 * 2**20  # what the parts of one zip-based document may inflate to, together
MAX_ZIP_RATIO = 200  # a part this much larger than its compressed bytes is a bomb (Word's XML: about 10×)


def check_zip(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse a zip-based document (.docx) whose parts would inflate past the caps, before any part is read.
    The sizes are the zip's own headers; zipfile stops at the declared size and checks the CRC, so a part
    cannot inflate to more than its header says."""
    if len(infos) > MAX_ZIP_ENTRIES:
        raise IngestError(f"a zip with {len(infos)} parts (at most {MAX_ZIP_ENTRIES}); not a document a person wrote")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNZIPPED:
        raise IngestError(
            f"its parts inflate to {_size(total)} (at most {_limit(MAX_UNZIPPED)}): a zip bomb, "
            "or a document to split into smaller ones"
        )
    for i in infos:
        if i.file_size > 2**20 and i.file_size > MAX_ZIP_RATIO * max(i.compress_size, 1):
            raise IngestError(
                f"part {i.filename} inflates {i.file_size // max(i.compress_size, 1)}× "
                f"({_size(i.compress_size)} → {_size(i.file_size)}): a zip bomb, not a document"
            )


def _parse(path: Path, raw: bytes) -> Document:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(f"unsupported type {path.suffix.lower() or '(no suffix)'}")
    _check_container(raw, fmt)
    b = DocBuilder()
    try:
        if fmt in _TEXT_READERS:
            title = _TEXT_READERS[fmt](_decode(raw), b)
        elif fmt == "pdf":
            title = read_pdf(raw, b)
        else:
            title = read_docx(raw, b)
    except IngestError:
        raise
    except ValueError as e:
        raise IngestError(str(e).splitlines()[0] if str(e) else f"cannot parse {fmt}") from None
    except Exception as e:  # a parser bug or a malformed file: a short reason, never a traceback
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise IngestError(f"cannot parse {fmt} ({type(e).__name__}{': ' + detail if detail else ''})") from None
    doc = b.build(path=path, raw=raw, fmt=fmt, title=title)
    if not doc.text.strip():
        raise IngestError("no text found (scanned PDF? OCR is not supported)" if fmt == "pdf" else "no text found")
    return doc


def read_document(path: Path, *, max_bytes: int = MAX_BYTES) -> Document:
    """Read one file into a Document; raises IngestError(reason) if it cannot be read."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise IngestError(f"unsupported type {path.suffix.lower() or '(no suffix)'}")
    return _parse(path, _load(path, max_bytes))


def ingest(inputs: list[Path], *, max_bytes: int = MAX_BYTES) -> tuple[list[Document], list[Skipped]]:
    """Read every supported file under `inputs`; bad files and duplicates are Skipped, never raised."""
    files, skipped = find_files(inputs)
    docs: list[Document] = []
    first: dict[str, str] = {}  # sha256 → path of the first file with those bytes
    for path in files:
        try:
            raw = _load(path, max_bytes)
            digest = hashlib.sha256(raw).hexdigest()
            if digest in first:
                skipped.append(Skipped(str(path), f"duplicate of {first[digest]}"))
                continue
            docs.append(_parse(path, raw))
            first[digest] = str(path)
        except IngestError as e:
            skipped.append(Skipped(str(path), e.reason))
    return docs, skipped
