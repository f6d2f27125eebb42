"""Imports between orgtune's packages run from higher layers to lower ones only. The imports are read
with `ast` (no module is imported); an upward import that is not in KNOWN fails the test, and so does an
entry of KNOWN that no longer exists (so that the list only shrinks as the layering is repaired). The same
for functions over 100 lines."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

PKG = ROOT / "orgtune"
# low → high; a package may import its own layer and any lower one.
LAYERS = [{"errors", "home"}, {"atomic"}, {"config", "models", "ingest"}, {"data"}, {"train"}, {"evaluate"},
          {"export"}, {"serve"}, {"nightly"}, {"service"}, {"cli"}, {"cli_reference", "__main__"}]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Upward imports that exist today (issue 21's redesign removes them): file → the package it reaches up to.
KNOWN = {
    ("data/prefs.py", "evaluate"),          # preference pairs need the model's answers: a stage above evaluate
    ("evaluate/run.py", "export"),          # the llama.cpp answering backend lives in export/gguf.py
    ("models/loading.py", "data"),          # a loaded tokenizer's chat template is tried with data/tokenize.render
    ("train/general.py", "evaluate"),       # self-distillation answers with evaluate's HF backend
}


def _package(path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(PKG.rglob("*.py")):
        src = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] != "orgtune" or len(parts) < 2 or parts[1] == src:
                    continue
                if RANK[parts[1]] > RANK[src]:
                    found.add((path.relative_to(PKG).as_posix(), parts[1]))
    return found


def test_every_package_has_a_layer():
    packages = {_package(p) for p in PKG.rglob("*.py") if p.parent != PKG or p.name != "__init__.py"} - {"__init__"}
    assert packages <= set(RANK), f"give these a layer in LAYERS: {sorted(packages - set(RANK))}"


def test_no_new_upward_import():
    found = upward_imports()
    assert not found - KNOWN, f"imports from a lower package to a higher one: {sorted(found - KNOWN)}"
    assert not KNOWN - found, f"fixed, remove from KNOWN: {sorted(KNOWN - found)}"


MAX_LINES = 100
LONG = {("data/prefs.py", "build_prefs")}  # 175 lines today; issue 21 splits it into a stage of its own


def test_no_new_function_over_100_lines():
    long = set()
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= MAX_LINES:
                long.add((path.relative_to(PKG).as_posix(), node.name))
    assert not long - LONG, f"functions over {MAX_LINES} lines: {sorted(long - LONG)}"
    assert not LONG - long, f"now short, remove from LONG: {sorted(LONG - long)}"
