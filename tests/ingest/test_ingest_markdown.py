import hashlib

from orgtune.ingest.blocks import DocBuilder
from orgtune.ingest.markdown import read_markdown
from orgtune.ingest.read import read_document

MANUAL_MD = """\
---
title: ACME manual
---
Espresso Machine
================

This manual covers the *daily use* of the [machine](https://example.com) and its `care`.

## Specifications

Brew pressure: 8.5 bar

| Setting | Default |
|---|---|
| **Temperature** | 93 C |
| Dose | 18 g |

## Descaling

1. Fill the tank with descaler.
2. Press Start.
3. Rinse twice.

* Use fresh water
* Empty the drip tray
"""


def test_manual(tmp_path, summary, manual):
    path = tmp_path / "manual.md"
    path.write_text(MANUAL_MD, encoding="utf-8")
    doc = read_document(path)
    assert summary(doc) == manual
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 2]
    assert doc.blocks[4].header is True
    assert doc.title == "ACME manual"  # from the front matter, which is not text
    assert doc.format == "md" and doc.doc_id == hashlib.sha256(path.read_bytes()).hexdigest()


def read(md: str):
    b = DocBuilder()
    read_markdown(md, b)
    return b.build(path="x.md", raw=md.encode(), fmt="md")


def test_kv_paragraph_nested_list_code_quote(summary):
    doc = read(
        "# Specs\n\nVoltage: 230 V\nPower = 1450 W\n\nVoltage: 230 V and then\na plain line\n\n"
        "- a\n  1. a1\n  2. a2\n- b\n\n```\nmake\n  run\n```\n\n> Keep **dry**.\n\n    indented code\n\n"
        "No table | here\n"
    )
    assert summary(doc) == [
        ("heading", [], "Specs"),
        ("kv", ["Specs"], ("Voltage", "230 V")),
        ("kv", ["Specs"], ("Power", "1450 W")),
        ("paragraph", ["Specs"], "Voltage: 230 V and then a plain line"),
        ("list", ["Specs"], ["a", "a1", "a2", "b"]),
        ("code", ["Specs"], "make\n  run"),
        ("paragraph", ["Specs"], "Keep dry."),
        ("code", ["Specs"], "indented code"),
        ("paragraph", ["Specs"], "No table | here"),  # no delimiter row: not a table
    ]


def test_heading_levels_pop(summary):
    doc = read("# A\n\n### C\n\ntext c\n\n## B\n\ntext b\n\nB2\n--\n\ntext b2\n")
    assert [(k, p) for k, p, _ in summary(doc)] == [
        ("heading", []),
        ("heading", ["A"]),
        ("paragraph", ["A", "C"]),
        ("heading", ["A"]),
        ("paragraph", ["A", "B"]),
        ("heading", ["A"]),
        ("paragraph", ["A", "B2"]),
    ]


def test_html_block_and_rule_not_front_matter(summary):
    doc = read(
        "---\nJust a rule, then prose.\n\n---\n\n<table><tr><th>A</th></tr><tr><td>1</td></tr></table>\n\n"
        "<!-- note -->\n"
    )
    assert summary(doc) == [("paragraph", [], "Just a rule, then prose."), ("table", [], [["A"], ["1"]])]
