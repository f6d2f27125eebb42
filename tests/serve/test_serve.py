"""`orgtune serve` as a real server on loopback, driven by the official `openai` client.

Two adapters (different training data, a high learning rate so that they really differ) on one tiny
base; every answer must equal what `orgtune ask` gives for that adapter.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from orgtune.data.build import BuildSettings, build
from orgtune.train.sft import train
from tests.conftest import ROOT, SAMPLES, run_cli

KEY, ADMIN = "test-key-123", "admin-key-456"
QUESTIONS = ["What pressure does the pump reach?", "How often should I descale?", "Who makes the Halvo?"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("serve")
    out = {}
    for name, doc, seed in (("alpha", "halvo-quick-start.txt", 1), ("beta", "halvo-warranty-policy.docx", 2)):
        data = build([SAMPLES / "docs" / doc], tmp / f"data-{name}", BuildSettings(), log=lambda m: None).out
        out[name] = train(
            data,
            tmp / name,
            log=lambda m: None,
            overrides={
                "model": {"name": str(tiny_model_dir)},
                "training": {
                    "max_steps": 3,
                    "save_steps": 100,
                    "learning_rate": 0.05,
                    "seed": seed,
                    "general_replay": 0,
                },
            },
        ).path  # each adapter learns its own document only
    return out


@pytest.fixture(scope="module")
def server(runs, tiny_model_dir):
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "orgtune",
        "serve",
        "--model",
        str(tiny_model_dir),
        "--port",
        str(port),
        "--adapter",
        f"alpha={runs['alpha']}",
        "--adapter",
        f"beta={runs['beta']}",
        "--api-key",
        KEY,
        "--admin-key",
        ADMIN,
        "--max-tokens-limit",
        "1024",
    ]
    proc, url = start_serve(cmd, port)
    yield {"url": url, "base": tiny_model_dir.name, "proc": proc}
    proc.terminate()
    proc.wait(timeout=30)


def start_serve(cmd: list[str], port: int, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`orgtune serve` as a process, once its /health answers (the test fails with its output if it dies)."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read())
        time.sleep(0.5)
    return proc, url


def _client(server, key=KEY):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=key, max_retries=0)


def _ask(tmp_path, what: list[str], n_tokens: int) -> list[str]:
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question": x}) + "\n" for x in QUESTIONS))
    out = tmp_path / "a.jsonl"
    r = run_cli("ask", *what, "--questions", str(q), "--out", str(out), "--max-new-tokens", str(n_tokens))
    assert r.returncode == 0, r.stderr
    return [json.loads(x)["answer"] for x in out.read_text().splitlines()]


@pytest.mark.slow
def test_interleaved_adapters_answer_like_orgtune_ask(server, runs, tiny_model_dir, tmp_path):
    client = _client(server)
    names = {m.id for m in client.models.list().data}
    assert names == {server["base"], "alpha", "beta"}
    jobs = [(model, q) for q in QUESTIONS for model in ("alpha", server["base"], "beta")]

    def one(job):
        model, q = job
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": q}], max_tokens=12, temperature=0
        )
        return r.choices[0].message.content

    with ThreadPoolExecutor(len(jobs)) as pool:  # all at once: queued, grouped by adapter, batched
        got = dict(zip(jobs, pool.map(one, jobs), strict=True))
    expected = {
        "alpha": _ask(tmp_path, [str(runs["alpha"])], 12),
        "beta": _ask(tmp_path, [str(runs["beta"])], 12),
        server["base"]: _ask(tmp_path, ["--model", str(tiny_model_dir)], 12),
    }
    for (model, q), answer in got.items():
        assert answer == expected[model][QUESTIONS.index(q)], (model, q)
    # The three models really answer differently, so a mixed-up adapter would have been caught.
    assert len({tuple(v) for v in expected.values()}) == 3


@pytest.mark.slow
def test_streaming_gives_the_same_text(server):
    client = _client(server)
    kw = dict(model="alpha", messages=[{"role": "user", "content": QUESTIONS[0]}], max_tokens=12, temperature=0)
    full = client.chat.completions.create(**kw).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    text = client.completions.create(model="beta", prompt="The Halvo", max_tokens=5).choices[0].text
    assert isinstance(text, str) and text


@pytest.mark.slow
def test_errors_have_openai_shape_and_status_and_the_server_keeps_serving(server):
    client = _client(server)
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=msgs)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="alpha", messages=msgs, max_tokens=10_000)
    assert e.value.body["code"] == "max_tokens_too_large"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="alpha", messages=[{"role": "user", "content": "word " * 9000}], max_tokens=100
        )
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.AuthenticationError):
        _client(server, key="wrong").models.list()
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    r = httpx.post(server["url"] + "/v1/chat/completions", content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(server["url"] + "/v1/chat/completions", json={"model": "alpha", "messages": "hi"}, headers=h)
    assert r.status_code == 422 and "messages" in r.json()["error"]["message"]
    r = httpx.get(server["url"] + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert httpx.get(server["url"] + "/health").json()["status"] == "ok"
    assert client.chat.completions.create(model="alpha", messages=msgs, max_tokens=3).choices[0].message.content


@pytest.mark.slow
def test_adapters_load_and_unload_at_run_time(server, runs):
    client = _client(server)
    h = {"Authorization": f"Bearer {ADMIN}"}
    r = httpx.post(
        server["url"] + "/v1/adapters",
        json={"name": "gamma", "path": str(runs["alpha"])},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 401
    r = httpx.post(
        server["url"] + "/v1/adapters", json={"name": "gamma", "path": str(runs["alpha"])}, headers=h, timeout=120
    )
    assert r.status_code == 200, r.text
    kw = dict(messages=[{"role": "user", "content": QUESTIONS[1]}], max_tokens=10, temperature=0)
    a = client.chat.completions.create(model="alpha", **kw).choices[0].message.content
    g = client.chat.completions.create(model="gamma", **kw).choices[0].message.content
    assert a == g
    r = httpx.post(server["url"] + "/v1/adapters", json={"name": "bad", "path": str(ROOT)}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_adapter"
    assert httpx.delete(server["url"] + "/v1/adapters/gamma", headers=h).status_code == 200
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gamma", **kw)
    assert httpx.delete(server["url"] + "/v1/adapters/gamma", headers=h).status_code == 404
    assert client.chat.completions.create(model="alpha", **kw).choices[0].message.content == a


@pytest.mark.slow
def test_serve_is_a_teacher_for_data_build(server, tmp_path):
    r = run_cli(
        "data",
        "build",
        str(SAMPLES / "docs" / "halvo-quick-start.txt"),
        "--out",
        str(tmp_path / "d"),
        "--teacher",
        server["url"] + "/v1",
        "--teacher-model",
        "alpha",
        "--teacher-api-key",
        KEY,
        "--teacher-max-tokens",
        "48",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    teacher = manifest["teacher"]
    # Every request reached our server and came back (what the tiny model writes is then judged as usual).
    assert teacher["requests"] > 0 and not teacher.get("dropped", {}).get("request_failed"), teacher


def test_vllm_command_lists_every_adapter(runs):
    from orgtune.serve.cli import vllm_command

    cmd = vllm_command("qwen2.5-3b", {"alpha": runs["alpha"], "beta": runs["beta"]}, "0.0.0.0", 9000, "k")
    assert cmd[:3] == ["vllm", "serve", "Qwen/Qwen2.5-3B-Instruct"] and "--enable-lora" in cmd
    mods = cmd[cmd.index("--lora-modules") + 1 : cmd.index("--api-key")]
    assert mods == [f"alpha={(runs['alpha'] / 'adapter').resolve()}", f"beta={(runs['beta'] / 'adapter').resolve()}"]
    assert cmd[cmd.index("--max-lora-rank") + 1] == "16"


@pytest.mark.slow
def test_gguf_backend_serves_the_same_api(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from orgtune.export.gguf import convert
    from orgtune.generate.llama import LlamaCppBackend
    from orgtune.generate.settings import GenerationSettings
    from orgtune.models.template import render

    gguf = convert(tiny_model_dir, tmp_path / "tiny-f16.gguf", "f16")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orgtune", "serve", "--gguf", str(gguf), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        client = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-f16"]
        msgs = [{"role": "user", "content": QUESTIONS[0]}]
        got = client.chat.completions.create(model="tiny-f16", messages=msgs, max_tokens=10).choices[0].message.content
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="tiny-f16", messages=msgs, max_tokens=10, stream=True)
        )
        tok = AutoTokenizer.from_pretrained(tiny_model_dir)
        ref = LlamaCppBackend(gguf, tok)
        expected = ref.generate(render(tok, msgs, add_generation_prompt=True), GenerationSettings(max_new_tokens=10))[0]
        ref.close()
        assert got == streamed == expected
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="alpha", messages=msgs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
