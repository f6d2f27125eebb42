"""HFBackend: conversations → answers with a transformers model (batched, left-padded, the model's chat
template), optionally through a PEFT adapter that one backend switches on and another off."""

from __future__ import annotations

import contextlib
from typing import Protocol

from orgtune.generate.settings import GenerationSettings, hf_generate_args
from orgtune.generate.stops import stop_ids


class Backend(Protocol):
    name: str
    settings: GenerationSettings  # used when a call passes none

    def answer(self, conversations: list[list[dict]], settings: GenerationSettings | None = None) -> list[str]: ...


class HFBackend:
    """A transformers model, optionally with a PEFT adapter that can be switched off per backend."""

    def __init__(
        self,
        model,
        tok,
        *,
        name: str,
        settings: GenerationSettings | None = None,
        use_adapter: bool = True,
        adapter: str | None = None,
    ):
        self.model, self.tok, self.name = model.eval(), tok, name
        self.settings = settings or GenerationSettings()
        self.use_adapter = use_adapter
        self.adapter = adapter  # which of a PEFT model's adapters answers (None: the active one)
        self.tok.padding_side = "left"
        self.stop_ids = stop_ids(tok)

    def with_adapter(self, enabled: bool, name: str, adapter: str | None = None) -> HFBackend:
        """The same loaded weights answering with the adapter on or off, or with another loaded adapter
        (no second copy of the model)."""
        other = HFBackend.__new__(HFBackend)
        other.__dict__.update(self.__dict__)
        other.use_adapter, other.name = enabled, name
        if adapter is not None:
            other.adapter = adapter
        return other

    def active(self):
        """A context in which the model computes as this backend: adapters off, or this one's adapter on."""
        if not self.use_adapter and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        if self.adapter is not None and hasattr(self.model, "set_adapter"):
            self.model.set_adapter(self.adapter)
        return contextlib.nullcontext()

    def answer(self, conversations: list[list[dict]], settings: GenerationSettings | None = None) -> list[str]:
        import torch

        from orgtune.models.template import render

        s = settings or self.settings
        prompts = [render(self.tok, c, add_generation_prompt=True) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        answers: list[str] = [""] * len(prompts)
        gen = hf_generate_args(s, stop_ids=self.stop_ids, pad_id=self.tok.pad_token_id)
        device = next(self.model.parameters()).device
        with self.active(), torch.inference_mode():
            for start in range(0, len(order), s.batch_size):
                idx = order[start : start + s.batch_size]
                enc = self.tok(
                    [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(device)
                out = self.model.generate(**enc, **gen)
                for row, i in enumerate(idx):
                    new = out[row, enc["input_ids"].shape[1] :]
                    answers[i] = self.tok.decode(new, skip_special_tokens=True).strip()
        return answers
