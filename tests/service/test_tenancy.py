"""Projects and keys: a key sees only its project's files, jobs and models (404 otherwise); an admin
key manages keys and sees no project's data; a wrong or revoked key gets 401 — over both stores."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.service.conftest import chat_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def alpha_job(service, tmp_path_factory, tiny_model_dir):
    a = service.client("alpha")
    path = tmp_path_factory.mktemp("t") / "alpha.jsonl"
    path.write_text(chat_rows(4))
    f = a.files.create(file=path.open("rb"), purpose="fine-tune")
    job = a.fine_tuning.jobs.create(
        model=str(tiny_model_dir),
        training_file=f.id,
        suffix="secret",
        extra_body={"orgtune": {"config": {"training": {"max_steps": 2}}, "eval": {"enabled": False}}},
    )
    done = service.wait(job.id)
    assert done.status == "succeeded", service.runner_log(job.id)
    return f, done


def test_another_projects_key_gets_404_on_file_job_and_model(service, alpha_job):
    f, job = alpha_job
    b = service.client("beta")
    calls = [
        lambda: b.files.retrieve(f.id),
        lambda: b.files.content(f.id),
        lambda: b.files.delete(f.id),
        lambda: b.fine_tuning.jobs.retrieve(job.id),
        lambda: b.fine_tuning.jobs.cancel(job.id),
        lambda: b.fine_tuning.jobs.resume(job.id),
        lambda: list(b.fine_tuning.jobs.list_events(job.id)),
        lambda: b.fine_tuning.jobs.checkpoints.list(job.id),
        lambda: b.fine_tuning.jobs.create(model="smollm2-135m", training_file=f.id),
        lambda: b.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=f.id),
        lambda: b.chat.completions.create(
            model=job.fine_tuned_model, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        ),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert f.id not in [x.id for x in b.files.list()]
    assert b.fine_tuning.jobs.list().data == []
    assert job.fine_tuned_model not in [m.id for m in b.models.list()]
    # Alpha still has all of it.
    a = service.client("alpha")
    assert a.files.retrieve(f.id).id == f.id
    assert job.fine_tuned_model in [m.id for m in a.models.list()]
    r = a.chat.completions.create(
        model=job.fine_tuned_model, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
    )
    assert r.model == job.fine_tuned_model


def test_admin_key_manages_keys_and_sees_no_project_data(service, alpha_job):
    r = service.cli("service", "keys", "create", "--admin", "--name", "ops")
    assert r.returncode == 0, r.stderr
    admin = {"Authorization": f"Bearer {r.stdout.strip()}"}
    v1 = service.url + "/v1"
    made = httpx.post(f"{v1}/admin/keys", headers=admin, json={"project": "gamma", "name": "ci"}).json()
    assert made["key"].startswith("ot-") and made["project"] == "gamma"
    gamma = {"Authorization": f"Bearer {made['key']}"}
    assert httpx.get(f"{v1}/fine_tuning/jobs", headers=gamma).json()["data"] == []
    listed = httpx.get(f"{v1}/admin/keys", headers=admin).json()["data"]
    assert made["id"] in [k["id"] for k in listed] and all("key" not in k and "key_hash" not in k for k in listed)
    assert httpx.get(f"{v1}/files", headers=admin).status_code == 403  # admin keys hold no project
    assert httpx.get(f"{v1}/admin/keys", headers=gamma).status_code == 403
    assert httpx.delete(f"{v1}/admin/keys/{made['id']}", headers=admin).json()["deleted"] is True
    revoked = httpx.get(f"{v1}/fine_tuning/jobs", headers=gamma)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"
    missing = httpx.get(f"{v1}/models")
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{v1}/models", headers={"Authorization": "Bearer ot-not-a-key"}).status_code == 401
