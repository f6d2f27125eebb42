"""Markdown reader (CommonMark + tables, via markdown-it-py tokens).

    b = DocBuilder()
    title = read_markdown(Path("guide.md").read_text(encoding="utf-8"), b)
    doc = b.build(path=Path("guide.md"), raw=Path("guide.md").read_bytes(), fmt="md", title=title)

ATX and setext headings → headings; paragraphs → paragraphs, or one key/value block per line when every
line is key/value; bullet lists → bullets and ordered lists → steps (nested items flattened after their
parent); tables → tables with a header row; fenced/indented code → code; blockquotes → their content.
Inline markup is reduced to its text (emphasis, code, link text and image alt kept, markers dropped);
inline HTML tags are dropped, HTML blocks are read by the HTML reader. A leading YAML front-matter
block is skipped; its `title:` is returned.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from orgtune.ingest.blocks import DocBuilder
from orgtune.ingest.html import read_html
from orgtune.ingest.text import emit_text_lines

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(?P<body>.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_PARSER = MarkdownIt("commonmark").enable("table")


def inline_text(tok: Token) -> str:
    """Plain text of an inline token; soft and hard line breaks become newlines."""
    parts = []
    for child in tok.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(inline_text(child) or child.content)
    return "".join(parts)


def _front_matter(text: str) -> tuple[str, str | None]:
    m = _FRONT_MATTER.match(text)
    if not m or not re.match(r"\s*[A-Za-z_][\w-]*\s*:", m.group("body")):  # "---" then prose is a rule
        return text, None
    title = re.search(r"^title:\s*['\"]?(.*?)['\"]?\s*$", m.group("body"), re.M)
    return text[m.end() :], (title.group(1) or None) if title else None


def _list(tokens: list[Token], i: int) -> tuple[list[str], int]:
    """Items of the list opening at tokens[i] (nested items flattened); returns the index after it."""
    items: list[str] = []
    open_items: list[int] = []  # index in `items` of each open list item
    depth = 0
    while True:
        tok = tokens[i]
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0:
                return items, i + 1
        elif tok.type == "list_item_open":
            open_items.append(len(items))
            items.append("")
        elif tok.type == "list_item_close":
            open_items.pop()
        elif open_items and tok.type in ("inline", "fence", "code_block"):
            text = inline_text(tok) if tok.type == "inline" else tok.content
            items[open_items[-1]] = (items[open_items[-1]] + " " + text).strip()
        i += 1


def _table(tokens: list[Token], i: int) -> tuple[list[list[str]], bool, int]:
    rows: list[list[str]] = []
    header = False
    while tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type == "th_open" and len(rows) == 1:
            header = True
        elif tok.type == "inline" and rows:
            rows[-1].append(inline_text(tok))
        i += 1
    return rows, header, i + 1


def read_markdown(text: str, b: DocBuilder) -> str | None:
    """Append the blocks of a Markdown document to `b`; returns the front-matter title, if any."""
    text, title = _front_matter(text.replace("\r\n", "\n"))
    tokens = _PARSER.parse(text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            b.heading(inline_text(tokens[i + 1]), int(tok.tag[1:]))
            i += 3
            continue
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            items, i = _list(tokens, i)
            (b.bullets if tok.type == "bullet_list_open" else b.steps)(items)
            continue
        if tok.type == "table_open":
            rows, header, i = _table(tokens, i)
            b.table(rows, header=header)
            continue
        if tok.type in ("fence", "code_block"):
            b.code(tok.content)
        elif tok.type == "html_block":
            read_html(tok.content, b)
        elif tok.type == "inline":  # paragraphs, including those inside blockquotes
            lines = [line for line in inline_text(tok).split("\n") if line.strip()]
            if lines:
                emit_text_lines(lines, b)
        i += 1
    return title
