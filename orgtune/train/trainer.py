"""orgtune's SFTTrainer (and DPOTrainer): TRL's, with atomic checkpoints and a loss that only computes the logits it needs.

Thin overrides, each for a default that is wrong for us (and DPO's SFT replay, below):
- `_save_checkpoint`: transformers writes checkpoint-N in place; ours appear whole or not at all
  (see checkpoints.py), and HF's own rotation can delete the newest checkpoint at save_total_limit=1.
- `compute_loss`: the LM head runs only at positions whose next token is trained (assistant tokens),
  not at every prompt token. The loss is the same token-mean cross-entropy TRL computes.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import random
from pathlib import Path

import torch
from trl import DPOTrainer, SFTTrainer

from orgtune.data.tokenize import IGNORE
from orgtune.errors import OrgtuneError
from orgtune.train.checkpoints import save_checkpoint


class AtomicCheckpoints:
    """Mixin for a transformers Trainer: checkpoints written whole or not at all, our rotation; a checkpoint
    file that `torch.load(weights_only=True)` refuses on resume is an error naming that file."""

    def __init__(self, *args, keep_checkpoints: int = 2, **kwargs):
        self.keep_checkpoints = keep_checkpoints
        super().__init__(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        save_checkpoint(self, self.keep_checkpoints)

    def _load_optimizer_and_scheduler(self, checkpoint):
        with _refused_pickle(checkpoint, ("optimizer.pt", "scheduler.pt")):
            super()._load_optimizer_and_scheduler(checkpoint)

    def _load_scaler(self, checkpoint):
        with _refused_pickle(checkpoint, ("scaler.pt",)):
            super()._load_scaler(checkpoint)

    def _load_rng_state(self, checkpoint):
        with _refused_pickle(checkpoint, ("rng_state.pth",)):
            super()._load_rng_state(checkpoint)


@contextlib.contextmanager
def _refused_pickle(checkpoint, names: tuple[str, ...]):
    """transformers loads these with torch.load(weights_only=True), which refuses pickled Python objects
    other than tensors and plain containers: name the file (found by loading each again) instead of a traceback."""
    try:
        yield
    except pickle.UnpicklingError as e:
        folder = Path(checkpoint)
        bad = folder / names[0]
        for name in names:
            try:
                if (folder / name).is_file():
                    torch.load(folder / name, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                bad = folder / name
                break
        lines = [x for x in str(e).splitlines() if x.strip()]
        reason = next((x for x in lines if "GLOBAL" in x or "Unsupported" in x), lines[-1] if lines else "")
        raise OrgtuneError(
            f"{bad}: refused to load it: it holds pickled Python objects, not just tensors ({reason})",
            fix=f"unless you know where it came from and trust it, delete {folder} (the run then "
            "resumes from an earlier checkpoint, or starts over) or train into a new --out",
        ) from None


def ship_best(trainer, *, load_best: bool, log=print) -> dict:
    """Which weights the run ships, for its manifest. With `load_best`, the adapter weights of the checkpoint
    recorded as best (lowest validation loss, checkpoints.BEST_FILE) are loaded into the trainer's model,
    which is what the run then saves; otherwise, or with no evaluated checkpoint, the last step's stay."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from orgtune.train.checkpoints import BEST_FILE, best_checkpoint

    step = trainer.state.global_step
    evals = {e["step"]: e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e}
    last = {"chosen": "last", "step": step, "eval_loss": evals.get(step)}
    if not load_best:
        return last
    root = Path(trainer.args.output_dir)
    best = best_checkpoint(root)
    if best is None or not (best / "adapter_model.safetensors").is_file():
        log("load_best_model_at_end: no evaluated checkpoint was kept; the last step's adapter ships")
        return last
    best_step = int(best.name.rsplit("-", 1)[1])
    metric = json.loads((root / BEST_FILE).read_text()).get("metric")
    if best_step != step:
        result = set_peft_model_state_dict(trainer.model, load_file(best / "adapter_model.safetensors"))
        if getattr(result, "unexpected_keys", None):
            raise OrgtuneError(
                f"{best}: its adapter does not fit this run's model ({len(result.unexpected_keys)} unknown tensors)",
                fix="set load_best_model_at_end: false, or train again in a new --out",
            )
        shown = f"{metric:.4f}" if isinstance(metric, float) else metric
        log(f"load_best_model_at_end: shipping {best.name} (validation loss {shown}), not step {step}")
    return {"chosen": "best", "step": best_step, "checkpoint": best.name, "eval_loss": metric}


def assistant_nll(model, model_inputs: dict, labels, num_items_in_batch=None):
    """Token-mean cross-entropy on trained (assistant) positions only; the LM head runs only where the next
    token is trained. Returns (loss, outputs, predicted, gold, count) for the caller's metrics."""
    targets_all = labels[:, 1:]
    trained = targets_all != IGNORE
    # Union of positions (over the batch rows) whose next token is trained; padding-free batches have one row.
    positions = trained.any(dim=0).nonzero(as_tuple=True)[0]
    outputs = model(**model_inputs, use_cache=False, logits_to_keep=positions)
    targets = targets_all[:, positions]
    mask = targets != IGNORE
    picked, gold = outputs.logits[mask].float(), targets[mask]
    total = torch.nn.functional.cross_entropy(picked, gold, reduction="sum")
    count = mask.sum()
    denom = num_items_in_batch if num_items_in_batch is not None else count
    loss = total / torch.as_tensor(denom, device=total.device).clamp(min=1)
    return loss, outputs, picked.detach().argmax(-1), gold, count


class RowStream:
    """Encoded rows drawn `batch` at a time, each pass over them in its own order fixed by `seed`; a resumed
    run continues the stream from its global step (`take(global_step × accumulation)` on the first call)."""

    def __init__(self, rows, batch: int, seed: int):
        self.rows, self.batch, self.seed = list(rows), batch, seed
        self._next = None
        self._lap: tuple[int, list[int]] = (-1, [])  # (pass over the rows, its shuffled order)

    def take(self, micro_batches_done: int) -> list:
        if self._next is None:
            self._next = micro_batches_done * self.batch
        out = []
        for _ in range(self.batch):
            lap, i = divmod(self._next, len(self.rows))
            if self._lap[0] != lap:
                order = list(range(len(self.rows)))
                random.Random(self.seed * 1_000_003 + lap).shuffle(order)
                self._lap = (lap, order)
            out.append(self.rows[self._lap[1][i]])
            self._next += 1
        return out

    @staticmethod
    def tensors(rows, pad: int, device) -> dict:
        width = max(len(r.input_ids) for r in rows)
        return {
            "input_ids": torch.tensor([r.input_ids + [pad] * (width - len(r.input_ids)) for r in rows], device=device),
            "attention_mask": torch.tensor(
                [[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in rows], device=device
            ),
            "labels": torch.tensor([r.labels + [IGNORE] * (width - len(r.labels)) for r in rows], device=device),
        }


def kl_to_base(model, peft_model, batch: dict):
    """Token-mean KL(base ‖ tuned) at every position of `batch` whose next token is real (prompt and answer):
    the base is `peft_model` with its adapters disabled, so the tuned model is pulled towards the base's whole
    next-token distribution on general text, not only towards its greedy answer."""
    trained = batch["attention_mask"][:, 1:].bool()
    positions = trained.any(dim=0).nonzero(as_tuple=True)[0]
    inputs = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "use_cache": False,
        "logits_to_keep": positions,
    }
    with torch.no_grad(), peft_model.disable_adapter():
        base = peft_model(**inputs).logits
    tuned = model(**inputs).logits
    mask = trained[:, positions]
    log_base = torch.log_softmax(base[mask].float(), dim=-1)
    log_tuned = torch.log_softmax(tuned[mask].float(), dim=-1)
    return (log_base.exp() * (log_base - log_tuned)).sum(-1).mean()


class OrgtuneSFTTrainer(AtomicCheckpoints, SFTTrainer):
    """With `general` (encoded rows of the base's own answers to general prompts), each training micro-batch
    also adds `general_weight` × KL(base ‖ tuned) on the next `general_batch` of those rows (RowStream):
    logit-level self-distillation, the base computed by the same weights with the adapter switched off."""

    def __init__(self, *args, general=None, general_batch: int = 2, general_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.general = RowStream(general, general_batch, self.args.seed) if general else None
        self.general_weight = general_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
        loss, outputs, predicted, gold, count = assistant_nll(
            model, model_inputs, inputs["labels"], num_items_in_batch=num_items_in_batch
        )
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        with torch.no_grad():
            n = self.accelerator.gather_for_metrics(count).sum()
            hits = self.accelerator.gather_for_metrics((predicted == gold).sum()).sum()
            self._metrics[mode]["mean_token_accuracy"].append((hits / n).item() if n > 0 else 0.0)
        if self.general is not None and mode == "train":
            peft_model = self.accelerator.unwrap_model(model)  # a second forward through DDP would break its reducer
            rows = self.general.take(self.state.global_step * self.args.gradient_accumulation_steps)
            kl = kl_to_base(
                peft_model,
                peft_model,
                RowStream.tensors(rows, self.processing_class.pad_token_id or 0, self.accelerator.device),
            )
            self._metrics["train"]["general_kl"].append(kl.item())
            # the NLL above is already a mean over the whole accumulation; this is one micro-batch's
            scale = self.args.gradient_accumulation_steps if num_items_in_batch is not None else 1
            loss = loss + self.general_weight * kl / scale
        return (loss, outputs) if return_outputs else loss


class OrgtuneDPOTrainer(AtomicCheckpoints, DPOTrainer):
    """TRL's DPOTrainer with orgtune's atomic checkpoints; the preference loss is TRL's.

    With `replay` (encoded SFT rows, e.g. the parent run's training data) each training micro-batch also
    adds `replay_weight` × the policy's assistant-token NLL on the next `replay_batch` of those rows, in a
    fixed shuffled order that a resumed run continues (RowStream): DPO moves the answers the pairs name while
    the answers SFT taught, in the words it taught them, are held where they were.
    """

    def __init__(self, *args, replay=None, replay_weight: float = 0.0, replay_batch: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        self.replay = (
            RowStream(replay.rows, replay_batch, self.args.seed) if replay is not None and replay_weight > 0 else None
        )
        self.replay_weight = replay_weight

    def _replay_loss(self, model):
        rows = self.replay.take(self.state.global_step * self.args.gradient_accumulation_steps)
        batch = RowStream.tensors(rows, self.processing_class.pad_token_id or 0, self.accelerator.device)
        labels = batch.pop("labels")
        return assistant_nll(model, batch, labels)[0]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        if not (self.replay is not None and self.model.training):
            return result
        loss, rest = (result[0], result[1:]) if return_outputs else (result, ())
        replay = self._replay_loss(model)
        self._metrics["train"]["replay_nll"].append(replay.item())
        loss = loss + self.replay_weight * replay
        return (loss, *rest) if return_outputs else loss
