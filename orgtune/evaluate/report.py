"""The evaluation report: runs/<id>/report.md, metrics.json and plots/*.png, plus a terminal summary.

write_report(run, metrics)      # after orgtune.evaluate.run.evaluate()
print(summary_table(metrics))
"""

from __future__ import annotations

from pathlib import Path

from orgtune import atomic
from orgtune.train.runfolder import Run

TASK_ORDER = ("SPEC", "PROCEDURE", "EXPLAIN", "TROUBLESHOOT", "RECALL")


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x, fmt=".4f") -> str:
    return "–" if x is None else format(x, fmt)


def summary_table(m: dict) -> str:
    names = list(m["backends"])
    lines = [f"{'':34}" + "".join(f"{n:>14}" for n in names)]

    def row(label, get):
        lines.append(f"{label:34}" + "".join(f"{get(m['backends'][n]):>14}" for n in names))

    if m.get("probes_file", True):  # a run trained on a JSONL dataset has none
        row("trained-fact probes accuracy", lambda b: _pct(b["probes"]["trained"]["overall"]["accuracy"]))
        tasks = sorted(
            {t for b in m["backends"].values() for t in b["probes"]["trained"]["by_task"]},
            key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99,
        )
        for t in tasks:
            row(f"  {t}", lambda b, t=t: _pct(b["probes"]["trained"]["by_task"].get(t, {}).get("accuracy")))
        row("held-out probes accuracy", lambda b: _pct(b["probes"]["held_out"]["overall"]["accuracy"]))
        row("held-out confident wrong", lambda b: _pct(b["probes"]["held_out"]["overall"]["confident_wrong_rate"]))
    row("validation loss", lambda b: _num(b.get("val", {}).get("loss")))
    row("validation perplexity", lambda b: _num(b.get("val", {}).get("perplexity"), ".2f"))
    r = m["regression"]
    sr = r.get("sampled")
    if sr:
        lines.append(
            f"general instructions ({sr['total']}), {sr['samples']} sampled answers each: worse {sr['worse']}, "
            f"better {sr['better']}; right {_pct(sr['mean_base'])} (base) -> {_pct(sr['mean_tuned'])}"
        )
    lines.append(
        f"general instructions right{', greedy' if sr else ''}: base {r['base_right']}/{r['total']}, "
        f"tuned {r['tuned_right']}/{r['total']}; worse {r['worse']}, better {r['better']}"
        + (f" (sign test p {r['sign_p']:.2f})" if "sign_p" in r else "")
    )
    p = m.get("preferences")
    if p:
        lines.append(
            f"held-out preference pairs ({p['pairs']}): tuned prefers chosen "
            f"{_pct(p['by_backend']['tuned']['prefers_chosen'])} (sft {_pct(p['by_backend']['sft']['prefers_chosen'])}); "
            f"reward margin {_num(p.get('reward_margin_mean'))}, reward accuracy {_pct(p.get('reward_accuracy'))}"
        )
    return "\n".join(lines)


def _loss_plot(run: Run, out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = run.path / "metrics.jsonl"
    if not path.is_file():
        return False
    recs = atomic.read_jsonl_appended(path)  # a last line cut by a killed run is skipped
    train = [(r["step"], r["loss"]) for r in recs if "loss" in r]
    val = [(r["step"], r["eval_loss"]) for r in recs if "eval_loss" in r]
    if not train:
        return False
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(*zip(*train, strict=False), label="training loss (per step)", color="#4c72b0", linewidth=0.8, alpha=0.45)
    k = max(1, len(train) // 25)
    smooth = [
        (train[i][0], sum(v for _, v in train[max(0, i - k + 1) : i + 1]) / len(train[max(0, i - k + 1) : i + 1]))
        for i in range(len(train))
    ]
    ax.plot(*zip(*smooth, strict=False), label=f"training loss ({k}-step mean)", color="#4c72b0", linewidth=1.8)
    if val:
        ax.plot(*zip(*val, strict=False), "o-", label="validation loss (per epoch)", color="#dd8452")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per trained token")
    ax.set_title(f"{run.path.name}: training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return True


def _task_plot(m: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(m["backends"])
    groups = []
    for scope in ("trained", "held_out"):
        tasks = sorted(
            {t for b in m["backends"].values() for t in b["probes"][scope]["by_task"]},
            key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99,
        )
        groups += [(scope, t) for t in tasks]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) + 2), 4), dpi=110)
    width = 0.8 / len(names)
    colors = ["#8c8c8c", "#55a868", "#4c72b0", "#c44e52", "#8172b3"]
    for k, name in enumerate(names):
        vals = [100 * (m["backends"][name]["probes"][s]["by_task"].get(t, {}).get("accuracy") or 0) for s, t in groups]
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, vals, width, label=name, color=colors[k % len(colors)])
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(
        range(len(groups)), [f"{t}\n({'held out' if s == 'held_out' else 'trained'})" for s, t in groups], fontsize=8
    )
    ax.set_ylabel("closed-book accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Probe accuracy per task: base vs tuned")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _md_escape(s: str, limit: int = 160) -> str:
    s = " ".join(str(s).split())
    s = s[:limit] + "…" if len(s) > limit else s
    return s.replace("|", "\\|")


def write_report(run: Run, m: dict) -> None:
    """Write RUN/report.md, RUN/metrics.json and the plots from the metrics `evaluate` measured."""
    plots = run.path / "plots"
    plots.mkdir(exist_ok=True)
    has_loss = _loss_plot(run, plots / "loss.png")
    has_probes = bool(m.get("probes_file"))
    if has_probes:
        _task_plot(m, plots / "probes.png")
    m["plots"] = (["plots/loss.png"] if has_loss else []) + (["plots/probes.png"] if has_probes else [])
    names = list(m["backends"])
    lines = [
        f"# Evaluation of `{run.path.name}`",
        "",
        f"Base model `{m['base_model']}`; probes `{m['probes_file'] or 'none (a JSONL dataset)'}`; "
        f"device {m['device']}; {m['seconds']} s.",
        "",
        "## Summary",
        "",
        "```",
        summary_table(m),
        "```",
        "",
    ]
    for section in (_probe_section, _val_section, _prefs_section, _regression_section, _samples_section):
        lines += section(m, names)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in m["plots"]] + [""]
    atomic.write_json(run.path / "metrics.json", m)
    atomic.write_text(run.path / "report.md", "\n".join(lines))


def _probe_section(m: dict, names: list[str]) -> list[str]:
    """Closed-book probe accuracy and confident-wrong rate per scope and task, one column per backend."""
    if not m.get("probes_file"):
        return [
            "## Closed-book probes",
            "",
            "None: the run trained on a JSONL dataset, not on documents built by `orgtune data build`. The "
            "sample answers below are the data's own questions, answered next to its reference answers.",
            "",
        ]
    lines: list[str] = []
    lines += [
        "## Closed-book probes",
        "",
        "| scope | task | n | "
        + " | ".join(f"{n} accuracy" for n in names)
        + " | "
        + " | ".join(f"{n} confident wrong" for n in names)
        + " |",
        "|---|---|---|" + "---|" * (2 * len(names)),
    ]
    for scope in ("trained", "held_out"):
        first = m["backends"][names[0]]["probes"][scope]
        for task in ["overall", *first["by_task"]]:
            cells = [m["backends"][n]["probes"][scope]["overall" if task == "overall" else "by_task"] for n in names]
            cells = [c if task == "overall" else c.get(task, {}) for c in cells]
            lines.append(
                f"| {scope.replace('_', '-')} | {task} | {cells[0].get('n', 0)} | "
                + " | ".join(_pct(c.get("accuracy")) for c in cells)
                + " | "
                + " | ".join(_pct(c.get("confident_wrong_rate")) for c in cells)
                + " |"
            )
    lines += [
        "",
        "Held-out facts got no training example: they measure hallucination. A *confident wrong* answer "
        "states a value that is not the documented one (an abstention is not counted as wrong).",
        "",
    ]
    return lines


def _val_section(m: dict, names: list[str]) -> list[str]:
    """Validation loss and perplexity per backend, when measured."""
    lines: list[str] = []
    if any("val" in b for b in m["backends"].values()):
        lines += [
            "## Validation loss (assistant tokens)",
            "",
            "| backend | loss | perplexity | tokens |",
            "|---|---|---|---|",
        ]
        for n in names:
            v = m["backends"][n].get("val", {})
            lines.append(
                f"| {n} | {_num(v.get('loss'))} | {_num(v.get('perplexity'), '.2f')} | {v.get('tokens', '–')} |"
            )
        lines.append("")
    return lines


def _prefs_section(m: dict, names: list[str]) -> list[str]:
    """Held-out preference pairs (DPO runs)."""
    lines: list[str] = []
    p = m.get("preferences")
    if p:
        lines += [
            "## Preference pairs held out of DPO",
            "",
            f"{p['pairs']} pairs from `{p['file']}` that DPO never trained on. *Prefers chosen*: the share of "
            "pairs where the backend gives the grounded answer a higher log-probability than the rejected one. "
            f"Reward = {p['beta']} × (log p(tuned) − log p(sft)), DPO's implicit reward against its reference.",
            "",
            "| backend | prefers chosen | mean log-prob margin (chosen − rejected) |",
            "|---|---|---|",
        ]
        for n, b in p["by_backend"].items():
            lines.append(f"| {n} | {_pct(b['prefers_chosen'])} | {_num(b['mean_logp_margin'])} |")
        lines += [
            "",
            f"Reward margin (mean): {_num(p.get('reward_margin_mean'))}; reward accuracy: "
            f"{_pct(p.get('reward_accuracy'))}; chosen reward {_num(p.get('chosen_reward_mean'))}, "
            f"rejected reward {_num(p.get('rejected_reward_mean'))}.",
            "",
        ]
    return lines


def _regression_section(m: dict, names: list[str]) -> list[str]:
    """The general-instruction check: base vs tuned by the sampled rule (when run) and the greedy one, and the
    questions that moved."""
    lines: list[str] = ["## General instructions (regression check)", ""]
    r = m["regression"]
    sr = r.get("sampled")
    if sr:
        lines += [
            f"### Sampled rule, {sr['samples']} answers per item: worse {sr['worse']}, better {sr['better']} "
            f"of {sr['total']}",
            "",
            f"Rule: {sr['rule']}. Share of right answers: base {_pct(sr['mean_base'])}, "
            f"tuned {_pct(sr['mean_tuned'])}.",
            "",
        ]
        moved = [x for x in sr["rows"] if x["worse"] or x["better"]]
        if moved:
            lines += [
                "| question | moved | right (base → tuned) | a base answer | a tuned answer |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {_md_escape(x['question'])} | {'worse' if x['worse'] else 'better'} | "
                f"{x['base_right']} → {x['tuned_right']} of {sr['samples']} | {_md_escape(x['base_example'])} | "
                f"{_md_escape(x['tuned_example'])} |"
                for x in moved
            ]
            lines.append("")
        lines += ["### Greedy rule, one answer per item", ""]
    lines += [
        f"Rule: {r['rule']}.",
        "",
        f"Right: base {r['base_right']}/{r['total']}, tuned {r['tuned_right']}/{r['total']}. "
        f"Worse: {r['worse']}. Better: {r['better']}. Changed: {r['changed']}."
        + (
            f" Sign test, worse against better: p = {r['sign_p']:.2f}"
            + (" (the flips lean towards worse)." if r["sign_p"] < 0.05 and r["worse"] > r["better"] else ".")
            if "sign_p" in r
            else ""
        ),
        "",
    ]
    worse = [x for x in r["rows"] if x["base_right"] and not x["tuned_right"]]
    if worse:
        lines += ["| question | base | tuned |", "|---|---|---|"]
        lines += [
            f"| {_md_escape(x['question'])} | {_md_escape(x['base'])} | {_md_escape(x['tuned'])} |" for x in worse
        ]
        lines.append("")
    return lines


def _samples_section(m: dict, names: list[str]) -> list[str]:
    """Sample answers, base next to tuned, marked right or wrong (reference answers of a dataset: unmarked)."""
    lines: list[str] = []
    lines += [
        "## Sample answers",
        "",
        "| task | held out | question | expected | base | tuned |",
        "|---|---|---|---|---|---|",
    ]
    mark = {True: "✓ ", False: "✗ ", None: ""}
    for s in m["samples"]:
        lines.append(
            f"| {s['task'] or s.get('reference', '–')} | {'yes' if s['held_out'] else 'no'} | {_md_escape(s['question'])} | "
            f"{_md_escape(s['expected'], 80)} | {mark[s['base_correct']]}{_md_escape(s['base'])} | "
            f"{mark[s['tuned_correct']]}{_md_escape(s['tuned'])} |"
        )
    return lines
