"""Run the CLI as `python -m orgtune ...`."""

from orgtune.cli import main

main()
