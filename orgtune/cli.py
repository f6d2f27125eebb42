"""The `orgtune` command line: parse flags, call one stage function, print its result.

    orgtune models
    orgtune plan qwen2.5-3b --lora-targets q_proj,k_proj,v_proj,o_proj
    orgtune data check data.jsonl --show-mask 2
    orgtune train --data data.jsonl --out runs/first
    orgtune ask runs/first "What pressure does the Velbrook Halvo brew at?" --with-base

Errors a user can fix are printed without a traceback, and the exit code is 2.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from orgtune.errors import OrgtuneError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Fine-tune small instruct LLMs on your documents, prove it, ship it.",
)
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Check and build training data.")
app.add_typer(data_app, name="data")


def friendly(fn):
    """Print OrgtuneError as a plain message on stderr and exit 2 (as a usage error does)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OrgtuneError as e:
            typer.echo(f"error: {e.render()}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _echo_err(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
@friendly
def models() -> None:
    """List the model presets (architecture shipped with orgtune; sizes computed, never quoted)."""
    from orgtune.models.presets import all_presets

    for p in all_presets().values():
        where = "embedded, offline" if p.embedded else "HF cache / hub"
        lora = p.defaults.get("lora", {})
        targets = ",".join(lora.get("target_modules", []))
        typer.echo(f"{p.name:<18} {p.hub_id:<38} {where:<18} LoRA r{lora.get('r')} on {targets}")
        typer.echo(f"{'':<18} {p.description}")


@app.command()
@friendly
def plan(
    model: Annotated[str, typer.Argument(help="Preset, local model folder, or hub id.")],
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_targets: Annotated[
        Optional[str], typer.Option(help="Comma-separated linear layers (default: all seven projections).")
    ] = None,
    qlora: Annotated[bool, typer.Option("--qlora", help="Show only the 4-bit QLoRA estimate.")] = False,
    batch_size: Annotated[int, typer.Option(help="Micro-batch size for the memory estimate.")] = 4,
    seq_len: Annotated[int, typer.Option(help="Sequence length for the memory estimate.")] = 512,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Estimate with activation checkpointing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Parameters, trainable LoRA parameters, adapter size and training memory, from the architecture alone."""
    from orgtune.models.plan import plan_run

    p = plan_run(
        model,
        lora_r=lora_r,
        lora_targets=_csv(lora_targets),
        batch_size=batch_size,
        seq_len=seq_len,
        gradient_checkpointing=gradient_checkpointing,
    )
    if qlora:
        p.memory = {k: v for k, v in p.memory.items() if k.startswith("qlora")}
    typer.echo(json.dumps(p.to_dict(), indent=2) if as_json else p.render())


@data_app.command("check")
@friendly
def data_check(
    file: Annotated[
        Path, typer.Argument(help="JSONL file: chat, alpaca, sharegpt, prompt/completion or preference rows.")
    ],
    model: Annotated[
        str, typer.Option(help="Model whose tokenizer and chat template measure the rows.")
    ] = "smollm2-135m",
    max_seq_length: Annotated[int, typer.Option(help="Truncation length used in training.")] = 512,
    show_mask: Annotated[int, typer.Option(help="Print N rows with the trained tokens marked ⟦like this⟧.")] = 0,
) -> None:
    """Validate every row (line-numbered errors), then report token lengths, truncation and dropped rows."""
    from orgtune.data.check import check_file

    typer.echo(check_file(file, model=model, max_seq_length=max_seq_length, show=show_mask).render())


@data_app.command("build")
@friendly
def data_build(
    docs: Annotated[list[Path], typer.Argument(help="Document files or folders (.txt .md .html .pdf .docx).")],
    out: Annotated[Path, typer.Option(help="Data folder to write (replaced atomically if it holds an earlier build).")],
    model: Annotated[
        Optional[str], typer.Option(help="Preset whose data defaults apply (e.g. examples per document).")
    ] = None,
    examples_per_fact: Annotated[
        int, typer.Option(help="Phrasings per fact (procedures also get every step-order question).")
    ] = 5,
    max_per_doc: Annotated[
        Optional[int], typer.Option(help="Cap on examples per document (default: the preset's, else none).")
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of examples kept for validation.")] = 0.1,
    holdout: Annotated[
        float, typer.Option(help="Share of facts held out of training, probed as a hallucination check.")
    ] = 0.15,
    abstain_holdout: Annotated[
        float,
        typer.Option(help='Share of facts also kept out of training, for `data prefs` to teach "I don\'t know" (DPO).'),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for phrasing choice, hold-out and split.")] = 0,
    max_file_mb: Annotated[float, typer.Option(help="Skip (and report) files larger than this.")] = 20.0,
    teacher: Annotated[
        Optional[str], typer.Option(help="OpenAI-compatible base URL that adds grounded paraphrases (optional).")
    ] = None,
    teacher_model: Annotated[Optional[str], typer.Option(help="Model name the teacher endpoint serves.")] = None,
    teacher_api_key: Annotated[
        Optional[str], typer.Option(envvar="ORGTUNE_TEACHER_API_KEY", help="API key for the teacher.")
    ] = None,
    teacher_max_tokens: Annotated[int, typer.Option(help="Longest teacher reply, in tokens.")] = 800,
) -> None:
    """Turn documents into train/val chat examples with provenance, plus held-out closed-book probes."""
    from orgtune.data.build import BuildSettings, build
    from orgtune.data.stats import data_stats, render_stats
    from orgtune.models.presets import find_preset

    preset = find_preset(model) if model else None
    if max_per_doc is None and preset is not None:
        max_per_doc = preset.data.get("max_examples_per_doc")
    fmt = (preset.defaults.get("model", {}).get("task_prefix_format") if preset else None) or "[{TASK}] {instruction}"
    settings = BuildSettings(
        examples_per_fact=examples_per_fact,
        max_examples_per_doc=max_per_doc,
        val_fraction=val_fraction,
        holdout_fraction=holdout,
        abstain_holdout=abstain_holdout,
        seed=seed,
        max_file_mb=max_file_mb,
        task_prefix_format=fmt,
        teacher_url=teacher,
        teacher_model=teacher_model,
        teacher_api_key=teacher_api_key,
        teacher_max_tokens=teacher_max_tokens,
    )
    result = build(docs, out, settings, log=_echo_err)
    typer.echo(f"wrote {result.out} in {result.manifest['seconds']} s")
    typer.echo(render_stats(data_stats(result.out, model=None)))


@data_app.command("stats")
@friendly
def data_stats_cmd(
    data_dir: Annotated[Path, typer.Argument(help="A folder made by `orgtune data build`.")],
    model: Annotated[str, typer.Option(help="Tokenizer for the token-length figures.")] = "smollm2-135m",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts per task and document, fact coverage, duplicates, probe/train leakage, token lengths."""
    from orgtune.data.stats import data_stats, render_stats

    s = data_stats(data_dir, model=model)
    typer.echo(json.dumps(s, indent=2) if as_json else render_stats(s))


@data_app.command("trace")
@friendly
def data_trace(
    item_id: Annotated[str, typer.Argument(help="An example id (ex-…), probe id (pr-…) or fact id.")],
    data: Annotated[Optional[Path], typer.Option(help="Data folder (default: the newest `data build`).")] = None,
) -> None:
    """Print an example (or probe, or fact) next to the source span it was made from."""
    from orgtune.data.stats import find_data_dir, trace

    typer.echo(trace(item_id, find_data_dir(data)))


@data_app.command("prefs")
@friendly
def data_prefs(
    data_dir: Annotated[Path, typer.Argument(help="A folder made by `orgtune data build`.")],
    model: Annotated[
        str, typer.Option(help="Who answers: a finished run folder (usually the SFT run) or a preset/folder.")
    ],
    out: Annotated[
        Path, typer.Option(help="Preference file to write (PREFS.jsonl; held-out pairs go to PREFS.val.jsonl).")
    ],
    questions_per_fact: Annotated[
        int, typer.Option(help="Phrasings of each trained fact to ask (unused by training first).")
    ] = 1,
    abstain_share: Annotated[
        float, typer.Option(help="Questions the documents do not answer, per fact question.")
    ] = 0.5,
    val_fraction: Annotated[float, typer.Option(help="Share of facts whose pairs are held out for evaluation.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for corruptions and the split.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Questions generated per batch.")] = 16,
    max_questions: Annotated[
        Optional[int], typer.Option(help="Ask at most N fact questions (a random spread).")
    ] = None,
    unknown_per_fact: Annotated[
        int, typer.Option(help="Phrasings asked of each fact `data build --abstain-holdout` kept out of training.")
    ] = 8,
    refusal_share: Annotated[
        float,
        typer.Option(
            help="Share of fact questions that also get a pair against abstaining (chosen = the grounded answer)."
        ),
    ] = 0.0,
    sure: Annotated[
        float,
        typer.Option(
            help="Abstention pairs only where the model is less sure than this (lowest token probability of its answer); refusal pairs only where it is right and sure. 0 = off."
        ),
    ] = 0.5,
    anchors: Annotated[
        bool,
        typer.Option(
            help="A trained fact whose value the model gave for an unknown one also gets a pair against abstaining."
        ),
    ] = False,
) -> None:
    """Preference pairs for DPO: grounded answer (chosen) vs the model's own wrong answer or a corrupted one."""
    from orgtune.prefs.build import PrefSettings, build_prefs

    settings = PrefSettings(
        questions_per_fact=questions_per_fact,
        abstain_share=abstain_share,
        val_fraction=val_fraction,
        seed=seed,
        batch_size=batch_size,
        max_questions=max_questions,
        unknown_per_fact=unknown_per_fact,
        refusal_share=refusal_share,
        sure=sure,
        anchors=anchors,
    )
    result = build_prefs(data_dir, model, out, settings, log=_echo_err)
    c = result.counts
    typer.echo(
        f"wrote {c['train']} pairs to {result.train} and {c['val']} held-out pairs to {result.val} in {c['seconds']} s"
    )
    typer.echo("rejected answers: " + ", ".join(f"{k} {v}" for k, v in sorted(c["rejected_kinds"].items())))
    typer.echo(f"the model was right on {c['model_right_on_fact_questions']} of {c['questions']} fact questions")


@app.command()
@friendly
def train(
    data: Annotated[
        Path,
        typer.Option(
            help="Training JSONL, or a folder with train.jsonl (and val.jsonl); with --method dpo a preference file."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Run folder to create (or to resume, if it holds this same run).")],
    model: Annotated[Optional[str], typer.Option(help="Preset, local folder or hub id (default smollm2-135m).")] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML run config (model / lora / qlora / training); flags override it.")
    ] = None,
    val: Annotated[Optional[Path], typer.Option(help="Validation JSONL; its loss is computed every epoch.")] = None,
    val_fraction: Annotated[
        Optional[float], typer.Option(help="Without a validation file, hold out this share of --data.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Require an existing run in --out and continue it.")] = False,
    init_adapter: Annotated[
        Optional[Path], typer.Option(help="Start from this finished run's adapter (incremental training).")
    ] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Number of epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Rows per micro-batch.")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Gradient accumulation steps.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps.")] = None,
    max_seq_length: Annotated[Optional[int], typer.Option(help="Truncate rows to N tokens.")] = None,
    lora_r: Annotated[Optional[int], typer.Option(help="LoRA rank.")] = None,
    lora_alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha.")] = None,
    lora_dropout: Annotated[Optional[float], typer.Option(help="LoRA dropout.")] = None,
    lora_targets: Annotated[Optional[str], typer.Option(help="Comma-separated target modules.")] = None,
    qlora: Annotated[
        Optional[bool], typer.Option("--qlora/--no-qlora", help="4-bit nf4 + double-quant base (CUDA + bitsandbytes).")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
    save_steps: Annotated[Optional[int], typer.Option(help="Checkpoint every N steps (and every epoch end).")] = None,
    tensorboard: Annotated[
        Optional[bool], typer.Option("--tensorboard/--no-tensorboard", help="Also log to RUN/tensorboard.")
    ] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="auto, float32, bfloat16 or float16.")] = None,
    method: Annotated[
        str, typer.Option(help="sft, or dpo (preference pairs; usually with --init-adapter SFT_RUN).")
    ] = "sft",
    beta: Annotated[Optional[float], typer.Option(help="DPO: how far the policy may move from the reference.")] = None,
    loss_type: Annotated[
        Optional[str], typer.Option(help="DPO loss(es), comma-separated, TRL's names (default sigmoid,sft).")
    ] = None,
    loss_weights: Annotated[
        Optional[str], typer.Option(help="DPO: one weight per loss type, comma-separated (e.g. 0.5,1).")
    ] = None,
    replay: Annotated[
        Optional[float], typer.Option(help="DPO: weight of the NLL on SFT rows replayed beside the pairs (0 = off).")
    ] = None,
    replay_data: Annotated[
        Optional[Path], typer.Option(help="DPO: SFT rows to replay (default: the --init-adapter run's training file).")
    ] = None,
    launch: Annotated[
        Optional[int],
        typer.Option(
            help="Train as N processes on this machine (torch.distributed.run): N GPUs, or N CPU ranks over gloo.",
            min=1,
        ),
    ] = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(
            help="With --launch or under torchrun: ddp (default), zero2, zero3, fsdp2, or a JSON file of TrainingArguments fields."
        ),
    ] = None,
) -> None:
    """Train a LoRA adapter: SFT (assistant tokens only), or DPO on preference pairs on top of an SFT run.
    Re-running the same command resumes after a crash."""
    if method not in ("sft", "dpo"):
        raise OrgtuneError(f"--method {method!r}: unknown", fix="use --method sft or --method dpo")
    _check_launch(launch, strategy, method)
    if method == "sft" and any(x is not None for x in (beta, loss_type, loss_weights, replay, replay_data)):
        raise OrgtuneError(
            "--beta, --loss-type, --loss-weights, --replay and --replay-data are DPO settings",
            fix="add --method dpo, or drop them",
        )
    if method == "dpo":
        from orgtune.train.dpo import train_dpo as run_training
    else:
        from orgtune.train.sft import train as run_training

    overrides = {
        "model": {"name": model, "max_seq_length": max_seq_length, "device": device, "dtype": dtype},
        "lora": {"r": lora_r, "alpha": lora_alpha, "dropout": lora_dropout, "target_modules": _csv(lora_targets)},
        "qlora": {"enabled": qlora},
        "training": {
            "num_epochs": epochs,
            "learning_rate": lr,
            "per_device_train_batch_size": batch_size,
            "gradient_accumulation_steps": grad_accum,
            "max_steps": max_steps,
            "seed": seed,
            "save_steps": save_steps,
            "tensorboard": tensorboard,
            "val_fraction": val_fraction,
        },
        "dpo": {
            "beta": beta,
            "loss_type": _csv(loss_type),
            "loss_weights": _csv(loss_weights),
            "replay": replay,
            "replay_data": str(replay_data) if replay_data is not None else None,
        },
    }
    overrides = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in overrides.items()}
    overrides = {k: v for k, v in overrides.items() if v}
    if launch is not None:
        run = _launch(
            launch,
            data,
            out,
            config=config,
            overrides=overrides,
            val=val,
            resume=resume,
            init_adapter=init_adapter,
            strategy=strategy,
        )
    else:
        extra = {"strategy": strategy} if method == "sft" else {}
        run = run_training(
            data,
            out,
            config_path=config,
            overrides=overrides,
            val=val,
            resume=resume,
            init_adapter=init_adapter,
            log=_echo_err,
            **extra,
        )
    from orgtune.train import distributed

    if not distributed.is_main() or os.environ.get(_LAUNCHED):  # the launching process says it once
        return
    s = run.manifest.get("summary", {})
    typer.echo(
        f"run complete: {run.path}  adapter: {run.adapter_dir}  steps: {s.get('global_step')}  "
        f"train loss: {s.get('train_loss'):.4f}"
        if s.get("train_loss") is not None
        else f"run complete: {run.path}"
    )


_LAUNCHED = "ORGTUNE_LAUNCHED"  # set for the ranks `--launch` starts


def _check_launch(launch: int | None, strategy: str | None, method: str) -> None:
    from orgtune.train import distributed

    if launch is None and strategy is None:
        return
    if method != "sft":
        raise OrgtuneError(
            "--launch and --strategy are for SFT; orgtune dpo trains in one process",
            fix="drop --launch/--strategy for --method dpo",
        )
    if launch is not None and distributed.active():
        raise OrgtuneError(
            f"--launch {launch} inside torchrun (WORLD_SIZE={distributed.world_size()}): the ranks are already started",
            fix="drop --launch when torchrun starts the processes",
        )
    if launch is None and not distributed.active():
        raise OrgtuneError(
            f"--strategy {strategy} needs several processes",
            fix="add --launch N (N processes on this machine), or start the command under torchrun",
        )


def _launch(nproc: int, data: Path, out: Path, *, config, overrides, val, resume, init_adapter, strategy):
    """Check what can be checked in this process, then run the same command as `nproc` ranks."""
    import subprocess

    from orgtune.data.formats import SFT_FORMATS
    from orgtune.train import distributed, runfolder
    from orgtune.train.runfolder import prepare

    prepare(
        data,
        out,
        config_path=config,
        overrides=overrides,
        val=val,
        resume=resume,
        init_adapter=init_adapter,
        formats=SFT_FORMATS,
        strategy=strategy or "ddp",
    )  # bad input fails here, once, before N processes start
    cmd = distributed.launch_command(sys.argv[1:], nproc)
    _echo_err(f"launching {nproc} processes: {' '.join(cmd[1:6])} ...")
    env = {
        **os.environ,
        _LAUNCHED: "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc))),
    }
    code = subprocess.run(cmd, env=env).returncode
    if code != 0:
        raise OrgtuneError(
            f"the {nproc} training processes exited with status {code} (their messages are above)",
            fix="fix what they report and run the same command again: it resumes from the last checkpoint",
        )
    return runfolder.read_run(out)


@app.command()
@friendly
def ask(
    run_dir: Annotated[Optional[Path], typer.Argument(help="A finished run folder (base + its adapter).")] = None,
    question: Annotated[Optional[str], typer.Argument(help="One question; or use --questions.")] = None,
    model: Annotated[
        Optional[str], typer.Option(help="Answer with a plain model (preset, folder, hub id) instead of a run.")
    ] = None,
    questions: Annotated[
        Optional[Path], typer.Option(help="JSONL with a question (or prompt, or messages) per row.")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the rows with an added `answer` field here.")] = None,
    with_base: Annotated[
        bool, typer.Option("--with-base", help="Also answer with the adapter switched off (base_answer).")
    ] = False,
    where: Annotated[
        Optional[list[str]], typer.Option(help="Only rows whose FIELD equals VALUE (FIELD=VALUE; repeatable).")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Answer at most N rows (after --where).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Generation limit per answer.")] = 200,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Questions generated together.")] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Answer questions with a run's tuned model (or a base model): greedy, batched, the model's chat template."""
    from orgtune.evaluate.answer import answer_rows, load_backend, read_questions, write_answers
    from orgtune.generate.settings import GenerationSettings

    if run_dir is not None and question is None and model is not None:
        run_dir, question = None, str(run_dir)  # `ask --model X "question"`
    if run_dir is not None and not run_dir.exists() and question is None:
        raise OrgtuneError(
            f"{run_dir}: no such run folder", fix="pass a run folder made by `orgtune train`, or --model"
        )
    if (question is None) == (questions is None):
        raise OrgtuneError(
            "give either one QUESTION or --questions FILE", fix='e.g. orgtune ask runs/first "What is ...?"'
        )
    rows = read_questions(questions) if questions else [{"question": question}]
    for cond in where or []:
        field, sep, value = cond.partition("=")
        if not sep:
            raise OrgtuneError(
                f"--where {cond!r}: expected FIELD=VALUE", fix="e.g. --where held_out=false --where task=SPEC"
            )
        rows = [r for r in rows if str(r.get(field)).lower() == value.lower()]
    rows = rows[:limit] if limit else rows
    if not rows:
        raise OrgtuneError("no question left to answer", fix="loosen --where / --limit")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size)
    backend = load_backend(run_dir, model=model, device=device, settings=settings)
    answered = answer_rows(backend, rows)
    if with_base:
        if run_dir is None:
            raise OrgtuneError("--with-base compares a run with its base", fix="pass a RUN_DIR")
        base_rows = answer_rows(backend.with_adapter(False, "base"), rows, field="base_answer")
        answered = [{**a, "base_answer": b["base_answer"]} for a, b in zip(answered, base_rows, strict=True)]
    if out:
        write_answers(out, answered)
        typer.echo(f"wrote {len(answered)} answers to {out}")
        return
    for r in answered:
        q = r.get("question") or r.get("prompt") or "(conversation)"
        if with_base:
            typer.echo(f"Q: {q}\n  base:  {r['base_answer']}\n  tuned: {r['answer']}")
        else:
            typer.echo(r["answer"] if len(answered) == 1 else f"Q: {q}\nA: {r['answer']}")
    expected = [r for r in answered if isinstance(r.get("expected"), str)]
    if expected:

        def hits(key: str) -> int:
            return sum(r["expected"].lower() in r[key].lower() for r in expected)

        line = f"answers containing the expected value: tuned {hits('answer')}/{len(expected)}"
        typer.echo(line + (f", base {hits('base_answer')}/{len(expected)}" if with_base else ""))


@app.command("eval")
@friendly
def eval_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    probes: Annotated[
        Optional[Path], typer.Option(help="Probes JSONL (default: probes.jsonl of the run's data folder).")
    ] = None,
    max_probes: Annotated[Optional[int], typer.Option(help="Evaluate a fixed random sample of N probes.")] = None,
    general_items: Annotated[
        Optional[int], typer.Option(help="Use the general check's first N items only (default: all 122).", min=1)
    ] = None,
    general_samples: Annotated[
        int,
        typer.Option(
            help="Sampled answers per general item, base and tuned (the rule that counts an item worse only when "
            "its share of right answers fell significantly); 0: one greedy answer per item only.",
            min=0,
        ),
    ] = 8,
    general_temperature: Annotated[
        float, typer.Option(help="Sampling temperature of the general check's sampled answers.", min=0.01, max=2)
    ] = 0.7,
    batch_size: Annotated[int, typer.Option(help="Questions generated together.")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    backend: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Also evaluate an exported model: merged, gguf:TYPE (e.g. gguf:q4_k_m) or a .gguf path. Repeatable."
        ),
    ] = None,
) -> None:
    """Base vs tuned (and exported models): closed-book probe accuracy, validation loss, the general check;
    a run trained on a JSONL dataset (no probes) answers its validation questions beside their reference answers."""
    from orgtune.evaluate.report import summary_table
    from orgtune.evaluate.run import evaluate

    m = evaluate(
        run_dir,
        probes=probes,
        max_probes=max_probes,
        batch_size=batch_size,
        device=device,
        general_items=general_items,
        general_samples=general_samples,
        general_temperature=general_temperature,
        extra_backends=backend or [],
        log=_echo_err,
    )
    typer.echo(summary_table(m))
    typer.echo(f"report: {Path(m['run']) / 'report.md'}  metrics: {Path(m['run']) / 'metrics.json'}")


@app.command("export")
@friendly
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    gguf: Annotated[
        str,
        typer.Option(help="GGUF types, comma-separated: f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, q3_k_m; '' for none."),
    ] = "q4_k_m",
    keep_adapter: Annotated[
        bool,
        typer.Option(
            "--keep-adapter",
            help="Ship the adapter alone (plus a GGUF of the base and an ADAPTER Modelfile) instead of merging.",
        ),
    ] = False,
    ollama: Annotated[
        Optional[str],
        typer.Option(help="Run `ollama create NAME` (or print the command when the ollama CLI is missing)."),
    ] = None,
    system: Annotated[Optional[str], typer.Option(help="SYSTEM prompt written into the Modelfile.")] = None,
    verify: Annotated[
        bool,
        typer.Option(
            help="Check every GGUF in llama.cpp (load, tokenizer, EOS, greedy answers, perplexity, probe accuracy)."
        ),
    ] = True,
    max_probes: Annotated[
        Optional[int], typer.Option(help="Score a fixed random sample of N probes per model.")
    ] = None,
    num_ctx: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Context window the Modelfile sets (PARAMETER num_ctx; "
            "default: max_seq_length, at least 2048, at most the "
            "model's context length).",
        ),
    ] = None,
) -> None:
    """Merge → GGUF → quantize → verify → Ollama Modelfile, into RUN_DIR/export/ with export_report.md."""
    from orgtune.export.gguf import parse_types
    from orgtune.export.run import export

    r = export(
        run_dir,
        gguf_types=parse_types(gguf),
        keep_adapter=keep_adapter,
        ollama_name=ollama,
        system=system,
        verify=verify,
        max_probes=max_probes,
        num_ctx=num_ctx,
        log=_echo_err,
    )
    for e in r["gguf"].values():
        acc = e.get("probes", {}).get("trained", {}).get("overall", {}).get("accuracy")
        ppl = e.get("val", {}).get("perplexity_change")
        typer.echo(
            f"{Path(e['file']).name}: {e['size_bytes'] / 2**20:.1f} MiB"
            + (f", trained-fact probes {100 * acc:.1f}%" if acc is not None else "")
            + (f", perplexity {100 * ppl:+.2f}% vs HF" if ppl is not None else "")
            + (f", EOS {e['eos_stopped']}/{len(e['eos'])}" if "eos" in e else "")
        )
    out = Path(r["run"]) / "export"
    typer.echo(
        f"report: {out / 'export_report.md'}"
        + (f"  Modelfile: {r['ollama']['file']}" if r["ollama"].get("written") else "")
    )


@app.command("serve")
@friendly
def serve_cmd(
    model: Annotated[
        str, typer.Option(help="Base model: preset, local folder or hub id (loaded once).")
    ] = "smollm2-135m",
    adapter: Annotated[
        Optional[list[str]], typer.Option(help="NAME=RUN_DIR: serve a run's adapter as model NAME. Repeatable.")
    ] = None,
    gguf: Annotated[
        Optional[Path], typer.Option(help="Serve this GGUF file through llama.cpp instead of --model.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[
        Optional[str], typer.Option(envvar="ORGTUNE_API_KEY", help="Require this bearer key on /v1/*.")
    ] = None,
    admin_key: Annotated[
        Optional[str],
        typer.Option(
            envvar="ORGTUNE_ADMIN_KEY",
            help="Key for loading/unloading adapters at run time (POST/DELETE /v1/adapters).",
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Requests for one adapter generated together.")] = 8,
    max_tokens_limit: Annotated[int, typer.Option(help="Largest max_tokens a request may ask for.")] = 2048,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body; a larger one gets 413.")] = 4.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    engine: Annotated[
        str,
        typer.Option(
            help="hf (this process) or vllm (print, or with --launch run, the vLLM "
            "command with --enable-lora and the adapters)."
        ),
    ] = "hf",
    launch: Annotated[bool, typer.Option("--launch", help="With --engine vllm: run the command.")] = False,
) -> None:
    """OpenAI-compatible API: one base model, any number of adapters picked by the request's `model`."""
    from orgtune.serve.cli import serve

    serve(
        model=model,
        adapters=adapter or [],
        gguf=gguf,
        host=host,
        port=port,
        api_key=api_key,
        admin_key=admin_key,
        max_batch=max_batch,
        max_tokens_limit=max_tokens_limit,
        device=device,
        engine=engine,
        launch=launch,
        max_body_mb=max_body_mb,
        log=_echo_err,
    )


service_app = typer.Typer(
    rich_markup_mode=None,
    invoke_without_command=True,
    help="The training service: OpenAI's fine-tuning jobs API over a job store, and its models.",
)
keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Project and admin API keys.")
service_app.add_typer(keys_app, name="keys")
app.add_typer(service_app, name="service")


@service_app.callback()
@friendly
def service(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    executor: Annotated[
        Optional[str],
        typer.Option(
            help="local (jobs run as subprocesses of this service) or procrastinate (`orgtune worker`s on PostgreSQL)."
        ),
    ] = None,
    slots: Annotated[
        Optional[int], typer.Option(help="Jobs at once with the local executor (default: one per GPU, 1 on CPU).")
    ] = None,
    base_model: Annotated[
        Optional[list[str]],
        typer.Option(help="A base model jobs may train and chat may call (repeatable; default smollm2-135m)."),
    ] = None,
) -> None:
    """Start the service (SQLite under ORGTUNE_HOME, or ORGTUNE_DATABASE_URL). Subcommand: keys."""
    if ctx.invoked_subcommand is not None:
        return
    from orgtune.service.cli import run_service, settings_with

    run_service(
        settings_with(executor=executor, slots=slots, base_models=base_model), host=host, port=port, log=_echo_err
    )


@keys_app.command("create")
@friendly
def keys_create(
    project: Annotated[Optional[str], typer.Option(help="Project the key belongs to (created if new).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key: manages keys, sees no project's data.")] = False,
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
) -> None:
    """Create an API key and print it (only its hash is stored: it cannot be shown again)."""
    from orgtune.service.db import Database
    from orgtune.service.keys import create_key

    db = Database.from_env()
    db.migrate()
    row, key = create_key(db, project=project, admin=admin, name=name)
    _echo_err(f"{row.id} ({'admin' if admin else 'project ' + str(project)}): keep this key, it is shown once")
    typer.echo(key)


@keys_app.command("list")
@friendly
def keys_list() -> None:
    """List keys (id, prefix, project, created, revoked)."""
    from orgtune.service.db import Database
    from orgtune.service.keys import list_keys

    db = Database.from_env()
    db.migrate()
    for k in list_keys(db):
        typer.echo(
            f"{k['id']}  {k['prefix']}…  {'admin' if k['admin'] else k['project']:<20} {k['name']:<16}"
            + ("  revoked" if k["revoked_at"] else "")
        )


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from orgtune.service.db import Database
    from orgtune.service.keys import revoke_key

    db = Database.from_env()
    db.migrate()
    revoke_key(db, key_id)
    typer.echo(f"revoked {key_id}")


@app.command()
@friendly
def worker(
    slots: Annotated[
        Optional[int], typer.Option(help="Jobs at once on this machine (default: one per GPU, 1 on CPU).")
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="Worker name shown in the queue.")] = None,
) -> None:
    """Run queued fine-tuning jobs from the PostgreSQL queue (ORGTUNE_DATABASE_URL), one runner per slot."""
    from orgtune.service.cli import settings_with
    from orgtune.service.queue import run_worker

    run_worker(settings_with(slots=slots, executor="procrastinate"), name=name)


nightly_app = typer.Typer(
    rich_markup_mode=None,
    invoke_without_command=True,
    help="Nightly incremental training behind an eval gate: delta data, replay, promote or keep.",
)
app.add_typer(nightly_app, name="nightly")


@nightly_app.callback()
@friendly
def nightly(
    ctx: typer.Context,
    project: Annotated[
        Optional[Path], typer.Option(help="The nightly project folder (created on the first night).")
    ] = None,
    docs: Annotated[Optional[list[Path]], typer.Option(help="Document folders or files (repeatable).")] = None,
    night: Annotated[
        Optional[str],
        typer.Option(help="This night's name (default: today's date); an unfinished night of that name is resumed."),
    ] = None,
    extra_data: Annotated[
        Optional[Path], typer.Option(help="More training rows for this night (chat, alpaca, …).")
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="Base model (first night only; default smollm2-135m).")] = None,
    replay: Annotated[Optional[float], typer.Option(help="Replayed earlier rows per new row.")] = None,
    threshold: Annotated[
        Optional[float], typer.Option(help="Least accuracy on the new documents' probes to promote.")
    ] = None,
    old_margin: Annotated[
        Optional[float], typer.Option(help="Largest drop allowed on earlier documents' probes.")
    ] = None,
    general_margin: Annotated[
        Optional[float], typer.Option(help="Largest drop allowed on the general check (share).")
    ] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Epochs of each night after the first.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of each night after the first.")] = None,
    first_epochs: Annotated[
        Optional[float], typer.Option(help="Epochs of the first night (default: the preset's).")
    ] = None,
    first_lr: Annotated[
        Optional[float], typer.Option(help="Learning rate of the first night (default: the preset's).")
    ] = None,
    examples_per_fact: Annotated[Optional[int], typer.Option(help="Phrasings per fact in each night's data.")] = None,
    general_items: Annotated[Optional[int], typer.Option(help="Use the general check's first N items only.")] = None,
    general_samples: Annotated[
        Optional[int],
        typer.Option(
            help="Sampled answers per general item for the gate's rule (default 8; 0: the greedy right count).", min=0
        ),
    ] = None,
    general_replay: Annotated[
        Optional[float],
        typer.Option(
            help="Self-distilled general rows mixed into SFT, as a share of the rows (default: the run config's)."
        ),
    ] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop each night's training after N steps.")] = None,
    export: Annotated[
        Optional[str], typer.Option(help="After a promotion: GGUF types to export (e.g. q4_k_m).")
    ] = None,
    ollama: Annotated[Optional[str], typer.Option(help="After a promotion: `ollama create NAME`.")] = None,
) -> None:
    """Run one night: what changed in --docs since the promoted model → data → train → gate → promote.
    Subcommands: history, rollback."""
    if ctx.invoked_subcommand is not None:
        return
    if project is None or not docs:
        raise OrgtuneError("a night needs --project and --docs", fix="orgtune nightly --docs DOCS/ --project NIGHTLY/")
    from orgtune.nightly.run import nightly as run_night

    settings = {
        "model": model,
        "replay": replay,
        "threshold": threshold,
        "old_margin": old_margin,
        "general_margin": general_margin,
        "epochs": epochs,
        "lr": lr,
        "first_epochs": first_epochs,
        "first_lr": first_lr,
        "examples_per_fact": examples_per_fact,
        "general_items": general_items,
        "general_samples": general_samples,
        "general_replay": general_replay,
        "max_steps": max_steps,
    }
    r = run_night(
        docs,
        project,
        night=night,
        extra_data=extra_data,
        settings=settings,
        export=_csv(export),
        ollama=ollama,
        log=_echo_err,
    )
    if r.get("night") is None:
        typer.echo("nothing changed: no night run")
        return
    f = r["figures"]
    typer.echo(f"night {r['night']}: " + ("PROMOTED" if r["promote"] else "NOT PROMOTED: " + "; ".join(r["reasons"])))
    typer.echo(json.dumps({k: f[k] for k in ("new", "old", "general", "held_out")}))


@nightly_app.command("history")
@friendly
def nightly_history(project: Annotated[Path, typer.Option(help="The nightly project folder.")]) -> None:
    """Every night with its gate figures and decision, and every rollback."""
    from orgtune.nightly.run import history_table

    typer.echo(history_table(project))


@nightly_app.command("rollback")
@friendly
def nightly_rollback(
    project: Annotated[Path, typer.Option(help="The nightly project folder.")],
    to: Annotated[
        Optional[str], typer.Option(help="A night promoted before (default: the one before the current).")
    ] = None,
) -> None:
    """Move the promoted pointer back; the next night's delta is computed against that model."""
    from orgtune.nightly.run import rollback

    before, now = rollback(project, to)
    typer.echo(f"promoted: {before} → {now}")


def main() -> None:
    import warnings

    # transformers 5 renames gradient_checkpointing; TRL still sets the old name. Not the user's concern.
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6.*", category=FutureWarning)
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
