"""HTML reader (BeautifulSoup + lxml): walks the tree once and emits each block-level element once.

    b = DocBuilder()
    title = read_html(Path("manual.html").read_text(encoding="utf-8"), b)
    doc = b.build(path=Path("manual.html"), raw=Path("manual.html").read_bytes(), fmt="html", title=title)

script/style/nav/footer/noscript/template (and a page-level <header>) are dropped; h1-h6 → headings;
text in p/div/section/... → paragraphs, or key/value blocks when every line (split at <br>) is key/value;
ul → bullets, ol → steps (nested lists flattened); table → table (header when the first row has th or
sits in thead); pre → code. In a dl, a term with a short answer (one paragraph, <= 100 characters)
becomes a key/value block; a term with a longer answer becomes a heading one level below the current
one with its dd content under it, so that "The default is ..." sentences keep their subject in the
heading path. Once a dl has produced such a heading, its later terms become headings too, so that no
block lands under a sibling term. Returns the <title> text, if any.
"""

from __future__ import annotations

import warnings

from bs4 import BeautifulSoup, NavigableString, Tag, XMLParsedAsHTMLWarning
from bs4.element import PreformattedString

from orgtune.ingest.blocks import DocBuilder, normalise
from orgtune.ingest.text import emit_text_lines

DROP = {
    "script",
    "style",
    "nav",
    "header",
    "footer",
    "noscript",
    "template",
    "head",
    "svg",
    "iframe",
    "button",
    "select",
    "object",
}
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCK = {
    "html",
    "body",
    "main",
    "article",
    "section",
    "aside",
    "div",
    "p",
    "blockquote",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "center",
    "form",
    "fieldset",
    "legend",
    "li",
    "dd",
    "dt",
    "hr",
    "caption",
    "tr",
    "td",
    "th",
    "thead",
    "tbody",
    "tfoot",
    "header",
    "footer",
    "nav",
}
_STRUCTURE = BLOCK | set(HEADINGS) | {"ul", "ol", "dl", "table", "pre"}
SHORT_DD = 100


def _dropped(tag: Tag) -> bool:
    """A <header> inside article/main/section carries the article's own heading: keep it."""
    if tag.name == "header":
        return tag.find_parent(["article", "main", "section"]) is None
    return tag.name in DROP


def _text(node, skip: frozenset[str] = frozenset()) -> str:
    """Text of a node without dropped elements; block boundaries and <br> become spaces."""
    if isinstance(node, PreformattedString):  # comments, doctype, CDATA, processing instructions
        return ""
    if isinstance(node, NavigableString):
        return str(node)
    if _dropped(node) or node.name in skip:
        return ""
    if node.name == "br":
        return " "
    inner = "".join(_text(child, skip) for child in node.children)
    return f" {inner} " if node.name in _STRUCTURE else inner


def _list_items(lst: Tag) -> list[str]:
    """Items of a ul/ol; the items of lists nested in an item follow that item."""
    items: list[str] = []
    for li in lst.find_all("li", recursive=False):
        items.append(_text(li, frozenset({"ul", "ol"})))
        for sub in li.find_all(["ul", "ol"]):
            if sub.find_parent("li") is li:
                items += _list_items(sub)
    return items


def _table(table: Tag) -> tuple[list[list[str]], bool]:
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    cells = [[_text(c) for c in tr.find_all(["td", "th"], recursive=False)] for tr in rows]
    header = bool(rows) and (rows[0].find("th", recursive=False) is not None or rows[0].parent.name == "thead")
    return cells, header


def _is_short(dd: Tag) -> bool:
    blocks = [t for t in dd.find_all(True) if t.name in _STRUCTURE]
    return len(blocks) == 0 or (len(blocks) == 1 and blocks[0].name == "p")


class _Walker:
    def __init__(self, b: DocBuilder):
        self.b = b
        self.level = 0  # level of the last heading emitted
        self.buf: list[str] = []

    def heading(self, text: str, level: int) -> None:
        self.b.heading(text, level)
        self.level = level

    def flush(self) -> None:
        lines = [line for line in (normalise(s) for s in "".join(self.buf).split("\n")) if line]
        self.buf = []
        if lines:
            emit_text_lines(lines, self.b)

    def walk(self, el: Tag) -> None:
        for node in el.children:
            if isinstance(node, PreformattedString):
                continue
            if isinstance(node, NavigableString):
                self.buf.append(str(node).replace("\n", " "))
                continue
            if _dropped(node):
                continue
            name = node.name
            if name == "br":
                self.buf.append("\n")
            elif name in HEADINGS or name in ("ul", "ol", "table", "pre", "dl") or name in BLOCK:
                self.flush()
                self.block(node)
                self.flush()
            else:  # inline element: its text (and any stray block inside it) continues the current run
                self.walk(node)

    def block(self, node: Tag) -> None:
        name = node.name
        if name in HEADINGS:
            self.heading(_text(node), HEADINGS[name])
        elif name in ("ul", "ol"):
            (self.b.bullets if name == "ul" else self.b.steps)(_list_items(node))
        elif name == "table":
            caption = node.find("caption")
            if caption is not None and caption.find_parent("table") is node:
                self.b.paragraph(_text(caption))
            rows, header = _table(node)
            self.b.table(rows, header=header)
        elif name == "pre":
            self.b.code(node.get_text())
        elif name == "dl":
            self.dl(node)
        else:
            self.walk(node)

    def dl(self, dl: Tag) -> None:
        base = self.level
        terms: list[tuple[Tag, list[Tag]]] = []
        for tag in dl.find_all(["dt", "dd"]):
            if tag.find_parent("dl") is not dl:
                continue
            if tag.name == "dt":
                terms.append((tag, []))
            elif terms:
                terms[-1][1].append(tag)
        as_headings = False
        for dt, dds in terms:
            term = normalise(_text(dt))
            answer = normalise(" ".join(_text(dd) for dd in dds))
            if not dds:
                self.b.paragraph(term)
            elif not as_headings and all(_is_short(dd) for dd in dds) and len(answer) <= SHORT_DD:
                self.b.kv(term, answer)
            else:
                as_headings = True
                self.heading(term, base + 1)
                for dd in dds:
                    self.walk(dd)
                    self.flush()
        self.level = base


def read_html(text: str, b: DocBuilder) -> str | None:
    """Append the blocks of an HTML document to `b`; returns the <title> text, if any."""
    with warnings.catch_warnings():  # XHTML manuals parse fine as HTML; the warning is noise
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(text, "lxml")
    tag = soup.head.find("title") if soup.head else None  # not an <svg><title>
    title = normalise(tag.get_text()) if tag else ""
    root = soup.body or soup
    walker = _Walker(b)
    walker.walk(root)
    walker.flush()
    return title or None
