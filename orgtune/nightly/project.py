"""A nightly project folder: its settings, its nights, and the "promoted" pointer (an MLflow-style alias).

    P/nightly.json            the settings fixed at the first night (base model, gate, replay)
    P/promoted.json           {"night": "2026-12-02", "stack": [...]}: what ships; moved atomically
    P/history.jsonl           one line per night and per rollback
    P/nights/<id>/            delta.json, data/ (the delta's build), mix/ (what was trained on), run/,
                              gate.json (figures and decision), state.json (the documents this model knows)

Only a promoted night's model is exported or handed to Ollama; `rollback` moves the pointer back to the
night promoted before (or to any earlier promoted night) and the next night's delta is computed against it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError


@dataclass
class NightlySettings:
    """Fixed at the first night; a later night may override the gate and the training settings."""

    model: str = "smollm2-135m"
    replay: float = 1.0  # replayed earlier rows per new row (rows of documents that did not change)
    threshold: float = 0.7  # new documents' trained-fact probes: least accuracy to promote
    old_margin: float = 0.05  # largest drop allowed on earlier documents' probes (accuracy points)
    general_margin: float = 0.02  # largest drop allowed on the general check (share of its items)
    epochs: float | None = None  # each later night's training, from the promoted adapter (None: the preset's
    lr: float | None = None  # `incremental` settings, else its usual ones)
    first_epochs: float | None = None  # the first night (no promoted model): None = the preset's
    first_lr: float | None = None
    examples_per_fact: int = 5
    general_items: int | None = None  # the general check's first N items (None: all)
    general_samples: int = 8  # sampled answers per general item for the gate's rule (0: greedy right count)
    general_replay: float | None = None  # None: the run config's default
    max_steps: int | None = None

    def config_overrides(self, first: bool) -> dict:
        from orgtune.models.presets import find_preset

        preset = find_preset(self.model)
        inc = (preset.incremental if preset else {}) if not first else {}
        t: dict = {}
        epochs, lr = (self.first_epochs, self.first_lr) if first else (self.epochs, self.lr)
        epochs = epochs if epochs is not None else inc.get("num_epochs")
        lr = lr if lr is not None else inc.get("learning_rate")
        if epochs is not None:
            t["num_epochs"] = epochs
        if lr is not None:
            t["learning_rate"] = lr
        if self.max_steps:
            t["max_steps"] = self.max_steps
        if self.general_replay is not None:
            t["general_replay"] = self.general_replay
        return {"model": {"name": self.model}, "training": t}


@dataclass
class Project:
    path: Path
    settings: NightlySettings = field(default_factory=NightlySettings)

    @property
    def nights_dir(self) -> Path:
        return self.path / "nights"

    def night(self, night_id: str) -> Path:
        return self.nights_dir / night_id

    # -- settings ----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, overrides: dict | None = None, *, create: bool = True) -> Project:
        path = Path(path)
        f = path / "nightly.json"
        if f.is_file():
            saved = json.loads(f.read_text(encoding="utf-8"))
            given = {k: v for k, v in (overrides or {}).items() if v is not None}
            if "model" in given and given["model"] != saved["model"]:
                raise OrgtuneError(
                    f"{path} trains {saved['model']!r}, not {given['model']!r}",
                    fix="drop --model, or start a new --project for another base model",
                )
            return cls(path, NightlySettings(**{**saved, **given}))
        if not create:
            raise OrgtuneError(
                f"{path}: not a nightly project (no nightly.json)", fix="pass the --project folder of `orgtune nightly`"
            )
        s = NightlySettings(**{k: v for k, v in (overrides or {}).items() if v is not None})
        path.mkdir(parents=True, exist_ok=True)
        atomic.write_json(f, asdict(s))
        return cls(path, s)

    # -- the promoted pointer -----------------------------------------------------------------------------------
    def _pointer(self) -> dict:
        f = self.path / "promoted.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {"night": None, "stack": []}

    def promoted(self) -> str | None:
        return self._pointer()["night"]

    def promote(self, night_id: str) -> None:
        p = self._pointer()
        atomic.write_json(
            self.path / "promoted.json",
            {"night": night_id, "stack": [*p["stack"], night_id], "moved": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )

    def rollback(self, to: str | None = None) -> tuple[str, str]:
        p = self._pointer()
        stack = list(p["stack"])
        if not stack:
            raise OrgtuneError(f"{self.path}: nothing is promoted yet", fix="run `orgtune nightly` first")
        current = stack[-1]
        if to is None:
            if len(stack) < 2:
                raise OrgtuneError(
                    f"{current} is the only promoted night; there is nothing to roll back to",
                    fix="keep it, or start the project over",
                )
            stack.pop()
        else:
            if to not in stack:
                raise OrgtuneError(
                    f"night {to!r} was never promoted in {self.path}", fix=f"pick one of: {', '.join(stack)}"
                )
            stack = stack[: stack.index(to) + 1]
        atomic.write_json(
            self.path / "promoted.json",
            {"night": stack[-1], "stack": stack, "moved": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
        self.record({"event": "rollback", "from": current, "to": stack[-1]})
        return current, stack[-1]

    # -- nights and history ---------------------------------------------------------------------------------------
    def new_night_id(self, wanted: str | None = None) -> str:
        base = wanted or time.strftime("%Y-%m-%d")
        if wanted and self.night(wanted).exists() and not (self.night(wanted) / "gate.json").is_file():
            return wanted  # an unfinished night of that name: resume it
        if wanted and self.night(wanted).exists():
            raise OrgtuneError(f"night {wanted!r} already ran in {self.path}", fix="pick another --night name")
        night, n = base, 1
        while self.night(night).exists() and (self.night(night) / "gate.json").is_file():
            n += 1
            night = f"{base}-{n}"
        return night

    def state(self, night_id: str | None) -> dict:
        """The documents a promoted night's model knows: {key: {"sha256", "data_night"}} (empty before any)."""
        if night_id is None:
            return {}
        return json.loads((self.night(night_id) / "state.json").read_text(encoding="utf-8"))["docs"]

    def state_record(self, night_id: str) -> dict:
        """A finished night's state.json: {"docs": ..., "run": the model's run folder, "parent_night"}."""
        return json.loads((self.night(night_id) / "state.json").read_text(encoding="utf-8"))

    def record(self, entry: dict) -> None:
        """Append to history.jsonl (whole lines only: a temp copy renamed over it)."""
        f = self.path / "history.jsonl"
        old = f.read_text(encoding="utf-8") if f.is_file() else ""
        atomic.write_text(f, old + json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}) + "\n")

    def history(self) -> list[dict]:
        f = self.path / "history.jsonl"
        return [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()] if f.is_file() else []
