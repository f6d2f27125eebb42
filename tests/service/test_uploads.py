"""Uploads and validation through the API, over both stores: hostile archives are refused with the
member named and nothing kept; a bad JSONL fails its job in validating_files with file:line; a good
archive of documents becomes a job that builds data, trains, evaluates and exports, each result
downloadable."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import openai
import pytest

from tests.conftest import SAMPLES
from tests.service.conftest import chat_rows

pytestmark = pytest.mark.slow


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "service-" not in p.name)


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _symlink_tar(path):
    with tarfile.open(path, "w:gz") as t:
        info = tarfile.TarInfo("manual.md")
        info.size = 6
        t.addfile(info, io.BytesIO(b"# Hi\n\n"))
        link = tarfile.TarInfo("passwd.md")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    return path


def test_hostile_archives_are_refused_and_nothing_is_kept(service, tmp_path):
    client = service.client("alpha")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w") as z:
        for i in range(10_000):
            z.writestr(f"d/{i}.md", b"x")
    cases = {
        "escape.zip": (_zip(tmp_path / "escape.zip", {"ok.md": b"# ok\n", "../x.md": b"# out\n"}), "../x.md"),
        "link.tar.gz": (_symlink_tar(tmp_path / "link.tar.gz"), "passwd.md"),
        "bomb.zip": (bomb, "2000"),
    }
    before = tree(service.dir)
    for name, (path, named) in cases.items():
        with pytest.raises(openai.BadRequestError) as e:
            client.files.create(file=(name, path.read_bytes()), purpose="fine-tune")
        body = e.value.body
        assert body["code"] == "invalid_file" and named in body["message"] and name in body["message"], body
    assert tree(service.dir) == before
    assert not (service.dir.parent / "x.md").exists() and not (service.dir / "files" / "x.md").exists()
    assert [f.filename for f in client.files.list() if f.filename in cases] == []


def test_upload_limits_and_kinds(service, tmp_path):
    client = service.client("alpha")
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("notes.exe", b"MZ\x90\x00"), purpose="fine-tune")
    assert "notes.exe" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("data.jsonl", chat_rows(2).encode()), purpose="assistants")
    assert e.value.body["param"] == "purpose"
    with pytest.raises(openai.APIStatusError) as e:
        client.files.create(file=("big.jsonl", b"{}\n" * (3 * 2**20)), purpose="fine-tune")  # over the test cap
    assert e.value.status_code == 413


def test_a_bad_jsonl_fails_its_job_with_the_line_number(service, tmp_path):
    client = service.client("alpha")
    good = chat_rows(3).splitlines()
    bad = "\n".join([good[0], good[1], '{"messages": [{"role": "user", "content": "unfinished"}', good[2]]) + "\n"
    f = client.files.create(file=("broken.jsonl", bad.encode()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m", training_file=f.id)
    done = service.wait(job.id)
    assert done.status == "failed" and done.fine_tuned_model is None
    assert done.error.code == "invalid_training_file" and done.error.param == "training_file"
    assert "broken.jsonl:3: invalid JSON" in done.error.message
    assert str(service.dir) not in done.error.message  # the user's file name, not our storage path
    assert not (service.dir / "jobs" / job.id / "run").exists()


def test_an_archive_of_documents_builds_trains_evaluates_and_exports(service, tmp_path, tiny_model_dir):
    client = service.client("alpha")
    archive = tmp_path / "manuals.zip"
    docs = ["halvo-quick-start.txt", "halvo-warranty-policy.docx"]
    with zipfile.ZipFile(archive, "w") as z:
        for d in docs:
            z.write(SAMPLES / "docs" / d, f"manuals/{d}")
        z.writestr("manuals/logo.png", b"\x89PNG....")
    f = client.files.create(file=archive.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(tiny_model_dir),
        training_file=f.id,
        suffix="manuals",
        extra_body={
            "orgtune": {
                "config": {"training": {"max_steps": 4}},
                "eval": {"max_probes": 4, "general_items": 10},
                "export": {"gguf": ["q8_0"], "verify": False},
            }
        },
    )
    done = service.wait(job.id)
    assert done.status == "succeeded", (done.error, service.runner_log(job.id))
    messages = [e.message for e in service.events(job.id)]
    assert any(m.startswith("Building training data from 2 document(s)") for m in messages)
    evals = [e for e in service.events(job.id) if e.type == "metrics" and "eval" in (e.data or {})]
    assert set(evals[0].data["eval"]) == {"base", "tuned"}
    names = {client.files.retrieve(r).filename: r for r in done.result_files}
    assert {"step_metrics.csv", "report.md", "metrics.json", "model-q8_0.gguf", "Modelfile"} <= set(names)
    report = client.files.content(names["report.md"]).text
    assert "base" in report and "tuned" in report
    metrics = json.loads(client.files.content(names["metrics.json"]).text)
    probes = metrics["backends"]["tuned"]["probes"]
    assert probes["trained"]["overall"]["n"] + probes["held_out"]["overall"]["n"] == 4
    gguf = client.files.content(names["model-q8_0.gguf"]).content
    assert gguf[:4] == b"GGUF" and len(gguf) == client.files.retrieve(names["model-q8_0.gguf"]).bytes
    assert "FROM ./model-q8_0.gguf" in client.files.content(names["Modelfile"]).text
