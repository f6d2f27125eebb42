"""The one error type a user can cause: bad file, missing model, wrong flag, no GPU.

The CLI prints it without a traceback and exits non-zero. The message names what is wrong (the file
and line where there is one) and how to fix it.
"""

from __future__ import annotations


class OrgtuneError(Exception):
    """A problem the user can fix; `str(err)` is the whole message to show."""

    def __init__(self, message: str, *, fix: str | None = None, details: list[str] | None = None):
        self.message = message
        self.fix = fix
        self.details = details or []
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.message]
        lines += [f"  {d}" for d in self.details]
        if self.fix:
            lines.append(f"Fix: {self.fix}")
        return "\n".join(lines)
