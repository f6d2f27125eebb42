"""Validation loss and perplexity on assistant tokens only (the tokens training is scored on).

loss, ppl, n = assistant_loss(model, tok, rows, max_len=512)   # rows: [{"messages": [...]}, ...]
"""

from __future__ import annotations

import math

from orgtune.data.formats import Row
from orgtune.data.tokenize import IGNORE, encode_rows


def assistant_loss(model, tok, rows: list[dict], *, max_len: int) -> tuple[float, float, int]:
    """Mean cross-entropy per trained token, its perplexity, and the number of tokens."""
    import torch

    enc = encode_rows(tok, [Row(line=i, messages=r["messages"], raw=r) for i, r in enumerate(rows, 1)], max_len=max_len)
    device = next(model.parameters()).device
    total, n = 0.0, 0
    with torch.inference_mode():
        for r in enc.rows:
            ids = torch.tensor([r.input_ids], device=device)
            labels = torch.tensor(r.labels[1:], device=device)
            keep = labels != IGNORE
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=keep.nonzero(as_tuple=True)[0]).logits[0]
            total += torch.nn.functional.cross_entropy(logits.float(), labels[keep], reduction="sum").item()
            n += int(keep.sum())
    mean = total / n if n else float("nan")
    return mean, math.exp(mean) if n else float("nan"), n
