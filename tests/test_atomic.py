"""Crash consistency of atomic folders and append-only logs: a real process SIGKILLed at each step of
`building_folder` leaves the old or the new folder under the final name, never none and never a mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from orgtune import atomic
from orgtune.errors import OrgtuneError
from tests.conftest import ROOT

BUILD = """
import os, signal, sys
from pathlib import Path
from orgtune import atomic
final, point, exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
if not exchange:
    atomic._exchange = lambda a, b: False  # as on a filesystem without renameat2 RENAME_EXCHANGE
atomic._crash_hook = lambda name: os.kill(os.getpid(), signal.SIGKILL) if name == point else None
with atomic.building_folder(final, replace=True, checksums=True) as staging:
    (staging / "sub").mkdir()
    (staging / "data.bin").write_bytes(b"new" * 1000)
    (staging / "sub" / "more.bin").write_bytes(b"NEW")
    if point == "inside":
        os.kill(os.getpid(), signal.SIGKILL)
"""

# crash point -> what the final name holds afterwards (once remove_partials has run)
POINTS = {"inside": "old", "written": "old", "marked": "old", "aside": "old", "swapped": "new", "none": "new"}


def build_in_child(final, point: str, exchange: bool) -> int:
    r = subprocess.run(
        [sys.executable, "-c", BUILD, str(final), point, "1" if exchange else "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert r.returncode in (0, -signal.SIGKILL), r.stderr
    return r.returncode


def content(folder) -> str:
    return "new" if (folder / "data.bin").read_bytes() == b"new" * 1000 else "old"


@pytest.mark.parametrize("exchange", [True, False], ids=["rename-exchange", "rename-aside"])
@pytest.mark.parametrize("point", sorted(POINTS))
def test_replace_killed_at_each_step_keeps_old_or_new(point, exchange, tmp_path):
    if exchange and atomic._renameat2() is None:
        pytest.skip("no renameat2 in this libc")
    if exchange and point == "aside":
        pytest.skip("the exchange has no aside step")
    final = tmp_path / "checkpoint-4"
    with atomic.building_folder(final, checksums=True) as staging:
        (staging / "data.bin").write_bytes(b"old")
    rc = build_in_child(final, point, exchange)
    assert rc == (0 if point == "none" else -signal.SIGKILL)
    if exchange or point != "aside":  # one rename at a time: a complete folder under the final name throughout
        assert atomic.is_complete(final) and atomic.verify(final) is None
    else:  # killed between the two renames: nothing there until the next reader puts the old one back
        assert not final.exists() and any(p.name.startswith(atomic.ASIDE_PREFIX) for p in tmp_path.iterdir())
    atomic.remove_partials(tmp_path)  # what the next reader (last_checkpoint, open_run) does first
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-4"]
    assert atomic.is_complete(final) and atomic.verify(final) is None
    assert content(final) == POINTS[point]
    if POINTS[point] == "new":
        assert (final / "sub" / "more.bin").read_bytes() == b"NEW"
    else:
        assert not (final / "sub").exists()


@pytest.mark.parametrize("point", ["inside", "written", "marked", "none"])
def test_new_folder_killed_at_each_step_is_whole_or_absent(point, tmp_path):
    final = tmp_path / "adapter"
    build_in_child(final, point, exchange=True)
    atomic.remove_partials(tmp_path)
    if point == "none":
        assert atomic.verify(final) is None and content(final) == "new"
    else:
        assert list(tmp_path.iterdir()) == []


def test_files_are_fsynced_before_the_marker(tmp_path, monkeypatch):
    synced, real = [], os.fsync

    def recording(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording)
    with atomic.building_folder(tmp_path / "out") as staging:
        (staging / "sub").mkdir()
        (staging / "a.bin").write_bytes(b"a")
        (staging / "sub" / "b.bin").write_bytes(b"b")
    names = [os.path.basename(p) for p in synced]
    marker = names.index(atomic.COMPLETE_MARKER)
    assert {"a.bin", "b.bin", "sub"} <= set(names[:marker])
    assert names[marker + 1 :].count(os.path.basename(staging)) == 1  # the staging folder, after its marker
    assert synced[-1] == str(tmp_path)  # the rename itself


def test_marker_records_and_verify_checks_sizes_and_hashes(tmp_path):
    final = tmp_path / "ck"
    with atomic.building_folder(final, checksums=True) as staging:
        (staging / "w.bin").write_bytes(bytes(range(256)) * 8)
    files = json.loads((final / atomic.COMPLETE_MARKER).read_text())["files"]
    assert files["w.bin"]["size"] == 2048 and len(files["w.bin"]["sha256"]) == 64
    assert atomic.verify(final) is None
    data = bytearray((final / "w.bin").read_bytes())
    data[1000] ^= 0x01
    (final / "w.bin").write_bytes(bytes(data))
    assert "sha256" in atomic.verify(final)
    (final / "w.bin").write_bytes(bytes(data[:100]))
    assert "100 bytes, 2048" in atomic.verify(final)
    (final / "w.bin").unlink()
    assert "missing" in atomic.verify(final)
    (final / atomic.COMPLETE_MARKER).write_text('{"files": ')
    assert "unreadable" in atomic.verify(final)
    (final / atomic.COMPLETE_MARKER).write_text("ok\n")  # a marker written before checksums: complete, unverified
    assert atomic.verify(final) is None


APPEND = """
import sys
from orgtune import atomic
i = 0
while True:
    atomic.append_jsonl(sys.argv[1], {"step": i, "loss": 1.0 / (i + 1), "pad": "x" * 300})
    i += 1
"""


def test_appends_killed_anywhere_leave_whole_lines(tmp_path):
    log = tmp_path / "metrics.jsonl"
    for attempt in range(3):
        log.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-c", APPEND, str(log)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        while not log.exists() or log.stat().st_size < 20_000 * (attempt + 1):
            assert proc.poll() is None
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        rows = atomic.read_jsonl_appended(log)
        assert [r["step"] for r in rows] == list(range(len(rows))) and len(rows) > 10


def test_readers_skip_a_cut_last_line_and_name_a_bad_one_elsewhere(tmp_path):
    from orgtune.evaluate.report import _loss_plot
    from orgtune.train.metrics import truncate_metrics
    from orgtune.train.runfolder import Run

    log = tmp_path / "metrics.jsonl"
    whole = "".join(json.dumps({"step": s, "loss": 2.0 - s / 10}) + "\n" for s in (1, 2, 3))
    log.write_text(whole + '{"step": 4, "lo')  # what a kill in the middle of an old-style append left
    assert [r["step"] for r in atomic.read_jsonl_appended(log)] == [1, 2, 3]
    assert _loss_plot(Run(path=tmp_path, config=None, manifest={}), tmp_path / "loss.png")
    truncate_metrics(log, up_to_step=2)
    assert log.read_text() == "".join(whole.splitlines(keepends=True)[:2])
    log.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(OrgtuneError, match=f"{log}:2: not a JSON record"):
        atomic.read_jsonl_appended(log)
