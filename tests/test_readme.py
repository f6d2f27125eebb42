"""The README's CLI reference is what `--help` says today, and its file tree names every module."""

from __future__ import annotations

from pathlib import Path

from orgtune.cli_reference import END, START, reference

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    current = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == reference().strip(), "README CLI reference is stale: run `make readme`"


def test_file_tree_lists_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## Files", 1)[1].split("##", 1)[0]
    for path in sorted((ROOT / "orgtune").rglob("*.py")):
        rel = path.relative_to(ROOT / "orgtune").as_posix()
        if path.name in ("__init__.py", "__main__.py"):
            continue
        assert rel in tree, f"{rel} missing from the README file tree"


def test_readme_has_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
