"""The service app's request limits, in process over SQLite: a bearer token beyond ASCII is a 401 (not a
500), a JSON body over 4 MiB is a 413 in OpenAI's shape, and file uploads keep their own, larger cap."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from orgtune.service.app import MAX_BODY_MB, create_service_app
from orgtune.service.db import Database
from orgtune.service.keys import create_key
from orgtune.service.settings import ServiceSettings


class NoExecutor:
    name = "none"

    def start(self):
        pass

    def stop(self):
        pass

    def submit(self, job_id):
        pass

    def running(self):
        return []


@pytest.fixture
def service(tmp_path):
    settings = ServiceSettings(service_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/orgtune.db", max_upload_mb=8)
    db = Database(settings.db_url())
    app = create_service_app(settings, db=db, executor=NoExecutor(), log=lambda m: None)
    with TestClient(app) as client:
        _, key = create_key(db, project="alpha")
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


@pytest.mark.parametrize("token", ["ot-clé-ключ".encode(), b"ot-\xff\xfe", "clé".encode()])
def test_a_bearer_token_beyond_ascii_is_401(service, token):
    r = service.get("/v1/models", headers={"Authorization": b"Bearer " + token})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert service.get("/v1/models").status_code == 200


def test_json_bodies_are_capped_but_uploads_keep_their_own_limit(service):
    big = b'{"model": "smollm2-135m", "training_file": "' + b"a" * (MAX_BODY_MB * 2**20) + b'"}'
    r = service.post("/v1/fine_tuning/jobs", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    rows = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    data = rows * (5 * 2**20 // len(rows) + 1)  # 5 MiB: over the JSON cap, under max_upload_mb
    r = service.post("/v1/files", files={"file": ("train.jsonl", data)}, data={"purpose": "fine-tune"})
    assert r.status_code == 200, r.text
    assert service.get("/v1/files").json()["data"][0]["bytes"] == len(data)
