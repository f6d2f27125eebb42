"""Preference pairs scored by a model: log-probability of the chosen and the rejected answer.

    logps = pair_logps(model, tok, rows, max_len=512)        # [(chosen, rejected), ...] summed over answer tokens
    m = preference_metrics({"base": lb, "sft": ls, "tuned": lt}, reference="sft", beta=0.1)

For each backend: how often it gives the chosen answer the higher log-probability, and the mean margin.
Against the reference (the DPO run's SFT parent), DPO's implicit reward r = beta * (log pi - log ref):
the mean reward margin r(chosen) - r(rejected) and the share of pairs where it is positive
(TRL's "rewards/accuracies"), on pairs held out of DPO training.
"""

from __future__ import annotations

from orgtune.data.tokenize import IGNORE, encode_messages, end_of_turn


def pair_logps(model, tok, rows: list[dict], *, max_len: int) -> list[tuple[float, float]]:
    """Summed log-probability of each pair's chosen and rejected answer (assistant tokens, end of turn included)."""
    import torch

    device = next(model.parameters()).device
    eot = end_of_turn(tok)
    out = []
    with torch.inference_mode():
        for r in rows:
            pair = []
            for side in ("chosen", "rejected"):
                enc = encode_messages(tok, r["prompt"] + r[side], max_len=max_len, eot=eot)
                ids = torch.tensor([enc.input_ids], device=device)
                labels = torch.tensor(enc.labels[1:], device=device)
                keep = labels != IGNORE
                logits = model(input_ids=ids, use_cache=False, logits_to_keep=keep.nonzero(as_tuple=True)[0]).logits[0]
                logp = torch.log_softmax(logits.float(), dim=-1).gather(1, labels[keep].unsqueeze(1)).sum()
                pair.append(float(logp))
            out.append((pair[0], pair[1]))
    return out


def preference_metrics(logps: dict[str, list[tuple[float, float]]], *, reference: str | None, policy: str,
                       beta: float) -> dict:
    n = len(next(iter(logps.values()))) if logps else 0
    out: dict = {"pairs": n, "beta": beta, "reference": reference, "policy": policy, "by_backend": {}}
    for name, pairs in logps.items():
        margins = [c - r for c, r in pairs]
        out["by_backend"][name] = {"prefers_chosen": sum(m > 0 for m in margins) / n if n else None,
                                   "mean_logp_margin": sum(margins) / n if n else None}
    if reference in logps and policy in logps and n:
        rewards = [(beta * (pc - rc), beta * (pr - rr))
                   for (pc, pr), (rc, rr) in zip(logps[policy], logps[reference], strict=True)]
        out["reward_margin_mean"] = sum(c - r for c, r in rewards) / n
        out["reward_accuracy"] = sum(c > r for c, r in rewards) / n
        out["chosen_reward_mean"] = sum(c for c, _ in rewards) / n
        out["rejected_reward_mean"] = sum(r for _, r in rewards) / n
    return out
