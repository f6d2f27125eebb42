"""The README's service examples, run as written (the openai-client script and the curl session)
against a real `orgtune service` on loopback, with OT and KEY set as the README says."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.service.conftest import Service

pytestmark = pytest.mark.slow


def example(kind: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- example: {kind} -->\n```{kind}\n(.*?)```", readme, re.S)
    assert m, f"README has no {kind} example"
    return m.group(1)


@pytest.fixture(scope="module")
def readme_service(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("readme")
    svc = Service(f"sqlite:///{folder}/orgtune.db", folder, tiny_model_dir).start()
    yield svc
    svc.stop()


def env(svc) -> dict:
    return {**svc.env, "OT": svc.url + "/v1", "KEY": svc.key("demo")}


def test_the_openai_client_example_runs(readme_service):
    r = subprocess.run(
        [sys.executable, "-c", example("python")],
        cwd=ROOT,
        env=env(readme_service),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("New fine-tuned model created: ft:smollm2-135m:halvo:ftjob-")
    assert lines[-1].strip()  # the fine-tuned model's answer


def test_the_curl_example_runs(readme_service):
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example("bash")],
        cwd=ROOT,
        env=env(readme_service),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    out, docs, dec = r.stdout.strip(), [], json.JSONDecoder()
    while out:  # curl prints the two bodies back to back
        obj, end = dec.raw_decode(out)
        docs.append(obj)
        out = out[end:].strip()
    events, checkpoints = docs
    messages = [e["message"] for e in events["data"]]
    assert messages[0].startswith("New fine-tuned model created") and any(m.startswith("Evaluation") for m in messages)
    assert checkpoints["data"][0]["step_number"] == 5
