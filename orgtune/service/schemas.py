"""Request bodies of the fine-tuning API: OpenAI's fields, and orgtune's extras under `orgtune`
(sent by the official client as `extra_body={"orgtune": {...}}`).

    client.fine_tuning.jobs.create(model="smollm2-135m", training_file=f.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
        extra_body={"orgtune": {"documents": [manual.id], "config": {"training": {"max_steps": 40}},
                                "eval": {"max_probes": 20}, "export": {"gguf": ["q4_k_m"]}}})
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    batch_size: Auto | int = Field("auto", description="Rows per micro-batch (auto: the preset's).")
    learning_rate_multiplier: Auto | float = Field(
        "auto", description="× the preset's learning rate (DPO: × a twentieth of the parent's)."
    )
    n_epochs: Auto | int | float = Field("auto", description="Epochs (auto: the preset's; DPO 1).")
    beta: Auto | float = Field("auto", description="DPO only: how far the policy may move from the reference.")


class _MethodBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class Method(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: _MethodBody | None = None
    dpo: _MethodBody | None = None


class BuildOptions(_Strict):
    """`orgtune data build` settings, for jobs whose training file holds documents."""

    examples_per_fact: int = Field(5, ge=1, le=50)
    max_examples_per_doc: int | None = Field(None, ge=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    holdout: float = Field(0.15, ge=0, lt=1, description="Facts held out of training and probed.")
    abstain_holdout: float = Field(0.0, ge=0, lt=1)


class EvalOptions(_Strict):
    enabled: bool = Field(True, description="Base vs tuned on the probes (jobs built from documents).")
    max_probes: int | None = Field(None, ge=1)
    general_items: int | None = Field(None, ge=1, description="The general check's first N items (default: all).")
    general_samples: int = Field(
        8, ge=0, le=64, description="Sampled answers per general item (the sampled rule); 0: greedy answers only."
    )
    batch_size: int = Field(16, ge=1)


class ExportOptions(_Strict):
    gguf: list[Literal["f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m"]] = Field(default_factory=list)
    verify: bool = True
    max_probes: int | None = Field(None, ge=1)
    system: str | None = None


class OrgtuneOptions(_Strict):
    documents: list[str] = Field(default_factory=list, description="More document or archive file ids.")
    build: BuildOptions = Field(default_factory=BuildOptions)
    config: dict = Field(
        default_factory=dict,
        description="Run config sections (model, lora, training, dpo), as in `orgtune train --config`.",
    )
    eval: EvalOptions = Field(default_factory=EvalOptions)
    export: ExportOptions = Field(default_factory=ExportOptions)
    max_attempts: int | None = Field(None, ge=1, le=20)
    stop_after: Literal["data", "train", "eval", "export"] = Field(
        "export",
        description="Last stage to run: 'data' checks the files and builds data from documents, "
        "without training (to inspect what training would see).",
    )


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI fields we have no use for are accepted and ignored

    model: str = Field(min_length=1)
    training_file: str
    validation_file: str | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    seed: int | None = None
    method: Method | None = None
    hyperparameters: Hyperparameters | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict] | None = None
    orgtune: OrgtuneOptions = Field(default_factory=OrgtuneOptions)
