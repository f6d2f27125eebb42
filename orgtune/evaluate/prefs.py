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


def _answer_logps(model, tok, messages: list[dict], *, max_len: int, eot):
    """Log-probability of each assistant token of `messages` (end of turn last)."""
    import torch

    enc = encode_messages(tok, messages, max_len=max_len, eot=eot)
    ids = torch.tensor([enc.input_ids], device=next(model.parameters()).device)
    labels = torch.tensor(enc.labels[1:], device=ids.device)
    keep = labels != IGNORE
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=keep.nonzero(as_tuple=True)[0]).logits[0]
    return torch.log_softmax(logits.float(), dim=-1).gather(1, labels[keep].unsqueeze(1)).squeeze(1)


def pair_logps(model, tok, rows: list[dict], *, max_len: int) -> list[tuple[float, float]]:
    """Summed log-probability of each pair's chosen and rejected answer (assistant tokens, end of turn included)."""
    import torch

    eot = end_of_turn(tok)
    with torch.inference_mode():
        return [
            tuple(
                float(_answer_logps(model, tok, r["prompt"] + r[side], max_len=max_len, eot=eot).sum())
                for side in ("chosen", "rejected")
            )
            for r in rows
        ]


def preference_metrics(
    logps: dict[str, list[tuple[float, float]]], *, reference: str | None, policy: str, beta: float
) -> dict:
    n = len(next(iter(logps.values()))) if logps else 0
    out: dict = {"pairs": n, "beta": beta, "reference": reference, "policy": policy, "by_backend": {}}
    for name, pairs in logps.items():
        margins = [c - r for c, r in pairs]
        out["by_backend"][name] = {
            "prefers_chosen": sum(m > 0 for m in margins) / n if n else None,
            "mean_logp_margin": sum(margins) / n if n else None,
        }
    if reference in logps and policy in logps and n:
        rewards = [
            (beta * (pc - rc), beta * (pr - rr))
            for (pc, pr), (rc, rr) in zip(logps[policy], logps[reference], strict=True)
        ]
        out["reward_margin_mean"] = sum(c - r for c, r in rewards) / n
        out["reward_accuracy"] = sum(c > r for c, r in rewards) / n
        out["chosen_reward_mean"] = sum(c for c, _ in rewards) / n
        out["rejected_reward_mean"] = sum(r for _, r in rewards) / n
    return out


def answer_confidence(model, tok, conversations: list[list[dict]], answers: list[str], *, max_len: int) -> list[float]:
    """How sure the model was of each answer: the lowest probability it gives any of the answer's tokens
    (for its own greedy answer, the least sure step, usually the value it had to recall; end of turn aside)."""
    import torch

    eot = end_of_turn(tok)
    out = []
    with torch.inference_mode():
        for conv, answer in zip(conversations, answers, strict=True):
            if not answer.strip():
                out.append(0.0)
                continue
            logps = _answer_logps(
                model, tok, conv + [{"role": "assistant", "content": answer}], max_len=max_len, eot=eot
            )
            out.append(
                float(logps[:-1].min().exp()) if len(logps) > 1 else float(logps.min().exp()) if len(logps) else 0.0
            )
    return out
