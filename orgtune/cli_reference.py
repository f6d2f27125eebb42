"""docs/cli.md, the CLI reference, generated from `--help` of every command (a test fails when it is stale).

python -m orgtune.cli_reference                       # print it
python -m orgtune.cli_reference --write docs/cli.md   # (what `make readme` runs)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"


def _commands(group: click.Group, prefix: list[str]):
    yield prefix, group
    for name in group.list_commands(click.Context(group)):
        cmd = group.get_command(click.Context(group), name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + [name])
        else:
            yield prefix + [name], cmd


def reference() -> str:
    from orgtune.cli import app

    root = typer.main.get_command(app)
    parts = []
    for path, cmd in _commands(root, []):
        info_name = " ".join(["orgtune", *path])
        with click.Context(cmd, info_name=info_name, terminal_width=100, max_content_width=100) as ctx:
            text = cmd.get_help(ctx)
        parts.append(f"### `{info_name}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def splice(readme: str, ref: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"the file lacks the {START} / {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{ref}\n{END}{tail}"


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--write":
        path = Path(argv[1])
        path.write_text(splice(path.read_text(encoding="utf-8"), reference()), encoding="utf-8")
    else:
        print(reference())


if __name__ == "__main__":
    main(sys.argv[1:])
