"""PDF reader (pdfplumber): ruled tables, font-size/bold headings, then the text.py line rules.

    b = DocBuilder()
    read_pdf(Path("manual.pdf").read_bytes(), b)
    doc = b.build(path=Path("manual.pdf"), raw=Path("manual.pdf").read_bytes(), fmt="pdf")

Per page, tables found by `page.find_tables()` are emitted as tables in reading order (top to bottom);
the text outside them is read as lines with their font size. A line is a heading when its size is
clearly above the document's body size (levels by size, largest = 1), or when it is short, bold and
the body is not. The lines between headings and tables are grouped into blocks at vertical gaps and
classified by `text.emit_blocks` (bullets, steps, key/value, paragraphs). Text repeated in the top or
bottom margin of most pages (running headers/footers) and bare page numbers there are dropped.
Raises ValueError for an encrypted or unreadable file. (Title metadata is ignored: producers fill it
with file names like "Microsoft Word - draft3.docx"; the first heading is the title.)
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass

import pdfplumber
from pdfminer.pdfdocument import PDFEncryptionError

from orgtune.ingest.blocks import DocBuilder, normalise, split_kv
from orgtune.ingest.text import BULLET, STEP, emit_blocks, heading_level

MARGIN_BAND = 0.1  # top/bottom fraction of a page where running headers and footers live
HEADING_RATIO = 1.15  # a heading's font is at least this much larger than the body's
_BOLD = re.compile(r"bold|black|heavy", re.I)
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?[-\u2013(]?\s*#\s*[-\u2013)]?(?:\s*(?:/|of)\s*#)?$", re.I)


@dataclass
class _Line:
    page: int
    top: float
    bottom: float
    x0: float
    text: str
    size: float
    bold: bool
    band: bool  # inside the top or bottom margin band


def _page_lines(page, n: int, boxes: list[tuple]) -> list[_Line]:
    def outside(obj) -> bool:
        if obj.get("object_type") != "char":
            return True
        cx, cy = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= cx <= x1 and top <= cy <= bottom for x0, top, x1, bottom in boxes)

    src = page.filter(outside) if boxes else page
    lines = []
    for raw in src.extract_text_lines(return_chars=True, strip=True):
        chars = [c for c in raw["chars"] if c["text"].strip()]
        text = normalise(raw["text"])
        if not chars or not text:
            continue
        sizes = sorted(c["size"] for c in chars)
        bold = sum(bool(_BOLD.search(c.get("fontname", ""))) for c in chars) * 2 > len(chars)
        band = raw["top"] < page.height * MARGIN_BAND or raw["bottom"] > page.height * (1 - MARGIN_BAND)
        lines.append(
            _Line(n, raw["top"], raw["bottom"], raw["x0"], text, round(sizes[len(sizes) // 2] * 2) / 2, bold, band)
        )
    return lines


def _drop_furniture(lines: list[_Line], pages: int, body: float) -> list[_Line]:
    """Drop running headers/footers (same text, digits aside, in the margin of most pages) and page numbers.

    Lines in a heading-sized font are kept: "Section 3" atop each page is a heading, not furniture."""
    key = {id(ln): re.sub(r"\d+", "#", ln.text.lower()) for ln in lines}
    band = [ln for ln in lines if ln.band and ln.size < body * HEADING_RATIO]
    on_pages = Counter(k for k, _ in {(key[id(ln)], ln.page) for ln in band})
    repeated = {k for k, c in on_pages.items() if pages >= 2 and c >= max(2, pages / 2)}
    drop = {id(ln) for ln in band if key[id(ln)] in repeated or _PAGE_NUMBER.match(key[id(ln)])}
    return [ln for ln in lines if id(ln) not in drop]


def _weighted_median(weights: Counter) -> float:
    total, acc = sum(weights.values()), 0
    for value in sorted(weights):
        acc += weights[value]
        if acc * 2 >= total:
            return value
    return 0.0


def _is_heading(ln: _Line, body: float, body_bold: bool) -> bool:
    words = len(ln.text.split())
    if not any(c.isalpha() for c in ln.text) or ln.text.endswith((".", ",", ";")) or words > 15:
        return False
    if BULLET.match(ln.text) or (STEP.match(ln.text) and heading_level(ln.text) is None):
        return False
    if ln.size >= body * HEADING_RATIO:
        return True
    return ln.bold and not body_bold and words <= 10 and not ln.text.endswith(":") and split_kv(ln.text) is None


def _encrypted(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, PDFEncryptionError) or any(isinstance(a, PDFEncryptionError) for a in exc.args):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _events(data: bytes) -> tuple[list[tuple], float, int]:
    """(page, top, kind, payload) in reading order, the vertical gap that separates paragraphs and the
    number of heading font sizes."""
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            lines: list[_Line] = []
            tables: list[tuple] = []
            for n, page in enumerate(pdf.pages):
                found = page.find_tables()
                for t in found:
                    tables.append((n, t.bbox[1], "table", [[c or "" for c in row] for row in t.extract()]))
                lines += _page_lines(page, n, [t.bbox for t in found])
            pages = len(pdf.pages)
    except Exception as e:
        if _encrypted(e):
            raise ValueError("encrypted PDF (password required); decrypt it first, e.g. qpdf --decrypt") from None
        inner = e.args[0] if e.args and isinstance(e.args[0], Exception) else e  # pdfplumber wraps pdfminer's
        raise ValueError(f"unreadable PDF ({type(inner).__name__})") from None
    sizes: Counter = Counter()
    for ln in lines:
        sizes[ln.size] += len(ln.text)
    body = _weighted_median(sizes)
    lines = _drop_furniture(lines, pages, body)
    body_bold = sum(len(ln.text) for ln in lines if ln.bold) * 2 > sum(len(ln.text) for ln in lines)
    heads = {id(ln) for ln in lines if _is_heading(ln, body, body_bold)}
    ranks = sorted({ln.size for ln in lines if id(ln) in heads and ln.size >= body * HEADING_RATIO}, reverse=True)
    events = list(tables)
    for ln in lines:
        if id(ln) in heads:
            level = ranks.index(ln.size) + 1 if ln.size in ranks else len(ranks) + 1
            events.append((ln.page, ln.top, "heading", (ln, min(level, 6))))
        else:
            events.append((ln.page, ln.top, "line", ln))
    events.sort(key=lambda e: (e[0], e[1]))
    gaps = sorted(
        b.top - a.bottom
        for a, b in zip(lines, lines[1:], strict=False)
        if a.page == b.page and id(a) not in heads and id(b) not in heads and b.top > a.bottom
    )
    line_gap = gaps[len(gaps) // 4] if gaps else 0.0
    return events, line_gap + 0.4 * body, len(ranks)


def read_pdf(data: bytes, b: DocBuilder) -> None:
    """Append the blocks of a PDF to `b`; raises ValueError for an encrypted or unreadable PDF."""
    events, para_gap, font_levels = _events(data)
    blocks: list[list[str]] = []
    block_x0 = 0.0  # left edge of the current block's first line; further-right lines are indented
    prev: _Line | None = None  # the previous body line
    heading: tuple[_Line, int, str] | None = None  # pending heading: last line, level, text

    def flush() -> None:
        nonlocal heading, prev
        if heading:
            b.heading(heading[2], heading[1])
            heading = None
        if blocks:
            emit_blocks(blocks, b, heading_offset=font_levels)  # ALL-CAPS lines sit under font headings
            blocks.clear()
        prev = None

    for _, _, kind, payload in events:
        if kind == "heading":
            ln, level = payload
            if (
                heading
                and ln.page == heading[0].page
                and ln.size == heading[0].size
                and ln.top - heading[0].bottom < 0.6 * ln.size
            ):
                heading = (ln, level, heading[2] + " " + ln.text)  # a heading wrapped over two lines
            else:
                flush()
                heading = (ln, level, ln.text)
            continue
        if heading or kind == "table":
            flush()
        if kind == "table":
            b.table(payload, header=True)
            continue
        ln: _Line = payload
        new_page = prev is not None and ln.page != prev.page
        if (
            prev is None
            or (new_page and (prev.text.endswith((".", ":", "!", "?")) or not ln.text[:1].islower()))
            or (not new_page and ln.top - prev.bottom > para_gap)
        ):
            blocks.append([])
            block_x0 = ln.x0
        indent = "  " if ln.x0 - block_x0 > 0.8 * ln.size else ""
        blocks[-1].append(indent + ln.text)
        prev = ln
    flush()
