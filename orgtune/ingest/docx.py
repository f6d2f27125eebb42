"""Word .docx reader (python-docx): the body in order, paragraphs and tables interleaved.

    b = DocBuilder()
    title = read_docx(Path("manual.docx").read_bytes(), b)
    doc = b.build(path=Path("manual.docx"), raw=Path("manual.docx").read_bytes(), fmt="docx", title=title)

Paragraph styles decide the block: "Title" → level-1 heading (and the document title; "Heading N" then
sits at level N + 1 under it), "Heading N" → level-N heading, "List Number*" → steps, "List Bullet*" and
"List Paragraph" → bullets (consecutive paragraphs of one kind form one block), tables → tables with a
header row (merged cells are read once). Other paragraphs become key/value blocks when every line is a
short key/value line, else paragraphs. Headers, footers, footnotes and text boxes are not read.
"""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from orgtune.ingest.blocks import DocBuilder
from orgtune.ingest.text import emit_text_lines

_HEADING = re.compile(r"^heading\s*(\d)$", re.I)


def _kind(p: Paragraph) -> tuple[str, int]:
    """('title'|'heading'|'steps'|'list'|'text', level) from the paragraph's style name."""
    name = (p.style.name if p.style is not None else "") or ""
    if name.lower() == "title":
        return "title", 1
    m = _HEADING.match(name)
    if m:
        return "heading", int(m.group(1))
    if name.lower().startswith("list number"):
        return "steps", 0
    if name.lower().startswith("list bullet") or name.lower() == "list paragraph":
        return "list", 0
    return "text", 0


def _rows(table: Table) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:  # a merged cell is repeated once per grid column it spans
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(cell.text)
        rows.append(cells)
    return rows


def read_docx(data: bytes, b: DocBuilder) -> str | None:
    """Append the blocks of a .docx document to `b`; returns the Title-styled text, if any."""
    document = docx.Document(io.BytesIO(data))
    title: str | None = None
    offset = 0  # heading levels move down one under a Title paragraph
    items: list[str] = []
    items_kind = ""

    def flush() -> None:
        if items:
            (b.steps if items_kind == "steps" else b.bullets)(items)
            items.clear()

    for part in document.iter_inner_content():
        if isinstance(part, Table):
            flush()
            b.table(_rows(part), header=True)
            continue
        kind, level = _kind(part)
        text = part.text
        if not text.strip():
            continue
        if kind in ("steps", "list"):
            if kind != items_kind:
                flush()
            items_kind = kind
            items.append(text)
            continue
        flush()
        if kind == "title":
            title = title or text.strip()
            offset = 1
            b.heading(text, 1)
        elif kind == "heading":
            b.heading(text, level + offset)
        else:
            emit_text_lines([line for line in text.split("\n") if line.strip()], b)
    flush()
    return title
