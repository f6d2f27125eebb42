"""`orgtune eval RUN_DIR`: what did the fine-tune learn, and what did it forget? Base vs tuned, one report.

    orgtune eval runs/first                         # probes and val.jsonl from the run's data folder
    orgtune eval runs/first --probes data/v1/probes.jsonl --max-probes 200

For each answering backend (the base model, and the tuned model = base + adapter, sharing one copy of
the weights): closed-book accuracy on the probes per task, separately for trained and held-out facts
(held-out: how often the model states a confident wrong value), validation loss and perplexity on
assistant tokens, and a general-instruction regression check. Writes runs/<id>/report.md,
metrics.json, plots/*.png and eval/answers.jsonl; returns the metrics.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

from orgtune import atomic
from orgtune.data.build import read_jsonl
from orgtune.data.formats import SFT_FORMATS, load_rows
from orgtune.errors import OrgtuneError
from orgtune.evaluate.answer import conversation_of
from orgtune.evaluate.regression import base_answers, compare, compare_sampled_answers, load_general
from orgtune.evaluate.score import score_probe
from orgtune.generate.hf import Backend, HFBackend
from orgtune.generate.settings import GenerationSettings
from orgtune.train.runfolder import Run, read_complete_run

# Generation budget per task: short values, longer procedures and recitations.
MAX_NEW_TOKENS = {"SPEC": 48, "TROUBLESHOOT": 80, "EXPLAIN": 80, "PROCEDURE": 224, "RECALL": 256}


def data_files(run: Run, probes: Path | None) -> tuple[Path | None, Path | None]:
    """The probes and validation file the run's own data folder holds (unless --probes is given). A run
    trained on a JSONL dataset has no probes (None): it is judged on validation loss, the general check and
    its reference answers."""
    train = Path(run.manifest["data"]["train"]["path"])
    probe_path = Path(probes) if probes else train.parent / "probes.jsonl"
    if not probe_path.is_file():
        if probes:
            raise OrgtuneError(
                f"{probe_path}: no such probes file", fix="pass a probes.jsonl from `orgtune data build`"
            )
        probe_path = None
    val = run.manifest["data"].get("val", {}).get("path")
    val_path = Path(val) if val else (train.parent / "val.jsonl" if (train.parent / "val.jsonl").is_file() else None)
    return probe_path, val_path


def conversations(path: Path) -> list[dict]:
    """A data file's rows as {"messages": [...]}, whatever SFT format the file is in."""
    return [{"messages": r.messages} for r in load_rows(path, allowed=SFT_FORMATS).rows]


def sample_probes(rows: list[dict], max_probes: int | None) -> list[dict]:
    """At most max_probes of the probes: the same seeded sample every time, in probe order."""
    if max_probes and len(rows) > max_probes:
        return sorted(random.Random(0).sample(rows, max_probes), key=lambda p: p["probe_id"])
    return rows


def eval_rows(run: Run, max_probes: int | None = None) -> tuple[list[dict], list[dict]]:
    """The probe rows and SFT validation rows a run is judged on: a DPO run's come from its SFT parent's data
    (its own val file holds preference pairs, not conversations). Empty lists where the data has none."""
    probe_path, val_path = data_files(sft_parent(run) or run, None)
    return (
        sample_probes(read_jsonl(probe_path), max_probes) if probe_path else [],
        conversations(val_path) if val_path and val_path.is_file() else [],
    )


def answer_probes(backend: Backend, probes: list[dict], settings: GenerationSettings) -> list[str]:
    """Answers in probe order, generated per task with that task's token budget."""
    answers: list[str] = [""] * len(probes)
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(probes):
        by_task[p.get("task", "SPEC")].append(i)
    for task, idx in by_task.items():
        budget = settings.but(max_new_tokens=MAX_NEW_TOKENS.get(task, 96))
        for i, a in zip(idx, backend.answer([conversation_of(probes[i], "probe") for i in idx], budget), strict=True):
            answers[i] = a
    return answers


def summarise(probes: list[dict], scores: list) -> dict:
    out = {}
    for group, held in (("trained", False), ("held_out", True)):
        rows = [(p, s) for p, s in zip(probes, scores, strict=True) if bool(p.get("held_out")) == held]
        by_task = defaultdict(list)
        for p, s in rows:
            by_task[p.get("task", "SPEC")].append(s)
        out[group] = {
            "overall": _acc([s for _, s in rows]),
            "by_task": {t: _acc(v) for t, v in sorted(by_task.items())},
        }
    return out


def _acc(scores: list) -> dict:
    n = len(scores)
    correct = sum(s.correct for s in scores)
    abstained = sum(s.abstained for s in scores)
    wrong = n - correct - abstained
    return {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "mean_score": sum(s.score for s in scores) / n if n else None,
        "abstained": abstained,
        "confident_wrong": wrong,
        "confident_wrong_rate": wrong / n if n else None,
    }


def exported_backend(run: Run, spec: str, tok, settings: GenerationSettings):
    """`merged` → the merged HF folder; `gguf:TYPE` → RUN/export/model-TYPE.gguf; a path ending .gguf → that file."""
    export = run.path / "export"
    if spec == "merged":
        from orgtune.models.loading import load_model

        folder = export / "merged"
        if not (folder / "config.json").is_file():
            raise OrgtuneError(f"{folder}: no merged model", fix=f"run `orgtune export {run.path}` first")
        model, tok2, _ = load_model(str(folder), device="cpu", dtype="float32")
        return HFBackend(model, tok2, name="merged", settings=settings)
    if spec.startswith("gguf:") or spec.endswith(".gguf"):
        from orgtune.generate.llama import LlamaCppBackend

        path = Path(spec) if spec.endswith(".gguf") else export / f"model-{spec.split(':', 1)[1].lower()}.gguf"
        if not path.is_file():
            raise OrgtuneError(f"{path}: no such GGUF", fix=f"run `orgtune export {run.path} --gguf TYPE` first")
        return LlamaCppBackend(
            path, tok, name=spec if spec.startswith("gguf:") else f"gguf:{path.stem}", settings=settings
        )
    raise OrgtuneError(f"--backend {spec!r}: unknown", fix="use merged, gguf:TYPE (e.g. gguf:q4_k_m) or a .gguf path")


def evaluate(
    run_dir: Path,
    *,
    probes: Path | None = None,
    max_probes: int | None = None,
    batch_size: int = 16,
    device: str = "auto",
    extra_backends: list[str] | tuple = (),
    general_items: int | None = None,
    general_samples: int = 8,
    general_temperature: float = 0.7,
    log=print,
) -> dict:
    """Base vs tuned (and SFT, merged, GGUF backends) on the run's probes, validation loss and the general
    check (greedy, and `general_samples` sampled answers per item at `general_temperature`; 0: greedy only);
    writes metrics.json, report.md and plots. `orgtune eval RUN_DIR` runs it."""
    from peft import PeftModel

    from orgtune.evaluate.report import write_report
    from orgtune.models.loading import load_model

    if general_samples < 0 or (general_samples and not 0 < general_temperature <= 2):
        raise OrgtuneError(
            f"general check: {general_samples} samples at temperature {general_temperature}",
            fix="give --general-samples ≥ 0 (0: greedy only) and a --general-temperature in (0, 2]",
        )
    run = read_complete_run(run_dir)
    parent = sft_parent(run)
    probe_path, val_path = data_files(parent or run, probes)
    probe_rows = sample_probes(read_jsonl(probe_path), max_probes) if probe_path else []
    # Parsed once, before the model loads: a bad row is a file:line error, not a crash after minutes of work.
    val_data = load_rows(val_path, allowed=SFT_FORMATS).rows if val_path is not None else None
    if probe_path is None:
        log(
            "no probes.jsonl beside the training data (a JSONL dataset): judged on validation loss, the general "
            "check and answers to the data's own questions next to its reference answers"
        )
    started = time.time()
    base_model, tok, info = load_model(run.base_model, device=device, dtype=run.config.model.dtype)
    model = PeftModel.from_pretrained(base_model, run.adapter_dir)
    settings = GenerationSettings(batch_size=batch_size)
    tuned = HFBackend(model, tok, name="tuned", settings=settings, adapter="default")
    backends = {"base": tuned.with_adapter(False, "base")}
    if parent is not None:  # a DPO run: its SFT parent answers too, from the same weights
        model.load_adapter(str(parent.adapter_dir), adapter_name="sft")
        backends["sft"] = tuned.with_adapter(True, "sft", adapter="sft")
    backends["tuned"] = tuned
    for spec in extra_backends:
        b = exported_backend(run, spec, tok, GenerationSettings(batch_size=batch_size))
        backends[b.name] = b

    general = load_general()[:general_items]  # the first N items of the general check (None: all)
    metrics: dict = {
        "run": str(run.path),
        "base_model": run.base_model,
        "probes_file": str(probe_path) if probe_path else None,
        "val_file": str(val_path) if val_path else None,
        "device": info["device"],
        "backends": {},
    }
    answers: dict[str, list[str]] = {}
    scores: dict[str, list] = {}
    for name, backend in backends.items():
        log(f"{name}: answering {len(probe_rows)} probes")
        answers[name] = answer_probes(backend, probe_rows, settings)
        scores[name] = [score_probe(p, a) for p, a in zip(probe_rows, answers[name], strict=True)]
        m = {"probes": summarise(probe_rows, scores[name])}
        if val_data is not None:
            m["val"] = _val_loss(backend, val_data, run.config.model.max_seq_length)
        metrics["backends"][name] = m
    metrics["regression"] = _general_check(
        backends, general, info, batch_size, log, general_samples, general_temperature
    )
    if parent is not None:
        metrics["preferences"] = _preferences(run, backends, log)
    metrics["seconds"] = round(time.time() - started, 1)

    per_probe = [
        {
            **p,
            "answers": {k: answers[k][i] for k in backends},
            "scores": {
                k: {
                    "correct": scores[k][i].correct,
                    "score": round(scores[k][i].score, 4),
                    "abstained": scores[k][i].abstained,
                    "reason": scores[k][i].reason,
                }
                for k in backends
            },
        }
        for i, p in enumerate(probe_rows)
    ]
    atomic.write_jsonl(run.path / "eval" / "answers.jsonl", per_probe)
    metrics["samples"] = (
        _samples(per_probe) if probe_rows else _reference_samples(parent or run, val_path, val_data, backends)
    )
    write_report(run, metrics)
    return metrics


def _val_loss(backend: Backend, val_data: list, max_len: int) -> dict:
    """Mean loss and perplexity over the validation rows' assistant tokens, as the backend computes them."""
    from orgtune.evaluate.loss import assistant_loss

    val_rows = [{"messages": r.messages} for r in val_data]
    if hasattr(backend, "assistant_loss"):  # llama.cpp computes it from its own logits
        loss, ppl, n = backend.assistant_loss(val_rows, max_len=max_len)
    else:
        with backend.active():
            loss, ppl, n = assistant_loss(backend.model, backend.tok, val_rows, max_len=max_len)
    return {"loss": loss, "perplexity": ppl, "tokens": n, "rows": len(val_rows)}


def _general_check(
    backends: dict, general: list[dict], info: dict, batch_size: int, log, samples: int, temperature: float
) -> dict:
    """Base vs tuned on the general check: the greedy comparison, with the sampled rule's beside it
    (`sampled`) when `samples` > 0."""
    greedy = {n: _general_answers(n, backends[n], general, info, batch_size, log) for n in ("base", "tuned")}
    regression = compare(greedy["base"], greedy["tuned"], general)
    if samples:
        sampled = {}
        for n in ("base", "tuned"):
            log(f"{n}: {samples} sampled answers to each of {len(general)} general items")
            sampled[n] = _general_answers(n, backends[n], general, info, batch_size, log, samples, temperature)
        regression["sampled"] = compare_sampled_answers(
            sampled["base"], sampled["tuned"], general, temperature=temperature
        )
    return regression


def _general_answers(
    name: str, backend: Backend, general: list[dict], info: dict, batch_size: int, log, samples: int = 0, t: float = 0.7
) -> list:
    """The backend's answers to the general check: one greedy answer per item, or with `samples` that many
    sampled ones per item (seed 0 for base and tuned alike, so both draw the same random numbers). The base
    model's come from a cache kept per base."""
    k = max(samples, 1)
    settings = GenerationSettings(max_new_tokens=64, batch_size=batch_size)
    settings = settings.but(temperature=t, seed=0) if samples else settings

    def ask() -> list:
        flat = backend.answer(
            [[{"role": "user", "content": g["question"]}] for g in general for _ in range(k)], settings
        )
        return [flat[i * k : (i + 1) * k] for i in range(len(general))] if samples else flat

    if name == "tuned":
        return ask()
    generation = {
        "max_new_tokens": 64,
        "batch_size": batch_size,
        "device": info["device"],
        "dtype": str(info.get("dtype")),
    }
    if samples:
        generation |= {"samples": samples, "temperature": t, "seed": 0}
    return base_answers(Path(info["path"]), general, generation, ask, log=log)


def sft_parent(run: Run) -> Run | None:
    """The SFT run a DPO run started from (None for SFT runs, or DPO trained from the bare base)."""
    if run.manifest.get("method") != "dpo" or not run.manifest.get("parent"):
        return None
    return read_complete_run(Path(run.manifest["parent"]["run"]))


def _preferences(run: Run, backends: dict, log) -> dict | None:
    """Reward margin and preference accuracy on the DPO run's held-out pairs (its validation file)."""
    from orgtune.data.formats import load_rows
    from orgtune.evaluate.prefs import pair_logps, preference_metrics

    val = run.manifest["data"].get("val", {}).get("path")
    if not val or not Path(val).is_file():
        log("no held-out preference pairs (the DPO run had no validation file): preference metrics skipped")
        return None
    rows = [
        {"prompt": r.messages, "chosen": r.chosen, "rejected": r.rejected}
        for r in load_rows(Path(val), allowed=("preference",)).rows
    ]
    logps = {}
    for name in ("base", "sft", "tuned"):
        with backends[name].active():
            logps[name] = pair_logps(
                backends[name].model, backends[name].tok, rows, max_len=run.config.model.max_seq_length
            )
    out = preference_metrics(logps, reference="sft", policy="tuned", beta=run.config.dpo.beta)
    out["file"] = val
    return out


def _reference_samples(
    run: Run, val_path: Path | None, val_data: list | None, backends: dict, n: int = 8
) -> list[dict]:
    """Without probes: base and tuned answer the first questions of the validation file (else of the training
    file, marked as trained), shown beside the data's own answers; nothing is scored right or wrong."""
    path = val_path or Path(run.manifest["data"]["train"]["path"])
    parsed = val_data if val_data is not None else load_rows(path, allowed=SFT_FORMATS).rows
    rows = [r for r in parsed if r.messages[-1]["role"] == "assistant"][:n]
    prompts = [r.messages[:-1] for r in rows]
    settings = GenerationSettings(max_new_tokens=128)
    answers = {k: backends[k].answer(prompts, settings) if prompts else [] for k in ("base", "tuned")}
    return [
        {
            "question": r.messages[-2]["content"] if len(r.messages) > 1 else "",
            "task": None,
            "held_out": val_path is not None,
            "expected": r.messages[-1]["content"],
            "base": answers["base"][i],
            "tuned": answers["tuned"][i],
            "base_correct": None,
            "tuned_correct": None,
            "reference": f"{path.name}:{r.line}",
        }
        for i, r in enumerate(rows)
    ]


def _samples(per_probe: list[dict], n: int = 12) -> list[dict]:
    """A spread of probes for the side-by-side table: every task, trained and held out."""
    picked, seen = [], set()
    for p in per_probe:
        key = (p.get("task"), p.get("held_out"))
        if key not in seen or len(picked) < n // 2:
            seen.add(key)
            picked.append(p)
        if len(picked) >= n:
            break
    return [
        {
            "question": p["plain_question"],
            "task": p.get("task"),
            "held_out": p.get("held_out"),
            "expected": p["expected"],
            "base": p["answers"]["base"],
            "tuned": p["answers"]["tuned"],
            "base_correct": p["scores"]["base"]["correct"],
            "tuned_correct": p["scores"]["tuned"]["correct"],
        }
        for p in picked
    ]
