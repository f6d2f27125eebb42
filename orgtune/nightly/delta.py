"""What changed since the promoted model: documents added, changed (by content hash) and removed, and, in
a changed document, which facts changed value (so that the report names them and the gate checks that
the old value does not survive).

    current = scan([Path("wiki/"), Path("manuals/")])     # {key: Doc}
    d = diff(current, project.state(project.promoted()))
    d.added, d.changed, d.removed, d.unchanged            # keys
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from orgtune.errors import OrgtuneError
from orgtune.ingest.read import find_files


@dataclass(frozen=True)
class Doc:
    key: str  # the path under its --docs folder (a file given directly: its name)
    path: Path
    sha256: str  # = the doc_id `data build` gives it


@dataclass
class Delta:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scan(roots: list[Path]) -> dict[str, Doc]:
    """Every supported document under the roots, keyed by its path relative to its root."""
    out: dict[str, Doc] = {}
    for root in map(Path, roots):
        if not root.exists():
            raise OrgtuneError(f"{root}: no such file or folder", fix="check the --docs path")
        files, _ = find_files([root])
        for f in files:
            key = f.relative_to(root).as_posix() if root.is_dir() else f.name
            if len(roots) > 1 and root.is_dir():
                key = f"{root.name}/{key}"
            if key in out:
                raise OrgtuneError(
                    f"two documents are both called {key!r}: {out[key].path} and {f}",
                    fix="rename one, or pass the folders so that their names differ",
                )
            out[key] = Doc(key, f, _sha(f))
    if not out:
        raise OrgtuneError(
            f"no document under {', '.join(map(str, roots))}",
            fix="pass folders or files with .txt .md .html .pdf .docx documents",
        )
    return out


def diff(current: dict[str, Doc], known: dict[str, dict]) -> Delta:
    d = Delta()
    for key, doc in sorted(current.items()):
        if key not in known:
            d.added.append(key)
        elif known[key]["sha256"] != doc.sha256:
            d.changed.append(key)
        else:
            d.unchanged.append(key)
    d.removed = sorted(k for k in known if k not in current)
    return d


def _facts(data_dir: Path, doc_id: str) -> list[dict]:
    f = Path(data_dir) / "facts.jsonl"
    return [r for r in map(json.loads, f.read_text(encoding="utf-8").splitlines()) if r["doc_id"] == doc_id]


def changed_facts(old_data: Path, old_doc_id: str, new_data: Path, new_doc_id: str) -> list[dict]:
    """Facts of one document whose value changed between two builds (matched by kind, subject, attribute)."""

    def key(f):
        return f["kind"], (f.get("subject") or "").lower(), (f.get("attribute") or "").lower()

    old = {key(f): f for f in _facts(old_data, old_doc_id)}
    out = []
    for f in _facts(new_data, new_doc_id):
        before = old.get(key(f))
        if before is not None and before["value"] != f["value"] and f["kind"] != "procedure":
            out.append(
                {
                    "fact_id": f["fact_id"],
                    "kind": f["kind"],
                    "subject": f.get("subject"),
                    "attribute": f.get("attribute"),
                    "old": before["value"],
                    "new": f["value"],
                }
            )
    return out
