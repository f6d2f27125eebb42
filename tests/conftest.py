"""Shared fixtures: one orgtune home per checkout (the embedded model is converted once), offline hub,
a tiny random model built from the smollm2 preset's config with the real tokenizer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "orgtune" / "data" / "samples"
os.environ.setdefault("ORGTUNE_HOME", str(ROOT / ".cache" / "test-home"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get(
    "PYTEST_XDIST_WORKER"
):  # `make test` runs two workers: they split the cores (torch, llama.cpp, children)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


def pytest_collection_modifyitems(config, items):
    """GPU tests skip without CUDA. The slow end-to-end tests go first, the longest (by their marker's `minutes`)
    at the head, so that the two workers (`make test`: loadfile, in this order) start the longest files early
    and fill in with the quick tests; the sort is stable, a file keeps its order."""
    import torch

    def minutes(item) -> float:
        mark = item.get_closest_marker("slow")
        return mark.kwargs.get("minutes", 1) if mark else 0

    items.sort(key=lambda item: -minutes(item))

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    from orgtune.models.loading import resolve_source

    return resolve_source("smollm2-135m").path


@pytest.fixture(scope="session")
def tokenizer(embedded_dir):
    from orgtune.models.loading import load_tokenizer, resolve_source

    return load_tokenizer(resolve_source("smollm2-135m"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer random Llama with the smollm2 preset's shape family and the real SmolLM2 tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from orgtune.models.presets import find_preset

    cfg = find_preset("smollm2-135m").hf_config()
    cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size = 2, 64, 128
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 4, 2, 16
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    out = tmp_path_factory.mktemp("tiny-smollm2")
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(embedded_dir).save_pretrained(out)
    return out


@pytest.fixture
def demo_data() -> Path:
    return SAMPLES / "demo_chat.jsonl"


def run_cli(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m orgtune ARGS` in a fresh process (what a user runs)."""
    return subprocess.run(
        [sys.executable, "-m", "orgtune", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
