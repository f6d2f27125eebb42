"""Plain-text reader: blank-line blocks, heading heuristics, bullets, numbered steps and key/value lines.

    b = DocBuilder()
    read_text(Path("notes.txt").read_text(encoding="utf-8"), b)
    doc = b.build(path=Path("notes.txt"), raw=Path("notes.txt").read_bytes(), fmt="txt")

The line rules (`split_blocks`, `emit_blocks`, `heading_level`) are shared with the PDF reader, which
hands over the lines it found between its font-detected headings and tables.

Rules, per blank-line block:
- a line underlined by ===/--- is a heading (level 1/2); a lone `---` is a rule and is dropped;
- a short ALL-CAPS line (<= 8 words, no final period) is a level-1 heading (alone, or first in its block);
- a single-line block "2. Maintenance" / "3.1 Descaling" (no final period) is a heading whose level is
  the count of numeric parts, unless its number continues a run of steps ("1. ...", blank, "2. ...");
- when the text opens with a ===-underlined title, those two kinds move one level down, under it;
- lines starting "- ", "* ", "• " are bullets; "1." / "1)" / "Step 1:" lines are steps; an indented or
  lower-case line continues the item above it;
- a short label line whose next line is indented deeper is a term (man-page style) and becomes a heading
  one level below the enclosing heading, so its description is filed under it; so is a one-word label
  followed on the same line by its description when that description starts at the column the
  document's other term descriptions start at ('Port    Specifies the port…');
- a term nested inside a term's description (indented deeper than the terms around it) becomes a
  list item 'term: description', so that the text after the nested list stays under the outer term;
- a manual page's running header and footer lines ('SSHD_CONFIG(5)   …   SSHD_CONFIG(5)') are dropped,
  and its NAME section ('sshd_config — OpenSSH daemon configuration file') gives the title;
- other lines form a paragraph, or one key/value block per line when every line is key/value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orgtune.ingest.blocks import DocBuilder, normalise, split_kv

BULLET = re.compile(r"^\s*[-*\u2022\u2013\u25aa\u25e6\u2023]\s+(?P<text>\S.*)$")
STEP = re.compile(r"^\s*(?:step\s+(?P<s>\d{1,2})\s*[:.)\u2013-]?|(?P<n>\d{1,2})[.)])\s+(?P<text>\S.*)$", re.I)
NUMBERED_HEADING = re.compile(r"^\s*(?P<num>\d{1,2}(?:\.\d{1,2})+\.?|\d{1,2}\.)\s+(?P<text>[^\W\d_].*)$")
UNDERLINE = re.compile(r"^\s*(?:={3,}|-{3,})\s*$")
_END_PUNCT = (".", ":", ";", ",", "!", "?")


_MAN_HEADER = re.compile(r"^(?P<page>\S+\(\w+\))\s{2,}.*\s{2,}(?P=page)$|^(?P<os>\S+)\s{2,}.+\s{2,}(?P=os)$")
_MAN_NAME = re.compile(r"^\s+(?P<names>\S+(?:,\s*\S+)*)\s+[\u2014\u2013-]\s+\S")
_SAME_LINE_TERM = re.compile(r"^(?P<indent>\s+)(?P<term>[^\s:]{1,40})(?P<gap>\s{2,})(?P<text>\S.*)$")


def read_text(text: str, b: DocBuilder) -> str | None:
    """Append the blocks of a plain-text document to `b`; returns the title a manual page's NAME
    section gives, else None (the first heading is the title)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").split("\n")
    blocks = split_blocks(lines)
    blocks = [blk for blk in blocks if not (len(blk) == 1 and _MAN_HEADER.match(blk[0].strip()))]
    title = None
    for k, blk in enumerate(blocks):
        body = blk[1:] or (blocks[k + 1] if k + 1 < len(blocks) else [])
        if blk[0].strip() == "NAME" and body and (m := _MAN_NAME.match(body[0])):
            title = m.group("names")
            break
    titled = bool(blocks) and len(blocks[0]) > 1 and UNDERLINE.match(blocks[0][1]) and "=" in blocks[0][1]
    emit_blocks(blocks, b, heading_offset=1 if titled else 0)
    return title


def split_blocks(lines: list[str]) -> list[list[str]]:
    """Lines → blocks separated by blank lines (trailing blanks of each line removed)."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        line = line.rstrip()
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [blk for blk in blocks if blk]


def is_caps_heading(line: str) -> bool:
    """'SAFETY INSTRUCTIONS' yes; 'NOTE: KEEP DRY' (key/value) and 'USE A 10A FUSE.' no."""
    line = normalise(line)
    letters = [c for c in line if c.isalpha()]
    return (
        len(letters) >= 2
        and all(c.isupper() for c in letters)
        and len(line.split()) <= 8
        and not line.endswith(_END_PUNCT)
        and not BULLET.match(line)
        and split_kv(line) is None
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def is_term(line: str, following: str) -> bool:
    """A short label line with its description indented below it, as man pages and references write
    'AllowAgentForwarding' / '        Specifies whether …': the label names what follows."""
    text = line.strip()
    return (
        _indent(following) > _indent(line)
        and 0 < len(text) <= 60
        and len(text.split()) <= 6
        and not text.endswith(_END_PUNCT)
        and not BULLET.match(line)
        and not _step(line)
        and split_kv(text) is None
    )


def heading_level(line: str) -> int | None:
    """The level of a numbered heading line ('3.1 Descaling' → 2), else None."""
    m = NUMBERED_HEADING.match(line)
    if not m or line.rstrip().endswith(_END_PUNCT) or len(line.split()) > 10:
        return None
    return len([p for p in m.group("num").split(".") if p])


@dataclass
class _Piece:
    kind: str  # heading | term | list | steps | text | numbered (a lone "2. Maintenance": heading or step)
    items: list[str] = field(default_factory=list)
    level: int = 0  # heading level
    relative: bool = False  # an ALL-CAPS or numbered heading: its level moves with `heading_offset`
    first: int = 0  # steps / numbered: number of the first item
    indent: int = 0  # term: the label's indentation


def _step(line: str) -> tuple[int, str] | None:
    m = STEP.match(line)
    return (int(m.group("s") or m.group("n")), m.group("text")) if m else None


def _collect_items(lines: list[str], i: int, kind: str) -> tuple[_Piece, int]:
    """Consume a run of list/steps lines from `lines[i]`; nested or wrapped lines join the run."""
    piece = _Piece(kind)
    while i < len(lines):
        line = lines[i]
        step, bullet = _step(line), BULLET.match(line)
        own = step if kind == "steps" else bullet
        other = bullet if kind == "steps" else step
        indented = line[:1].isspace()
        if own or (other and indented and piece.items):
            if kind == "steps" and step and not piece.items:
                piece.first = step[0]
            piece.items.append(step[1] if step else bullet.group("text"))
        elif piece.items and (indented or line.lstrip()[:1].islower()) and not UNDERLINE.match(line):
            piece.items[-1] += " " + line.strip()
        else:
            break
        i += 1
    return piece, i


def term_column(blocks: list[list[str]]) -> int | None:
    """The column most term descriptions start at ('AllowAgentForwarding' / '        Specifies…')."""
    columns = [_indent(blk[1]) for blk in blocks if len(blk) > 1 and is_term(blk[0], blk[1])]
    return max(set(columns), key=columns.count) if len(columns) >= 2 else None


def _same_line_term(lines: list[str], column: int | None) -> re.Match | None:
    m = _SAME_LINE_TERM.match(lines[0])
    if not m or column is None or m.end("gap") != column or len(m.group("indent")) >= column:
        return None
    return m if all(_indent(line) == column for line in lines[1:]) else None


def _parse_block(lines: list[str], column: int | None = None) -> list[_Piece]:
    if len(lines) == 1 and not _same_line_term(lines, column):
        line = lines[0]
        if UNDERLINE.match(line):
            return []
        if is_caps_heading(line):
            return [_Piece("heading", [line], level=1, relative=True)]
        level, step = heading_level(line), _step(line)
        if level == 1 and step:
            return [_Piece("numbered", [line], level=1, first=step[0])]
        if level:
            return [_Piece("heading", [line], level=level, relative=True)]
    pieces: list[_Piece] = []
    i = 0
    if len(lines) > 1 and is_caps_heading(lines[0]) and not UNDERLINE.match(lines[1]):
        pieces.append(_Piece("heading", [lines[0]], level=1, relative=True))
        i = 1
    elif len(lines) > 1 and is_term(lines[0], lines[1]):
        pieces.append(_Piece("term", [lines[0].strip()], indent=_indent(lines[0])))
        i = 1
    elif m := _same_line_term(lines, column):
        pieces.append(_Piece("term", [m.group("term")], indent=len(m.group("indent"))))
        lines = [" " * column + m.group("text"), *lines[1:]]
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and UNDERLINE.match(lines[i + 1]) and not UNDERLINE.match(line):
            pieces.append(_Piece("heading", [line], level=1 if "=" in lines[i + 1] else 2))
            i += 2
        elif UNDERLINE.match(line):
            i += 1
        elif _step(line) or BULLET.match(line):
            piece, i = _collect_items(lines, i, "steps" if _step(line) else "list")
            pieces.append(piece)
        else:
            if not pieces or pieces[-1].kind != "text":
                pieces.append(_Piece("text"))
            pieces[-1].items.append(line)
            i += 1
    return pieces


def _resolve(pieces: list[_Piece]) -> list[_Piece]:
    """Decide lone numbered lines (heading or step), merge steps/bullets split by blank lines."""
    out: list[_Piece] = []
    for k, p in enumerate(pieces):
        prev = out[-1] if out else None
        if p.kind == "numbered":
            nxt = pieces[k + 1] if k + 1 < len(pieces) else None
            follows = prev is not None and prev.kind == "steps" and prev.first + len(prev.items) == p.first
            leads = nxt is not None and nxt.kind in ("steps", "numbered") and nxt.first == p.first + 1
            if follows or leads:
                p = _Piece("steps", [_step(p.items[0])[1]], first=p.first)
            else:
                p = _Piece("heading", p.items, level=p.level, relative=True)
        if prev and p.kind == prev.kind == "steps" and prev.first + len(prev.items) == p.first:
            prev.items += p.items
        elif prev and p.kind == prev.kind == "list":
            prev.items += p.items
        else:
            out.append(p)
    return out


def emit_text_lines(lines: list[str], b: DocBuilder) -> None:
    """A run of prose lines: one key/value block per line when all are key/value, else one paragraph."""
    pairs = [split_kv(line) for line in lines]
    if all(pairs):
        for key, value in pairs:
            b.kv(key, value)
    else:
        b.paragraph(" ".join(line.strip() for line in lines))


def emit_blocks(blocks: list[list[str]], b: DocBuilder, heading_offset: int = 0) -> None:
    """Classify blank-line-separated blocks of lines and append them to `b` in order; ALL-CAPS and
    numbered headings get `heading_offset` added to their level (to sit under a title or larger headings)."""
    level = heading_offset
    column = term_column(blocks)
    pieces = _resolve([piece for blk in blocks for piece in _parse_block(blk, column)])
    outer: int | None = None  # indentation of the terms under the current heading
    k = 0
    while k < len(pieces):
        p = pieces[k]
        k += 1
        if p.kind == "heading":
            level = p.level + (heading_offset if p.relative else 0)
            outer = None
            b.heading(p.items[0], level)
        elif p.kind == "term" and outer is not None and p.indent > outer:  # nested in a term's description
            item = p.items[0]
            if k < len(pieces) and pieces[k].kind == "text":
                item += ": " + " ".join(line.strip() for line in pieces[k].items)
                k += 1
            b.bullets([item])
        elif p.kind == "term":  # one level below the enclosing heading, siblings of each other
            outer = p.indent if outer is None else min(outer, p.indent)
            b.heading(p.items[0], level + 1)
        elif p.kind == "list":
            b.bullets(p.items)
        elif p.kind == "steps":
            b.steps(p.items)
        else:
            emit_text_lines(p.items, b)
