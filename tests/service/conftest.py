"""The service under test: a real `orgtune service` process on loopback, over SQLite and over a real
PostgreSQL that the tests start themselves; every module that uses `service` runs once per store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import ROOT
from tests.service.pg import TempPostgres

STORES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres():
    pg = TempPostgres().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="module", params=STORES)
def store_url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite')}/orgtune.db"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A service process and what a test needs around it: its env, keys per project, an openai client."""

    def __init__(self, url: str, service_dir: Path, tiny_model_dir: Path, **settings):
        self.db_url, self.dir = url, service_dir
        self.env = {
            **os.environ,
            "ORGTUNE_DATABASE_URL": url,
            "ORGTUNE_SERVICE_DIR": str(service_dir),
            "ORGTUNE_HEARTBEAT_INTERVAL": "0.5",
            "ORGTUNE_HEARTBEAT_TIMEOUT": "4",
            "ORGTUNE_POLL_INTERVAL": "0.2",
            "ORGTUNE_CANCEL_WAIT": "30",
            "ORGTUNE_MAX_UPLOAD_MB": "4",
            "ORGTUNE_MODEL_PATHS": json.dumps([str(tiny_model_dir.parent)]),
        }
        self.env.update({f"ORGTUNE_{k.upper()}": str(v) for k, v in settings.items()})
        self.keys: dict[str, str] = {}
        self.proc = None
        self.url = ""

    def cli(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "orgtune", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=ROOT,
        )

    def key(self, project: str) -> str:
        if project not in self.keys:
            r = self.cli("service", "keys", "create", "--project", project)
            assert r.returncode == 0, r.stderr
            self.keys[project] = r.stdout.strip()
        return self.keys[project]

    def client(self, project: str = "alpha") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.key(project), max_retries=0, timeout=120)

    def start(self, *args: str) -> Service:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(self.dir / f"service-{port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orgtune", "service", "--port", str(port), *args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError("service did not start:\n" + (self.dir / f"service-{port}.log").read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def wait(
        self, job_id: str, project: str = "alpha", *, until=("succeeded", "failed", "cancelled"), timeout: float = 600
    ):
        client = self.client(project)
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = client.fine_tuning.jobs.retrieve(job_id)
            if job.status in until:
                return job
            time.sleep(0.3)
        raise AssertionError(f"{job_id} still {job.status} after {timeout} s:\n{self.runner_log(job_id)}")

    def runner_log(self, job_id: str) -> str:
        p = self.dir / "jobs" / job_id / "runner.log"
        return p.read_text()[-4000:] if p.is_file() else "(no runner log)"

    def events(self, job_id: str, project: str = "alpha") -> list:
        """Oldest first."""
        return list(reversed(list(self.client(project).fine_tuning.jobs.list_events(job_id, limit=100))))


@pytest.fixture(scope="module")
def service(store_url, tmp_path_factory, tiny_model_dir):
    svc = Service(store_url, tmp_path_factory.mktemp("service"), tiny_model_dir).start()
    yield svc
    svc.stop()


def chat_rows(n: int = 8) -> str:
    facts = [
        ("pump pressure", "9 bar"),
        ("boiler volume", "1.2 litres"),
        ("warranty", "24 months"),
        ("descaling interval", "every 3 months"),
        ("power", "1350 W"),
        ("weight", "6.1 kg"),
        ("water tank", "2.0 litres"),
        ("standby", "0.4 W"),
    ]
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is the Halvo's {k}?"},
                {"role": "assistant", "content": f"The Halvo's {k} is {v}."},
            ]
        }
        for k, v in facts[:n]
    ]
    return "".join(json.dumps(r) + "\n" for r in rows)


def night_settings(tiny_model_dir) -> dict:
    """Nightly settings for a fast night on the tiny model; a gate that promotes any night that trained."""
    return {
        "model": str(tiny_model_dir),
        "threshold": 0,
        "old_margin": 1,
        "general_margin": 1,
        "general_items": 8,
        "examples_per_fact": 1,
        "max_steps": 3,
        "general_replay": 0,
    }


def wait_night(service, headers, count: int, timeout: float = 600) -> dict:
    """The project's nightly status once `count` nights have finished (the schedule idle again)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = httpx.get(service.url + "/v1/orgtune/nightly", headers=headers, timeout=30).json()
        nights = [h for h in st["history"] if h["event"] == "night"]
        if len(nights) >= count and not st["schedule"]["running"] and st["schedule"]["last_finished_at"]:
            return st
        time.sleep(0.5)
    log = next(service.dir.glob("nightly/*/night.log"), None)
    raise AssertionError(f"no night {count} after {timeout} s:\n{log.read_text()[-4000:] if log else '(no log)'}")
