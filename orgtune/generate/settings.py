"""How to generate: one frozen settings object, passed to each call and never changed by the callee."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 200
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 8
    seed: int | None = 0  # sampling only; None = a fresh seed per call

    def but(self, **changes) -> GenerationSettings:
        """A copy with some fields changed, e.g. settings.but(max_new_tokens=64)."""
        return dataclasses.replace(self, **changes)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def hf_generate_args(s: GenerationSettings, *, stop_ids: list[int], pad_id: int | None) -> dict:
    """transformers' generate() arguments for these settings: greedy, or nucleus sampling (no top-k cut)
    seeded from s.seed. Seeds torch's generator when sampling."""
    import torch

    args: dict = dict(
        max_new_tokens=s.max_new_tokens,
        eos_token_id=stop_ids,
        pad_token_id=pad_id if pad_id is not None else stop_ids[0],
    )
    if s.greedy:
        return {**args, "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    torch.manual_seed(s.seed if s.seed is not None else time.time_ns() % 2**31)
    return {**args, "do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0}
