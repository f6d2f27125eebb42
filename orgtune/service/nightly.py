"""Nightly training as a service schedule: per project, a cron expression (UTC) and the settings of
`orgtune nightly`. A night runs the CLI's own stage function (`orgtune.nightly.run.nightly`) in a
process of its own, on the project's uploaded documents: every document or archive upload that is not
deleted, a later upload of one file name replacing the earlier one; a deleted upload is a removed document.

    PUT    /v1/orgtune/nightly            {"cron": "0 2 * * *", "settings": {"threshold": 0.7, ...}}
    GET    /v1/orgtune/nightly            the schedule, its next run, the promoted night, the history
    POST   /v1/orgtune/nightly/run        run at the scheduler's next tick instead of at the next cron time
    POST   /v1/orgtune/nightly/rollback   {"to": null or a night}: the promoted pointer back
    DELETE /v1/orgtune/nightly            the schedule (the nights and the promoted model stay)

The promoted night's model is called as `ft:<base>:<project>:nightly` by the service's chat API.

Every service process runs a scheduler thread. It claims a due schedule with one conditional UPDATE
(next_run_at unchanged, no live runner), so with several service processes on one PostgreSQL a night
starts once; the night's process renews a heartbeat, and a schedule whose runner went silent for
ORGTUNE_HEARTBEAT_TIMEOUT is claimed again (the night resumes: `nightly` resumes an unfinished night
of the same name). A night still running when the next one is due delays it until it ends.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from orgtune import atomic
from orgtune.errors import OrgtuneError
from orgtune.service.db import Database
from orgtune.service.models import File, NightlySchedule, Project
from orgtune.service.settings import ServiceSettings


def next_time(cron: str, after: float) -> float:
    """The first time after `after` (Unix seconds) that `cron` names, read in UTC."""
    from croniter import croniter

    return croniter(cron, datetime.fromtimestamp(after, UTC)).get_next(datetime).timestamp()


def check_cron(cron: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise OrgtuneError(
            f"{cron!r} is not a cron expression",
            fix="five fields, minute hour day month weekday, in UTC: e.g. '0 2 * * *' for 02:00 daily",
        )
    return cron


def check_settings(given: dict, default_model: str) -> dict:
    """The settings of `orgtune nightly` a schedule may set (unknown keys refused by name)."""
    from orgtune.nightly.project import NightlySettings

    known = {f.name for f in fields(NightlySettings)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise OrgtuneError(f"unknown nightly setting(s): {', '.join(unknown)}", fix=f"use: {', '.join(sorted(known))}")
    out = {"model": default_model, **{k: v for k, v in given.items() if v is not None}}
    try:
        NightlySettings(**out)
    except TypeError as e:
        raise OrgtuneError(f"nightly settings: {e}", fix="see `orgtune nightly --help` for each setting") from None
    return out


def project_dir(settings: ServiceSettings, project_id: str) -> Path:
    return settings.root / "nightly" / project_id


def set_schedule(db: Database, project_id: str, cron: str, night_settings: dict, enabled: bool = True) -> dict:
    now = time.time()
    with db.writing() as s:
        row = s.get(NightlySchedule, project_id)
        if row is None:
            row = NightlySchedule(
                project_id=project_id,
                cron=cron,
                settings=night_settings,
                enabled=enabled,
                next_run_at=next_time(cron, now),
            )
            s.add(row)
        else:
            row.cron, row.settings, row.enabled = cron, night_settings, enabled
            row.next_run_at = next_time(cron, now)
    return get_schedule(db, project_id)


def get_schedule(db: Database, project_id: str) -> dict | None:
    with db.reading() as s:
        row = s.get(NightlySchedule, project_id)
        if row is None:
            return None
        return {
            "cron": row.cron,
            "settings": row.settings,
            "enabled": row.enabled,
            "next_run_at": int(row.next_run_at),
            "running": row.runner is not None,
            "runner": row.runner,
            "last_started_at": row.last_started_at,
            "last_finished_at": row.last_finished_at,
            "last_result": row.last_result,
        }


def delete_schedule(db: Database, project_id: str) -> bool:
    with db.writing() as s:
        row = s.get(NightlySchedule, project_id)
        if row is None:
            return False
        s.delete(row)
        return True


def run_now(db: Database, project_id: str) -> bool:
    with db.writing() as s:
        return (
            s.execute(
                update(NightlySchedule).where(NightlySchedule.project_id == project_id).values(next_run_at=time.time())
            ).rowcount
            == 1
        )


def claim(db: Database, settings: ServiceSettings, project_id: str, runner: str, now: float) -> bool:
    """Take a due schedule for one night: one conditional UPDATE, so that two schedulers never both do."""
    with db.writing() as s:
        row = s.get(NightlySchedule, project_id)
        if row is None or not row.enabled or row.next_run_at > now:
            return False
        if (
            row.runner is not None
            and row.heartbeat_at is not None
            and now - row.heartbeat_at < settings.heartbeat_timeout
        ):
            return False  # a night still runs: the due one starts when it ends
        q = update(NightlySchedule).where(
            NightlySchedule.project_id == project_id, NightlySchedule.next_run_at == row.next_run_at
        )
        q = q.where(NightlySchedule.runner.is_(None) if row.runner is None else NightlySchedule.runner == row.runner)
        return (
            s.execute(
                q.values(
                    runner=runner, heartbeat_at=now, last_started_at=int(now), next_run_at=next_time(row.cron, now)
                )
            ).rowcount
            == 1
        )


class Scheduler:
    """The thread that starts due nights, one process each (in every service process)."""

    def __init__(self, db: Database, settings: ServiceSettings, log=print):
        self.db, self.settings, self.log = db, settings, log
        self.name = f"{socket.gethostname()}:{id(self):x}"
        self.stop_event = threading.Event()
        self.children: list[subprocess.Popen] = []
        self.thread = threading.Thread(target=self._loop, name="orgtune-nightly", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.settings.nightly_tick):
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the store may be briefly away; try at the next tick
                self.log(f"nightly scheduler: {type(e).__name__}: {e}")

    def tick(self) -> list[str]:
        from orgtune.service.executors import die_with_parent, runner_env

        self.children = [c for c in self.children if c.poll() is None]
        now = time.time()
        with self.db.reading() as s:
            due = list(
                s.scalars(
                    select(NightlySchedule.project_id).where(
                        NightlySchedule.enabled.is_(True), NightlySchedule.next_run_at <= now
                    )
                )
            )
        started = []
        for pid in due:
            runner = f"{self.name}:{int(now)}"
            if not claim(self.db, self.settings, pid, runner, now):
                continue
            folder = project_dir(self.settings, pid)
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "night.log", "ab") as out:
                self.children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "orgtune.service.nightly", pid, runner],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=runner_env(self.db, self.settings, None),
                        preexec_fn=die_with_parent,
                    )
                )
            self.log(f"nightly: started a night of project {pid}")
            started.append(pid)
        return started


def documents(db: Database, settings: ServiceSettings, project_id: str, dest: Path) -> Path:
    """The project's current documents in one folder (rebuilt whole each night): uploads by file name,
    the newest of a name winning; archives extracted under their name."""
    from orgtune.service.archives import extract_documents
    from orgtune.service.files import archive_limits, link_input

    with db.reading() as s:
        rows = list(
            s.scalars(
                select(File)
                .where(File.project_id == project_id, File.deleted.is_(False), File.kind.in_(("document", "archive")))
                .order_by(File.seq)
            )
        )
        latest = {r.filename: (r.kind, Path(r.path)) for r in rows}
    if not latest:
        raise OrgtuneError(
            f"project {project_id} has no uploaded documents",
            fix="upload documents or archives with POST /v1/files (purpose fine-tune)",
        )
    with atomic.building_folder(dest, replace=dest.exists()) as staging:
        for name, (kind, path) in sorted(latest.items()):
            if kind == "archive":
                extract_documents(path, staging / Path(name).name.split(".")[0], archive_limits(settings))
            else:
                link_input(path, staging / Path(name).name)
    return dest


def _beat(db: Database, project_id: str, runner: str, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        with contextlib.suppress(Exception), db.writing() as s:
            s.execute(
                update(NightlySchedule)
                .where(NightlySchedule.project_id == project_id, NightlySchedule.runner == runner)
                .values(heartbeat_at=time.time())
            )


def run_night(db: Database, settings: ServiceSettings, project_id: str, runner: str, log=print) -> dict:
    """One night of a project, as the scheduler's process runs it: documents → `nightly` → the result kept."""
    from orgtune.nightly.run import nightly

    folder = project_dir(settings, project_id)
    with db.reading() as s:
        row = s.get(NightlySchedule, project_id)
        night_settings = dict(row.settings) if row else {}
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(db, project_id, runner, settings.heartbeat_interval, stop), daemon=True)
    beat.start()
    try:
        docs = documents(db, settings, project_id, folder / "docs")
        record = nightly(
            [docs], folder / "project", night=_unfinished(folder / "project"), settings=night_settings, log=log
        )
        result = {
            "night": record.get("night"),
            "promoted": record["promote"],
            "reasons": record["reasons"],
            "figures": record.get("figures"),
        }
    except OrgtuneError as e:
        result = {"night": None, "promoted": False, "error": e.render()}
    except Exception as e:  # noqa: BLE001 - recorded for the API; the traceback goes to night.log
        import traceback

        traceback.print_exc()
        result = {"night": None, "promoted": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        stop.set()
    with db.writing() as s:
        s.execute(
            update(NightlySchedule)
            .where(NightlySchedule.project_id == project_id, NightlySchedule.runner == runner)
            .values(runner=None, heartbeat_at=None, last_finished_at=int(time.time()), last_result=result)
        )
    log(f"night done: {result}")
    return result


def _unfinished(project: Path) -> str | None:
    """A night a lost runner left without its gate record: resumed under its own name."""
    nights = project / "nights"
    if not nights.is_dir():
        return None
    open_ = sorted(p.name for p in nights.iterdir() if p.is_dir() and not (p / "gate.json").is_file())
    return open_[-1] if open_ else None


def status(db: Database, settings: ServiceSettings, project_id: str) -> dict:
    """The schedule with the project's nightly history and promoted night, for GET /v1/orgtune/nightly."""
    from orgtune.nightly.project import Project as NightlyProject

    out = {"object": "nightly", "schedule": get_schedule(db, project_id), "promoted": None, "history": []}
    folder = project_dir(settings, project_id) / "project"
    if (folder / "nightly.json").is_file():
        p = NightlyProject.open(folder, create=False)
        out["promoted"], out["history"] = p.promoted(), p.history()
    return out


def promoted_run(settings: ServiceSettings, project_id: str) -> tuple[str, Path, str] | None:
    """(night, run folder, base model) of the project's promoted night, or None."""
    from orgtune.nightly.project import Project as NightlyProject

    folder = project_dir(settings, project_id) / "project"
    if not (folder / "promoted.json").is_file():
        return None
    p = NightlyProject.open(folder, create=False)
    night = p.promoted()
    if night is None:
        return None
    return night, Path(p.state_record(night)["run"]), p.settings.model


def project_name(db: Database, project_id: str) -> str:
    with db.reading() as s:
        return s.get(Project, project_id).name


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    project_id, runner = args
    settings = ServiceSettings()
    db = Database(settings.db_url())
    result = run_night(db, settings, project_id, runner, log=lambda m: print(m, flush=True))
    return 0 if "error" not in result else 2


if __name__ == "__main__":
    sys.exit(main())
