"""Shared checks for the ingest readers: every span slices the document text to what it should."""

from __future__ import annotations

import pytest

from orgtune.ingest.blocks import Document

SPECS = ["Espresso Machine", "Specifications"]
CARE = ["Espresso Machine", "Descaling"]
TABLE = [["Setting", "Default"], ["Temperature", "93 C"], ["Dose", "18 g"]]
STEPS = ["Fill the tank with descaler.", "Press Start.", "Rinse twice."]
BULLETS = ["Use fresh water", "Empty the drip tray"]
INTRO = "This manual covers the daily use of the machine and its care."

# The manual every format test writes in its own syntax: (kind, heading path, content read from spans).
MANUAL = [
    ("heading", [], "Espresso Machine"),
    ("paragraph", ["Espresso Machine"], INTRO),
    ("heading", ["Espresso Machine"], "Specifications"),
    ("kv", SPECS, ("Brew pressure", "8.5 bar")),
    ("table", SPECS, TABLE),
    ("heading", ["Espresso Machine"], "Descaling"),
    ("steps", CARE, STEPS),
    ("list", CARE, BULLETS),
]


def summarize(doc: Document) -> list[tuple]:
    """(kind, heading path, content) per block, content read only through the recorded spans; checks
    that the spans nest inside their block, that blocks are in order, and that list markers are right."""
    out = []
    end = 0
    for blk in doc.blocks:
        assert end <= blk.start < blk.end <= len(doc.text)
        end = blk.end
        whole = doc.text[blk.start : blk.end]
        if blk.kind in ("list", "steps"):
            items = [doc.span_text(s) for s in blk.items]
            markers = ["- "] * len(items) if blk.kind == "list" else [f"{n}. " for n in range(1, len(items) + 1)]
            assert whole == "\n".join(m + i for m, i in zip(markers, items, strict=False))
            content = items
        elif blk.kind == "table":
            content = [[doc.span_text(c) for c in row] for row in blk.rows]
            assert whole == "\n".join(" | ".join(row) for row in content)
        elif blk.kind == "kv":
            content = (doc.span_text(blk.key), doc.span_text(blk.value))
            assert whole.startswith(content[0]) and whole.endswith(content[1])
        else:
            content = whole
        out.append((blk.kind, blk.heading_path, content))
    return out


@pytest.fixture
def summary():
    return summarize


@pytest.fixture
def manual():
    return MANUAL
