"""Imports between orgtune's packages run from higher layers to lower ones only. The imports are read
with `ast` (no module is imported); an upward import that is not in KNOWN fails the test, and so does an
entry of KNOWN that no longer exists (so that the list only shrinks as the layering is repaired). The same
for functions over 100 lines."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

PKG = ROOT / "orgtune"
# low → high; a package may import its own layer and any lower one.
LAYERS = [
    {"errors", "home"},
    {"atomic"},
    {"config", "models", "ingest"},
    {"data"},
    {"generate"},
    {"train"},
    {"evaluate"},
    {"prefs"},
    {"export"},
    {"serve"},
    {"nightly"},
    {"service"},
    {"cli"},
    {"cli_reference", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# Upward imports that exist today (issue 21's redesign removes them): file → the package it reaches up to.
KNOWN: set[tuple[str, str]] = set()


def _package(path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def imports() -> set[tuple[str, str]]:
    """(file, package) for every import of another orgtune package, at module level or inside a function."""
    found = set()
    for path in sorted(PKG.rglob("*.py")):
        src = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                parts = name.split(".")
                if parts[0] == "orgtune" and len(parts) >= 2 and parts[1] != src:
                    found.add((path.relative_to(PKG).as_posix(), parts[1]))
    return found


def upward_imports() -> set[tuple[str, str]]:
    return {(f, dst) for f, dst in imports() if RANK[dst] > RANK[f.split("/")[0].removesuffix(".py")]}


def test_no_two_packages_import_each_other():
    edges = {(f.split("/")[0].removesuffix(".py"), dst) for f, dst in imports()}
    both = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    known = {tuple(sorted((f.split("/")[0], dst))) for f, dst in KNOWN}
    assert not set(both) - known, f"packages that import each other: {both}"


def test_every_package_has_a_layer():
    packages = {_package(p) for p in PKG.rglob("*.py") if p.parent != PKG or p.name != "__init__.py"} - {"__init__"}
    assert packages <= set(RANK), f"give these a layer in LAYERS: {sorted(packages - set(RANK))}"


def test_no_new_upward_import():
    found = upward_imports()
    assert not found - KNOWN, f"imports from a lower package to a higher one: {sorted(found - KNOWN)}"
    assert not KNOWN - found, f"fixed, remove from KNOWN: {sorted(KNOWN - found)}"


MAX_LINES = 100
LONG: set[tuple[str, str]] = set()  # none today; a new one fails the test


def test_no_new_function_over_100_lines():
    long = set()
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # The body, docstring included: a signature is declarations (a CLI command's options), and the
            # formatter writes a long one a parameter per line.
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.body[0].lineno >= MAX_LINES
            ):
                long.add((path.relative_to(PKG).as_posix(), node.name))
    assert not long - LONG, f"functions over {MAX_LINES} lines: {sorted(long - LONG)}"
    assert not LONG - long, f"now short, remove from LONG: {sorted(LONG - long)}"
