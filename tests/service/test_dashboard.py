"""Acceptance: the web dashboard in a real browser (headless Chromium from Debian's `chromium` package,
driven by Playwright) against a real `orgtune service` on loopback: log in, upload a small JSONL dataset
(training and validation file), start a job on the embedded model, watch the loss curve grow, reload
mid-run and see it continue, cancel and resume, open the eval report (validation loss, general check,
answers beside the data's reference answers) and exports; a second job built from a document, whose
report shows each sample's source span; two nights of the project's nightly schedule, their gate decisions
in the history and a rollback from the page; at a phone width too; another project's key sees none of it.

Screenshots of the main pages go to test-artifacts/screenshots/ (kept by CI).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SAMPLES
from tests.service.conftest import Service, night_settings, wait_night

pytestmark = pytest.mark.slow(minutes=6)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
OPTIONS = {
    "config": {
        "training": {"save_steps": 4, "save_total_limit": 2, "general_replay": 0},
        "model": {"max_seq_length": 128},
    },
    "eval": {"general_items": 4, "general_samples": 2},  # the sampled rule, on a budget: 8 answers per model
    "export": {"gguf": ["q8_0"], "verify": False},
}
MAX_STEPS = 24
DOC = SAMPLES / "docs" / "halvo-quick-start.txt"
DOC_OPTIONS = {  # the document job: the tiny model, a short run; what it shows is the report's source spans
    "config": {"training": {"general_replay": 0}, "model": {"max_seq_length": 128}},
    "build": {"examples_per_fact": 1},
    "eval": {"max_probes": 4, "general_items": 2},
    "export": {"gguf": []},
}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the test extra: pip install -e '.[test]'"
    )
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def svc(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("dashboard")
    s = Service(f"sqlite:///{folder}/orgtune.db", folder, tiny_model_dir, nightly_tick=0.5).start()
    yield s
    s.stop()


def shot(page, name: str, full: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def login(browser, svc, project: str, viewport=DESKTOP):
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(svc.url + "/")
    page.wait_for_url("**/login")
    page.get_by_label("API key").fill(svc.key(project))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(svc.url + "/")
    page.get_by_role("heading", name="Jobs").wait_for()
    return page


def points(page) -> int:
    return int(page.locator("#loss-chart").get_attribute("data-train-points"))


def wait_points(page, more_than: int, timeout: float = 90) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = points(page)
        if n > more_than:
            return n
        page.wait_for_timeout(150)
    raise AssertionError(f"the loss curve stayed at {points(page)} points")


def wait_status(page, status: str, timeout: float = 300) -> None:
    page.locator(f'#job-summary[data-status="{status}"]').wait_for(timeout=timeout * 1000)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    """A small chat dataset, split into a training and a validation file."""
    rows = (SAMPLES / "demo_chat.jsonl").read_text().splitlines(keepends=True)
    folder = tmp_path_factory.mktemp("dataset")
    (folder / "train.jsonl").write_text("".join(rows[:50]))
    (folder / "val.jsonl").write_text("".join(rows[50:]))
    return folder / "train.jsonl", folder / "val.jsonl"


def start_job(page, training: Path, model: str, steps: int, options: dict, validation: Path | None = None) -> str:
    page.get_by_role("link", name="New job").first.click()
    page.get_by_label("Training file").set_input_files(str(training))
    if validation is not None:
        page.get_by_label("Validation file").set_input_files(str(validation))
    page.get_by_label("Model").fill(model)
    page.get_by_label("Max steps").fill(str(steps))
    page.get_by_label("orgtune options").fill(json.dumps(options))
    shot(page, "new-job")
    page.get_by_role("button", name="Upload and start the job").click()
    page.wait_for_url("**/#/jobs/ftjob-*")
    return page.url.rsplit("/", 1)[1]


def test_dashboard_in_a_browser(browser, svc, dataset, tiny_model_dir):
    page = login(browser, svc, "alpha")
    shot(page, "login-done-jobs-empty")
    streams = []
    page.on("request", lambda r: streams.append(r.url) if "/events/stream?" in r.url else None)
    train, val = dataset
    job_id = start_job(page, train, "smollm2-135m", MAX_STEPS, OPTIONS, validation=val)  # the embedded model

    # The curve grows while the job trains; a reload mid-run redraws it whole and it keeps growing.
    first = wait_points(page, 2)
    grown = wait_points(page, first)
    assert page.locator("#job-summary").get_attribute("data-status") == "running", svc.runner_log(job_id)
    page.reload()
    page.locator("#loss-chart").wait_for()
    after_reload = points(page)
    assert after_reload >= grown
    assert any("last_event_id=0" not in u for u in streams[1:]), streams  # the reload resumed after its last event
    assert wait_points(page, after_reload) > after_reload
    shot(page, "job-running")

    # Cancel stops after the current step; resume continues from the checkpoint and the curve with it.
    page.get_by_role("button", name="Cancel").click()
    wait_status(page, "cancelled")
    stopped = points(page)
    assert page.get_by_role("button", name="Resume").is_enabled()
    page.get_by_role("button", name="Resume").click()
    wait_status(page, "succeeded", timeout=900)
    assert points(page) >= stopped and points(page) == MAX_STEPS  # one point per step, the newest record wins
    assert page.get_by_role("table", name="Checkpoints kept (newest first)").is_visible()
    assert (
        f"max_steps: {MAX_STEPS}"
        in page.locator("section", has=page.get_by_role("heading", name="Resolved config")).inner_text()
    )
    shot(page, "job-succeeded")
    page.evaluate("document.getElementById('loss-h').scrollIntoView()")
    shot(page, "job-succeeded-chart", full=False)  # the README's picture (docs/img/dashboard-job.png)

    # The eval report of a dataset job: validation loss base vs tuned, the general check, the data's own
    # questions answered beside its reference answers (with their file:line), the loss plot; the exports.
    page.get_by_role("link", name="Eval report and exports").click()
    page.get_by_role("heading", name="Evaluation: base vs tuned").wait_for()
    samples = page.get_by_role("table", name="Sample answers to the dataset's own questions")
    samples.wait_for()
    assert "val.jsonl:1" in samples.inner_text() and "Velbrook" in samples.inner_text()
    cells = page.get_by_role("table", name="Validation loss on assistant tokens").locator("tbody tr").all()
    loss = {r.locator("td").nth(0).inner_text(): float(r.locator("td").nth(1).inner_text()) for r in cells}
    assert set(loss) == {"base", "tuned"} and loss["tuned"] < loss["base"], loss  # 24 steps on the same facts
    assert "General instructions, greedy: base right" in page.locator("#eval").inner_text()
    assert "General instructions, 2 sampled answers each: worse" in page.locator("#eval").inner_text()
    page.locator(".plots img").first.wait_for()
    assert page.evaluate("[...document.querySelectorAll('.plots img')].every(i => i.complete && i.naturalWidth > 0)")
    gguf = page.get_by_role("table", name="GGUF files")
    assert "q8_0" in gguf.inner_text() and "MiB" in gguf.inner_text()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download Modelfile").click()
    assert "FROM ./model-q8_0.gguf" in Path(dl.value.path()).read_text()
    shot(page, "report")

    # A job built from a document (the tiny model, a short run): its report shows each sample's source span.
    page.goto(f"{svc.url}/#/jobs")
    doc_job = start_job(page, DOC, str(tiny_model_dir), 2, DOC_OPTIONS)
    wait_status(page, "succeeded", timeout=400)
    page.get_by_role("link", name="Eval report and exports").click()
    spans = page.get_by_role("table", name="Sample answers, with the source span of each fact")
    spans.wait_for()
    assert "halvo-quick-start.txt" in spans.inner_text() and "characters" in spans.inner_text()
    assert page.get_by_role("table", name="Closed-book probes, trained facts: accuracy per task").is_visible()
    shot(page, "report-documents")

    # Nightly: two nights on the project's documents (the second sees the quick start changed), their gate
    # decisions in the history, then a rollback from the page.
    alpha = {"Authorization": f"Bearer {svc.key('alpha')}"}
    nightly = svc.url + "/v1/orgtune/nightly"
    r = httpx.put(nightly, json={"cron": "0 3 * * *", "settings": night_settings(tiny_model_dir)}, headers=alpha)
    assert r.status_code == 200, r.text
    assert httpx.post(nightly + "/run", headers=alpha).status_code == 200

    # Phone width: a fresh tab (nothing cached) replays the whole history from the store.
    phone = login(browser, svc, "alpha", viewport=PHONE)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "phone-jobs")
    phone.goto(f"{svc.url}/#/jobs/{job_id}")
    wait_status(phone, "succeeded")
    assert wait_points(phone, MAX_STEPS - 1) == MAX_STEPS
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "phone-job")
    for route, heading, name in (
        (f"#/jobs/{job_id}/report", "Evaluation: base vs tuned", "phone-report"),
        ("#/new", "New job", "phone-new-job"),
    ):
        phone.goto(f"{svc.url}/{route}")
        phone.get_by_role("heading", name=heading).wait_for()
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], route  # wide tables scroll
        shot(phone, name)
    n1 = wait_night(svc, alpha, 1)["promoted"]
    changed = DOC.read_text().replace("Brew pressure: 8.5 bar", "Brew pressure: 9.5 bar")
    svc.client("alpha").files.create(file=(DOC.name, changed.encode()), purpose="fine-tune")
    assert httpx.post(nightly + "/run", headers=alpha).status_code == 200
    n2 = wait_night(svc, alpha, 2)["promoted"]
    assert n1 and n2 and n1 != n2
    page.goto(f"{svc.url}/#/nightly")
    page.get_by_role("heading", name="Nightly training").wait_for()
    history = page.get_by_role("table", name="Nights and rollbacks, newest first")
    rows = history.locator("tbody tr")
    assert rows.count() == 2 and all("promoted" in rows.nth(i).inner_text() for i in range(2))
    assert n2 in rows.nth(0).inner_text() and n1 in rows.nth(1).inner_text()  # newest first
    facts = page.locator("dl.facts")
    assert n2 in facts.inner_text()
    shot(page, "nightly")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Roll back").click()
    page.get_by_text(f"Rolled back from {n2} to {n1}.").wait_for()
    assert n1 in page.locator("dl.facts").inner_text() and n2 not in page.locator("dl.facts").inner_text()
    assert page.get_by_role("table", name="Nights and rollbacks, newest first").locator("tbody tr").count() == 3
    assert httpx.get(nightly, headers=alpha).json()["promoted"] == n1
    shot(page, "nightly-rolled-back")
    page.goto(f"{svc.url}/#/jobs")
    page.locator(f'tr[data-job="{job_id}"]').wait_for()
    shot(page, "jobs")

    # Another project's key: no jobs listed, the job and its report are not found, nor its stream.
    beta = login(browser, svc, "beta")
    beta.get_by_text("No jobs yet").wait_for()
    beta.goto(f"{svc.url}/#/nightly")
    beta.get_by_text("This project has no nightly schedule").wait_for()
    for route in (f"#/jobs/{job_id}", f"#/jobs/{job_id}/report", f"#/jobs/{doc_job}"):
        beta.goto(f"{svc.url}/{route}")
        beta.get_by_role("heading", name="Not found").wait_for()
    key = {"Authorization": f"Bearer {svc.key('beta')}"}
    assert httpx.get(f"{svc.url}/v1/fine_tuning/jobs/{job_id}/events/stream", headers=key).status_code == 404
