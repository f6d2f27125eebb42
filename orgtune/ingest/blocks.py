"""The document model every reader produces: normalised text plus a block tree with exact spans.

    b = DocBuilder()
    b.heading("Specifications", level=1)
    b.kv("Brew pressure", "8.5 bar")
    b.steps(["Fill the tank.", "Press Start."])
    b.table([["Setting", "Default"], ["Temperature", "93 C"]], header=True)
    doc = b.build(path=Path("manual.md"), raw=bytes_of_file, fmt="md")
    doc.text[blk.start:blk.end]            # every span slices the normalised text exactly

Readers never compute offsets themselves: they hand the builder pieces in reading order, and the
builder writes the text (blocks separated by a blank line, items and table rows by a newline) and
records `[start, end)` spans for blocks, list items, table cells and key/value parts, plus the
heading path of each block.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

Span = tuple[int, int]
KINDS = ("heading", "paragraph", "list", "steps", "table", "kv", "code")

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalise(text: str) -> str:
    """NFC, no control characters, runs of blanks → one space, trimmed; newlines → spaces."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text.replace("\r", " ").replace("\n", " "))
    return _SPACES.sub(" ", text).strip()


@dataclass
class Block:
    kind: str
    start: int
    end: int
    heading_path: list[str]
    level: int | None = None  # headings: 1 = top
    items: list[Span] | None = None  # list / steps: one span per item (marker excluded)
    rows: list[list[Span]] | None = None  # table: cell spans per row
    header: bool = False  # table: first row is a header
    key: Span | None = None  # kv
    value: Span | None = None  # kv

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}

    @staticmethod
    def from_dict(d: dict) -> Block:
        d = dict(d)
        for k in ("items",):
            if d.get(k) is not None:
                d[k] = [tuple(s) for s in d[k]]
        if d.get("rows") is not None:
            d["rows"] = [[tuple(c) for c in row] for row in d["rows"]]
        for k in ("key", "value"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return Block(**d)


@dataclass
class Document:
    doc_id: str  # sha256 of the file's bytes
    path: str
    format: str
    title: str
    text: str
    blocks: list[Block] = field(default_factory=list)

    def span_text(self, span: Span) -> str:
        return self.text[span[0] : span[1]]

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "path": self.path,
            "format": self.format,
            "title": self.title,
            "text": self.text,
            "blocks": [b.to_dict() for b in self.blocks],
        }

    @staticmethod
    def from_dict(d: dict) -> Document:
        return Document(
            doc_id=d["doc_id"],
            path=d["path"],
            format=d["format"],
            title=d["title"],
            text=d["text"],
            blocks=[Block.from_dict(b) for b in d["blocks"]],
        )


class DocBuilder:
    """Collects blocks in reading order and writes the normalised text with exact spans."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._len = 0
        self.blocks: list[Block] = []
        self._headings: list[tuple[int, str]] = []  # (level, text) of the open headings

    # -- text writing -------------------------------------------------------------------------
    def _write(self, s: str) -> Span:
        start = self._len
        self._parts.append(s)
        self._len += len(s)
        return start, self._len

    def _begin_block(self) -> int:
        if self._len:
            self._write("\n\n")
        return self._len

    def _path(self) -> list[str]:
        return [t for _, t in self._headings]

    # -- blocks -------------------------------------------------------------------------------
    def heading(self, text: str, level: int) -> None:
        text = normalise(text)
        if not text:
            return
        level = max(1, int(level))
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        start = self._begin_block()
        self._write(text)
        self.blocks.append(Block("heading", start, self._len, self._path(), level=level))
        self._headings.append((level, text))

    def paragraph(self, text: str) -> None:
        text = normalise(text)
        if text:
            start = self._begin_block()
            self._write(text)
            self.blocks.append(Block("paragraph", start, self._len, self._path()))

    def code(self, text: str) -> None:
        text = "\n".join(line.rstrip() for line in text.replace("\r", "").strip("\n").split("\n"))
        if text.strip():
            start = self._begin_block()
            self._write(text)
            self.blocks.append(Block("code", start, self._len, self._path()))

    def _items(self, kind: str, items: list[str], marker) -> None:
        items = [normalise(i) for i in items]
        items = [i for i in items if i]
        if not items:
            return
        start = self._begin_block()
        spans = []
        for n, item in enumerate(items, 1):
            if n > 1:
                self._write("\n")
            self._write(marker(n))
            spans.append(self._write(item))
        self.blocks.append(Block(kind, start, self._len, self._path(), items=spans))

    def bullets(self, items: list[str]) -> None:
        self._items("list", items, lambda n: "- ")

    def steps(self, items: list[str]) -> None:
        self._items("steps", items, lambda n: f"{n}. ")

    def table(self, rows: list[list[str]], header: bool = True) -> None:
        rows = [[normalise(c) for c in row] for row in rows]
        rows = [row for row in rows if any(row)]
        if not rows:
            return
        start = self._begin_block()
        spans: list[list[Span]] = []
        for r, row in enumerate(rows):
            if r:
                self._write("\n")
            cells = []
            for c, cell in enumerate(row):
                if c:
                    self._write(" | ")
                cells.append(self._write(cell))
            spans.append(cells)
        self.blocks.append(Block("table", start, self._len, self._path(), rows=spans, header=header))

    def kv(self, key: str, value: str, sep: str = ": ") -> None:
        key, value = normalise(key), normalise(value)
        if not key or not value:
            return self.paragraph(f"{key}{sep}{value}")
        start = self._begin_block()
        k = self._write(key)
        self._write(sep)
        v = self._write(value)
        self.blocks.append(Block("kv", start, self._len, self._path(), key=k, value=v))

    # -- result -------------------------------------------------------------------------------
    def build(self, *, path: Path, raw: bytes, fmt: str, title: str | None = None) -> Document:
        text = "".join(self._parts)
        if title is None:
            first = next((b for b in self.blocks if b.kind == "heading"), None)
            title = text[first.start : first.end] if first else Path(path).stem
        return Document(
            doc_id=hashlib.sha256(raw).hexdigest(),
            path=str(path),
            format=fmt,
            title=normalise(title),
            text=text,
            blocks=self.blocks,
        )


_KV = re.compile(
    r"^(?P<key>[A-Za-z][^:=\u2014\u2013]{0,60}?)\s*"
    r"(?::(?=\s)|\s[\u2014\u2013]\s|\s-{1,2}\s|\s*\.{3,}\s*|\s*=\s*)\s*(?P<value>\S.{0,120})$"
)


def split_kv(line: str) -> tuple[str, str] | None:
    """'Tire pressure: 35 psi' / 'Torque — 110 N·m' / 'Fuse F12 .... Horn' → (key, value), else None.

    Only short lines whose key is a few words and not a sentence qualify."""
    line = normalise(line)
    m = _KV.match(line)
    if not m:
        return None
    key, value = m.group("key").strip(), m.group("value").strip()
    if len(key.split()) > 8 or key.endswith((".", "?", "!")) or value.endswith(":"):
        return None
    if re.search(r"https?$", key, re.I):  # 'http://...' is not a key
        return None
    return key, value
