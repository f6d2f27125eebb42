"""QLoRA on a CUDA GPU: nf4 + double-quant base, LoRA adapter trains and saves (skipped without CUDA)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_qlora_trains_on_gpu(tiny_model_dir, demo_data, tmp_path):
    pytest.importorskip("bitsandbytes")
    from orgtune.train.sft import train

    run = train(
        demo_data,
        tmp_path / "run",
        log=lambda m: None,
        overrides={
            "model": {"name": str(tiny_model_dir)},
            "qlora": {"enabled": True},
            "training": {"max_steps": 4, "learning_rate": 1e-3, "save_steps": 2},
        },
    )
    assert run.complete and run.manifest["device"].startswith("cuda")
    assert (run.adapter_dir / "adapter_model.safetensors").stat().st_size > 0
