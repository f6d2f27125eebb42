"""Model presets: the real architecture (config.json values) and training defaults of each named model.

    orgtune models                      # list them
    find_preset("qwen2.5-3b").hf_config()   # a transformers config, no weights needed

Presets live as small JSON files next to this module; the code computes sizes from them, it never
quotes figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from transformers import AutoConfig, PretrainedConfig


@dataclass(frozen=True)
class Preset:
    name: str
    hub_id: str
    embedded: bool
    chat_family: str
    description: str
    config: dict
    defaults: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    incremental: dict = field(default_factory=dict)  # `orgtune nightly`'s training after the first night

    def hf_config(self) -> PretrainedConfig:
        values = dict(self.config)
        return AutoConfig.for_model(values.pop("model_type"), **values)


@cache
def all_presets() -> dict[str, Preset]:
    out = {}
    for entry in sorted(resources.files("orgtune.models").joinpath("presets").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            d = json.loads(entry.read_text(encoding="utf-8"))
            out[d["name"]] = Preset(**d)
    return out


def find_preset(name_or_hub_id: str) -> Preset | None:
    """The preset called `name_or_hub_id`, or whose hub id it is (case-insensitive); else None."""
    key = name_or_hub_id.strip().lower()
    for p in all_presets().values():
        if key in (p.name.lower(), p.hub_id.lower()):
            return p
    return None


def offline_presets() -> list[str]:
    return [p.name for p in all_presets().values() if p.embedded]
