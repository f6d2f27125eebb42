"""Nightly training as a service schedule, on SQLite and PostgreSQL: a cron per project, the night run by
the scheduler on the project's uploads with the CLI's `nightly`, its promoted model servable at once, a
re-uploaded document seen as changed, rollback; two schedulers claiming one due night → one runs it;
another project sees none of it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from orgtune.service.db import Database
from orgtune.service.keys import create_key
from orgtune.service.nightly import claim, next_time, run_now, set_schedule
from orgtune.service.settings import ServiceSettings
from tests.conftest import SAMPLES
from tests.service.conftest import Service, night_settings, wait_night

pytestmark = pytest.mark.slow
DOCS = SAMPLES / "docs"


@pytest.fixture(scope="module")
def service(store_url, tmp_path_factory, tiny_model_dir):
    svc = Service(store_url, tmp_path_factory.mktemp("service"), tiny_model_dir, nightly_tick=0.5).start()
    yield svc
    svc.stop()


def test_a_scheduled_night_promotes_a_servable_model_and_rolls_back(service, tiny_model_dir):
    url = service.url + "/v1/orgtune/nightly"
    alpha = {"Authorization": f"Bearer {service.key('alpha')}"}
    beta = {"Authorization": f"Bearer {service.key('beta')}"}
    client = service.client("alpha")
    for name in ("halvo-quick-start.txt", "halvo-cleaning-card.pdf"):
        client.files.create(file=(name, (DOCS / name).read_bytes()), purpose="fine-tune")

    r = httpx.put(url, json={"cron": "every night", "settings": night_settings(tiny_model_dir)}, headers=alpha)
    assert r.status_code == 400 and r.json()["error"]["param"] == "cron"
    r = httpx.put(
        url, json={"cron": "0 3 * * *", "settings": {**night_settings(tiny_model_dir), "treshold": 1}}, headers=alpha
    )
    assert r.status_code == 400 and "treshold" in r.json()["error"]["message"]
    r = httpx.put(url, json={"cron": "0 3 * * *", "settings": night_settings(tiny_model_dir)}, headers=alpha)
    assert r.status_code == 200, r.text
    first_due = r.json()["schedule"]["next_run_at"]
    due = datetime.fromtimestamp(first_due, UTC)
    assert (due.hour, due.minute) == (3, 0) and 0 < first_due - time.time() <= 86400

    # another project: no schedule, nothing to run or roll back
    assert httpx.get(url, headers=beta).json()["schedule"] is None
    assert httpx.post(url + "/run", headers=beta).status_code == 404
    assert httpx.post(url + "/rollback", json={}, headers=beta).status_code == 404

    assert httpx.post(url + "/run", headers=alpha).status_code == 200
    st = wait_night(service, alpha, 1)
    last = st["schedule"]["last_result"]
    assert last["promoted"] and st["promoted"] == last["night"], last
    assert st["schedule"]["next_run_at"] == first_due  # back on the cron: the next 03:00
    assert [h["night"] for h in st["history"] if h["event"] == "night"] == [last["night"]]  # once
    n1, model = last["night"], st["model"]
    assert model.endswith(":alpha:nightly") and model in [m.id for m in client.models.list()]
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Brew pressure?"}], max_tokens=4
    )
    assert reply.model == model and reply.choices[0].message.content is not None
    with pytest.raises(Exception) as e:
        service.client("beta").chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert getattr(e.value, "status_code", None) == 404

    # the quick start uploaded again, changed: the next night sees one changed document and its changed fact
    changed = (DOCS / "halvo-quick-start.txt").read_text().replace("Brew pressure: 8.5 bar", "Brew pressure: 9.5 bar")
    client.files.create(file=("halvo-quick-start.txt", changed.encode()), purpose="fine-tune")
    httpx.post(url + "/run", headers=alpha)
    st = wait_night(service, alpha, 2)
    night2 = [h for h in st["history"] if h["event"] == "night"][-1]
    assert night2["promoted"] and night2["figures"]["changed_facts"]["n"] >= 1, night2
    assert st["promoted"] == night2["night"] != n1
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Brew pressure?"}], max_tokens=4)

    r = httpx.post(url + "/rollback", json={}, headers=alpha)
    assert r.status_code == 200 and r.json()["rolled_back"] == {"from": night2["night"], "to": n1}
    assert httpx.get(url, headers=alpha).json()["promoted"] == n1
    assert httpx.delete(url, headers=alpha).status_code == 200
    assert httpx.get(url, headers=alpha).json()["promoted"] == n1  # the nights and the model stay


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_schedulers_claim_a_due_night_once(store, request, tmp_path):
    # a store of its own: the module's service would claim a due night itself
    url = (
        f"sqlite:///{tmp_path}/race.db"
        if store == "sqlite"
        else request.getfixturevalue("postgres").create_database(f"race_{tmp_path.name[-16:].lower()}")
    )
    db = Database(url)
    db.migrate()
    row, _ = create_key(db, project=f"race-{tmp_path.name[-12:]}")
    set_schedule(db, row.project_id, "0 3 * * *", {"model": "smollm2-135m"})
    settings = ServiceSettings(service_dir=tmp_path)
    for attempt in range(3):
        assert run_now(db, row.project_id)
        now = time.time()
        won, barrier = [], threading.Barrier(4)

        def take(i, attempt=attempt, now=now, won=won, barrier=barrier):
            barrier.wait()
            if claim(db, settings, row.project_id, f"scheduler-{attempt}-{i}", now):
                won.append(i)

        threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, won
        # the winner holds it (heartbeat fresh): a due night waits for it; then it is released
        run_now(db, row.project_id)
        assert not claim(db, settings, row.project_id, "late", time.time())
        from sqlalchemy import update

        from orgtune.service.models import NightlySchedule

        with db.writing() as s:
            s.execute(update(NightlySchedule).values(runner=None, heartbeat_at=None))
    assert next_time("0 3 * * *", 0) == 3 * 3600
    db.dispose()
