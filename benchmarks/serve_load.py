"""Load test for `orgtune serve`: requests/s and latency percentiles for N concurrent clients.

    .venv/bin/python benchmarks/serve_load.py                                # embedded model, 1 and 8 clients
    .venv/bin/python benchmarks/serve_load.py --clients 1,4,8 --requests 32 --adapter halvo=.demo/run

Starts a real server on loopback (or uses --url), sends chat completions with the official `openai`
client from a thread per client, greedy, fixed max_tokens, and prints one line per concurrency level.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What pressure does the Velbrook Halvo brew at?",
    "How often should the Halvo be descaled?",
    "What does error code E4 mean?",
    "Name three primary colours.",
    "What is the capital of Italy?",
    "Give one tip for grinding coffee.",
    "How long is the warranty?",
    "What is 12 times 7?",
]


def start_server(args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "orgtune",
        "serve",
        "--model",
        args.model,
        "--port",
        str(port),
        "--max-batch",
        str(args.max_batch),
    ]
    for a in args.adapter:
        cmd += ["--adapter", a]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ}
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None:
            sys.exit(proc.stderr.read())
        time.sleep(0.5)
    sys.exit("server did not start")


def run_level(client, model: str, clients: int, requests: int, max_tokens: int) -> dict:
    def one(i: int) -> tuple[float, int]:
        t = time.perf_counter()
        r = client.chat.completions.create(
            model=model,
            max_tokens=max_tokens,
            temperature=0,
            messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
        )
        return time.perf_counter() - t, r.usage.completion_tokens

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    lat = sorted(x for x, _ in results)
    return {
        "clients": clients,
        "requests": requests,
        "wall_s": wall,
        "req_per_s": requests / wall,
        "tokens_per_s": sum(n for _, n in results) / wall,
        "p50_s": statistics.median(lat),
        "p95_s": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", action="append", default=[], help="NAME=RUN_DIR; requests then use the first adapter")
    ap.add_argument("--url", help="an already running server (skips starting one)")
    ap.add_argument("--clients", default="1,8", help="concurrency levels, comma-separated")
    ap.add_argument("--requests", type=int, default=24, help="requests per level")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=8)
    args = ap.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server(args)
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
        model = args.adapter[0].split("=", 1)[0] if args.adapter else client.models.list().data[0].id
        run_level(client, model, 1, 2, args.max_tokens)  # warm-up
        print(f"model {model}; {args.requests} requests per level, max_tokens {args.max_tokens}, greedy")
        for c in (int(x) for x in args.clients.split(",")):
            r = run_level(client, model, c, args.requests, args.max_tokens)
            print(
                f"clients {r['clients']:>3}: {r['req_per_s']:6.2f} req/s  {r['tokens_per_s']:7.1f} tok/s  "
                f"p50 {r['p50_s']:6.2f} s  p95 {r['p95_s']:6.2f} s  (wall {r['wall_s']:.1f} s)"
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
