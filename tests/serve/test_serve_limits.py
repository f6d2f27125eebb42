"""`orgtune serve`'s limits, on a real server on loopback (tiny model, an API key beyond ASCII): every bad
request gets a 4xx in OpenAI's shape, and the server answers a normal request right after it."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import httpx
import pytest

from tests.serve.test_serve import _free_port, start_serve

KEY = "schlüssel-ключ-🔑"
AUTH = {"Authorization": b"Bearer " + KEY.encode("utf-8")}  # what a client sends: the key's UTF-8 bytes
LIMIT = 4 * 2**20  # the default --max-body-mb
QUESTIONS = [
    "What pressure does the pump reach?",
    "How often should I descale?",
    "Who makes the Halvo?",
    "What is the warranty?",
]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    port = _free_port()
    proc, url = start_serve(
        [sys.executable, "-m", "orgtune", "serve", "--model", str(tiny_model_dir), "--port", str(port)],
        port,
        env={"ORGTUNE_API_KEY": KEY},
    )
    yield {"url": url, "model": tiny_model_dir.name}
    proc.terminate()
    proc.wait(timeout=30)


def chat(server, content="hi", **kw) -> httpx.Response:
    body = {"model": server["model"], "messages": [{"role": "user", "content": content}], "max_tokens": 3, **kw}
    return httpx.post(server["url"] + "/v1/chat/completions", json=body, headers=AUTH, timeout=120)


def assert_openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


def assert_still_serving(server) -> None:
    r = chat(server)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length"), r.text


def test_a_key_beyond_ascii_works_and_a_wrong_one_is_401(server):
    assert_still_serving(server)  # the right key, sent as UTF-8
    for wrong in ("Bearer clé-fausse".encode(), b"Bearer \xff\xfe", "Bearer schlüssel-ключ-🔒".encode()):
        r = httpx.get(server["url"] + "/v1/models", headers={"Authorization": wrong})
        assert assert_openai_error(r, 401)["code"] == "invalid_api_key"
    assert_still_serving(server)


def test_health_tells_only_key_holders_what_is_served(server):
    assert httpx.get(server["url"] + "/health").json() == {"status": "ok"}
    assert httpx.get(server["url"] + "/health", headers={"Authorization": "Bearer wrong"}).json() == {"status": "ok"}
    full = httpx.get(server["url"] + "/health", headers=AUTH).json()
    assert full["status"] == "ok" and full["models"] == [server["model"]]


def test_a_body_over_the_limit_is_413_by_length_or_by_count(server):
    big = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * (LIMIT + 10) + b'"}]}'
    r = httpx.post(
        server["url"] + "/v1/chat/completions",
        content=big,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert assert_openai_error(r, 413)["code"] == "request_too_large"
    assert_still_serving(server)

    def chunks():  # no Content-Length: the server counts the bytes as they come
        yield big[:1000]
        for i in range(1000, len(big), 2**20):
            yield big[i : i + 2**20]

    r = httpx.post(
        server["url"] + "/v1/chat/completions",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert assert_openai_error(r, 413)["code"] == "request_too_large"
    assert_still_serving(server)


def test_a_prompt_just_under_the_limit_does_not_hold_up_other_clients(server):
    """Tokenizing ~4 MiB takes seconds; it runs off the event loop, so small requests are answered meanwhile."""
    prompt = "The pump reaches nine bar. " * ((LIMIT - 4096) // 27)
    done: dict[str, float] = {}

    def big():
        r = chat(server, prompt, max_tokens=10)
        done["big"] = time.time()
        done["big_status"] = r.status_code
        done["big_code"] = r.json()["error"]["code"]

    t = threading.Thread(target=big)
    started = time.time()
    t.start()
    time.sleep(0.5)  # the big body is in and being tokenized
    small = []
    while t.is_alive() and len(small) < 5:
        r = httpx.get(server["url"] + "/v1/models", headers=AUTH, timeout=30)
        assert r.status_code == 200
        small.append(time.time())
    t.join()
    assert done["big_status"] == 400 and done["big_code"] == "context_length_exceeded"
    assert small and small[0] < done["big"], "a small request waited for the big prompt's tokenization"
    assert done["big"] - started > 1.0, "the big prompt was rejected too fast to prove anything"
    assert_still_serving(server)


def test_stop_and_prompt_lists_are_capped(server):
    assert_openai_error(chat(server, stop=[f"s{i}" for i in range(10_000)]), 422, "stop")
    assert_openai_error(chat(server, stop=["a", "b", "c", "d", "e"]), 422, "stop")
    assert_openai_error(chat(server, stop="x" * 10_000), 422, "stop")
    assert chat(server, stop=["a", "b", "c", "d"]).status_code == 200
    body = {"model": server["model"], "prompt": ["The Halvo"] * 65, "max_tokens": 1}
    r = httpx.post(server["url"] + "/v1/completions", json=body, headers=AUTH, timeout=60)
    assert_openai_error(r, 422, "prompt")
    assert_still_serving(server)


def test_a_seed_out_of_range_is_a_4xx(server):
    for seed in (2**70, 2**63, -1):
        assert_openai_error(chat(server, seed=seed, temperature=0.7), 422, "seed")
        assert_still_serving(server)
    assert chat(server, seed=2**63 - 1, temperature=0.7).status_code == 200


def test_32_concurrent_clients_all_get_their_own_answer(server):
    alone = {q: chat(server, q, max_tokens=8).json()["choices"][0]["message"]["content"] for q in QUESTIONS}
    asked = [QUESTIONS[i % len(QUESTIONS)] for i in range(32)]

    async def all_at_once():
        async with httpx.AsyncClient(base_url=server["url"], headers=AUTH, timeout=300) as client:

            async def one(q):
                body = {"model": server["model"], "messages": [{"role": "user", "content": q}], "max_tokens": 8}
                return await client.post("/v1/chat/completions", json=body)

            return await asyncio.gather(*(one(q) for q in asked))

    responses = asyncio.run(all_at_once())
    assert [r.status_code for r in responses] == [200] * 32
    got = [r.json()["choices"][0]["message"]["content"] for r in responses]
    assert got == [alone[q] for q in asked]
    assert len(set(alone.values())) > 1  # different questions, different answers: a mix-up would show
    assert_still_serving(server)


def test_counting_tokens_while_a_batch_is_encoded_keeps_the_batch_padded(tiny_model_dir):
    """Request threads count prompt tokens while the generation thread encodes a padded batch; both go through
    the tokenizer's shared padding setting, so unguarded, a count unpads the batch mid-call (a 500 under load)."""
    from orgtune.serve.engine import HFEngine

    engine = HFEngine(str(tiny_model_dir), device="cpu", log=lambda m: None)
    try:
        errors: list[str] = []
        done = threading.Event()

        def count() -> None:
            while not done.is_set():
                try:
                    assert engine.count(QUESTIONS[0] * 10) > 0
                except Exception as e:
                    errors.append(repr(e))
                    return
                time.sleep(0)  # let the other thread at the lock (a lock held back to back starves it)

        counter = threading.Thread(target=count)
        counter.start()
        batches, until = 0, time.monotonic() + 8  # unguarded, the race shows within a second or two
        try:
            while time.monotonic() < until:
                enc = engine.encode([QUESTIONS[1] * 20, "hi"])
                assert enc["input_ids"].shape[0] == 2 and enc["attention_mask"][1].sum() < enc["input_ids"].shape[1]
                batches += 1
        finally:
            done.set()
            counter.join()
        assert not errors, errors[:3]
        assert batches > 1000, batches  # the two threads took turns
    finally:
        engine.stop()
