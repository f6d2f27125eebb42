"""`orgtune serve`'s HTTP contract, fast: the real app, worker thread and uvicorn on loopback, the official
`openai` client, and a small fake engine in place of a model (its "model" spells the last user message
backwards, one word per token), so that every field and finish reason can be asserted exactly. The same
routes with real models: test_serve.py and test_serve_limits.py (slow)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest
import uvicorn

from orgtune.serve.app import create_app
from orgtune.serve.engine import StopScanner, _Worker

KEY, ADMIN = "contract-key", "contract-admin"


class BackwardsEngine(_Worker):
    """The engine interface with no model: a prompt's last line, its words in reverse order, one per token."""

    kind, base_name, context = "fake", "base", 64

    def __init__(self):
        self.adapters: dict[str, str] = {}
        self.batches: list[int] = []
        super().__init__(max_batch=8)

    def names(self) -> list[str]:
        return ["base", *self.adapters]

    def load_adapter(self, name, path):
        self.adapters[name] = str(path)
        return path

    def unload_adapter(self, name):
        del self.adapters[name]

    def render_chat(self, messages: list[dict]) -> str:
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def count(self, text: str) -> int:
        return len(text.split())

    def run(self, batch):
        self.batches.append(len(batch))
        out = []
        for j in batch:
            last = [x for x in j.prompt.splitlines() if x.strip() and x != "assistant:"][-1]
            words = [w for w in reversed(last.split(":", 1)[-1].split())]
            if j.model != "base":
                words = [f"[{j.model}]", *words]
            scan, sent = StopScanner(j.stop), []
            for w in words[: j.max_tokens]:
                sent.append(w)
                piece = scan.feed(" ".join(sent))
                if j.on_text and piece:
                    j.on_text(piece)
                if scan.hit:
                    break
            if j.on_text and scan.finish():
                j.on_text(scan.text[len(" ".join(sent[:-1])) :])
            finish = "stop" if scan.hit or len(words) <= j.max_tokens else "length"
            out.append(
                {
                    "text": scan.text,
                    "finish_reason": finish,
                    "completion_tokens": len(sent),
                    "prompt_tokens": self.count(j.prompt),
                }
            )
        return out


@pytest.fixture(scope="module")
def served():
    engine = BackwardsEngine()
    app = create_app(engine, api_key=KEY, admin_key=ADMIN, max_tokens_limit=32, default_max_tokens=16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    yield {"url": url, "engine": engine, "client": openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)}
    server.should_exit = True
    thread.join(timeout=10)
    engine.stop()


def test_chat_completion_fields_usage_and_finish_reasons(served):
    c = served["client"]
    r = c.chat.completions.create(model="base", messages=[{"role": "user", "content": "one two three"}])
    assert r.object == "chat.completion" and r.model == "base" and r.id.startswith("chatcmpl-")
    (choice,) = r.choices
    assert choice.message.role == "assistant" and choice.message.content == "three two one"
    assert choice.finish_reason == "stop" and choice.index == 0
    assert r.usage.completion_tokens == 3 and r.usage.prompt_tokens == 5  # user: one two three assistant:
    assert r.usage.total_tokens == 8
    r = c.chat.completions.create(model="base", messages=[{"role": "user", "content": "a b c d e"}], max_tokens=2)
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("e d", "length")
    r = c.chat.completions.create(model="base", messages=[{"role": "user", "content": "x y STOP z"}], stop=["STOP"])
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("z", "stop")


def test_streaming_sends_role_then_text_then_finish_and_done(served):
    c = served["client"]
    chunks = list(
        c.chat.completions.create(
            model="base",
            messages=[{"role": "user", "content": "alpha beta gamma"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "gamma beta alpha"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    raw = httpx.post(
        served["url"] + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "base", "messages": [{"role": "user", "content": "q"}], "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.text.rstrip().endswith("data: [DONE]")


def test_completions_take_several_prompts_and_adapters_are_models(served):
    c = served["client"]
    r = c.completions.create(model="base", prompt=["red green", "up down left"], max_tokens=8)
    assert [ch.text for ch in sorted(r.choices, key=lambda x: x.index)] == ["green red", "left down up"]
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert (
        httpx.post(
            served["url"] + "/v1/adapters",
            json={"name": "halvo", "path": "/runs/h"},
            headers={"Authorization": f"Bearer {KEY}"},
        ).status_code
        == 401
    )
    assert (
        httpx.post(served["url"] + "/v1/adapters", json={"name": "halvo", "path": "/runs/h"}, headers=admin).status_code
        == 200
    )
    models = {m.id: m for m in c.models.list().data}
    assert set(models) == {"base", "halvo"} and models["halvo"].parent == "base" and models["base"].parent is None
    r = c.chat.completions.create(model="halvo", messages=[{"role": "user", "content": "hi there"}])
    assert r.choices[0].message.content == "[halvo] there hi" and r.model == "halvo"
    assert httpx.delete(served["url"] + "/v1/adapters/halvo", headers=admin).json()["deleted"] is True
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="halvo", messages=[{"role": "user", "content": "hi"}])


def test_errors_are_openai_shaped_4xx_and_the_server_goes_on(served):
    c = served["client"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served["url"] + "/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError) as e:  # over the server's max_tokens limit
        c.chat.completions.create(model="base", messages=[{"role": "user", "content": "hi"}], max_tokens=10_000)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError):  # longer than the context window (64 "tokens")
        c.chat.completions.create(model="base", messages=[{"role": "user", "content": "w " * 80}])
    with pytest.raises(openai.UnprocessableEntityError) as e:  # a request body that fails validation
        c.chat.completions.create(model="base", messages=[])
    assert e.value.body["param"] == "messages" and e.value.body["type"] == "invalid_request_error"
    health = httpx.get(served["url"] + "/health").json()
    assert health == {"status": "ok"}  # without a key: nothing about what is served
    health = httpx.get(served["url"] + "/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert health["engine"] == "fake" and health["models"] == ["base"]
    r = c.chat.completions.create(model="base", messages=[{"role": "user", "content": "still here"}])
    assert r.choices[0].message.content == "here still"


def test_concurrent_requests_are_batched_by_the_worker(served):
    c, engine = served["client"], served["engine"]
    engine.batches.clear()
    results: dict[int, str] = {}

    def ask(i):
        r = c.chat.completions.create(model="base", messages=[{"role": "user", "content": f"n{i} go"}])
        results[i] = r.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"go n{i}" for i in range(16)}  # each answer went to its own request
    assert sum(engine.batches) == 16 and max(engine.batches) <= 8
