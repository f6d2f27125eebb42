"""docs/cli.md is what `--help` says today; the README names every module, keeps to a newcomer's length,
and links only to files that exist."""

from __future__ import annotations

from pathlib import Path

from orgtune.cli_reference import END, START, reference

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    current = doc.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == reference().strip(), "docs/cli.md is stale: run `make readme`"


def test_file_tree_lists_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = readme.split("## Files", 1)[1].split("##", 1)[0]
    for path in sorted((ROOT / "orgtune").rglob("*.py")):
        rel = path.relative_to(ROOT / "orgtune").as_posix()
        if path.name in ("__init__.py", "__main__.py"):
            continue
        folders = [
            p.relative_to(ROOT / "orgtune").as_posix() + "/"
            for p in path.parents
            if p.is_relative_to(ROOT / "orgtune") and p != ROOT / "orgtune"
        ]
        assert rel in tree or any(f in tree for f in folders), f"{rel} missing from the README file tree"


def test_readme_has_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme


def test_readme_is_short_and_its_links_resolve():
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name}: link to {target} does not resolve"
