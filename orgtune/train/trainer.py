"""orgtune's SFTTrainer (and DPOTrainer): TRL's, with atomic checkpoints and a loss that only computes the logits it needs.

Two thin overrides, each for a default that is wrong for us:
- `_save_checkpoint`: transformers writes checkpoint-N in place; ours appear whole or not at all
  (see checkpoints.py), and HF's own rotation can delete the newest checkpoint at save_total_limit=1.
- `compute_loss`: the LM head runs only at positions whose next token is trained (assistant tokens),
  not at every prompt token. The loss is the same token-mean cross-entropy TRL computes.
"""

from __future__ import annotations

import torch
from trl import DPOTrainer, SFTTrainer

from orgtune.data.tokenize import IGNORE
from orgtune.train.checkpoints import save_checkpoint


class AtomicCheckpoints:
    """Mixin for a transformers Trainer: checkpoints written whole or not at all, our rotation."""

    def __init__(self, *args, keep_checkpoints: int = 2, **kwargs):
        self.keep_checkpoints = keep_checkpoints
        super().__init__(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        save_checkpoint(self, self.keep_checkpoints)


class OrgtuneSFTTrainer(AtomicCheckpoints, SFTTrainer):

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        targets_all = labels[:, 1:]
        trained = targets_all != IGNORE
        # Union of positions (over the batch rows) whose next token is trained; padding-free batches have one row.
        positions = trained.any(dim=0).nonzero(as_tuple=True)[0]
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
        outputs = model(**model_inputs, use_cache=False, logits_to_keep=positions)
        logits = outputs.logits  # (rows, len(positions), vocab)
        targets = targets_all[:, positions]
        mask = targets != IGNORE
        picked, gold = logits[mask].float(), targets[mask]
        total = torch.nn.functional.cross_entropy(picked, gold, reduction="sum")
        count = mask.sum()
        denom = num_items_in_batch if num_items_in_batch is not None else count
        loss = total / torch.as_tensor(denom, device=total.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        with torch.no_grad():
            correct = (picked.argmax(-1) == gold).sum()
            n = self.accelerator.gather_for_metrics(count).sum()
            hits = self.accelerator.gather_for_metrics(correct).sum()
            self._metrics[mode]["mean_token_accuracy"].append((hits / n).item() if n > 0 else 0.0)
        return (loss, outputs) if return_outputs else loss


class OrgtuneDPOTrainer(AtomicCheckpoints, DPOTrainer):
    """TRL's DPOTrainer with orgtune's atomic checkpoints (the loss is TRL's)."""
