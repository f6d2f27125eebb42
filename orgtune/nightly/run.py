"""`orgtune nightly`: continue the promoted model on what changed in the documents, and promote the result
only if the eval gate says it is no worse.

    orgtune nightly --docs wiki/ manuals/ --project nightly/     # one night (a date-named folder)
    orgtune nightly history --project nightly/
    orgtune nightly rollback --project nightly/                  # the pointer back to the night before

A night: scan the documents and hash them → the delta against what the promoted model knows (added,
changed, removed) → `data build` on the added and changed ones → the mix (their rows, a replayed sample
of unchanged documents' earlier rows, `--extra-data` rows) → `train` from the promoted adapter (general
self-distillation replay mixed in, as every SFT run) → the gate (gate.py) → promote (move the pointer),
then export and `ollama create` if asked. Everything lands in P/nights/<night>/, with full lineage: the
parent night and run, the documents' hashes, the resolved config. A night stopped halfway is resumed by
running the same command with the same --night.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError
from orgtune.nightly.delta import changed_facts, diff, scan
from orgtune.nightly.mix import assemble
from orgtune.nightly.project import Project


def _extra_rows(path: Path | None) -> list[dict]:
    if path is None:
        return []
    from orgtune.data.formats import SFT_FORMATS, load_rows

    return [
        {"messages": r.messages, "task": "EXTRA", "source": {"extra": str(path), "line": r.line}}
        for r in load_rows(path, allowed=SFT_FORMATS).rows
    ]


def _build(project: Project, night_dir: Path, paths: list[Path], log) -> Path:
    from orgtune.data.build import BuildSettings, build
    from orgtune.models.presets import find_preset

    data = night_dir / "data"
    if (data / "manifest.json").is_file():
        return data
    preset = find_preset(project.settings.model)
    fmt = (preset.defaults.get("model", {}).get("task_prefix_format") if preset else None) or "[{TASK}] {instruction}"
    build(
        paths,
        data,
        BuildSettings(examples_per_fact=project.settings.examples_per_fact, task_prefix_format=fmt),
        log=log,
    )
    return data


def base_general_path(project_dir: Path, items: int, samples: int) -> Path:
    """Where a project keeps the base model's general check (its first night's reference)."""
    return Path(project_dir) / f"base_general-{items}{f'-x{samples}' if samples else ''}.json"


def _general_reference(project: Project, promoted: str | None, model, tok, items: list[dict], samples: int) -> dict:
    """The promoted model's general check (recorded at its gate), or the base model's on the first night (or
    when the promoted one was checked on other items or sample counts)."""
    from orgtune.nightly.gate import general_check

    def fits(g: dict) -> bool:
        return g["items"] == len(items) and g.get("samples", 0) == samples

    if promoted is not None:
        g = json.loads((project.night(promoted) / "gate.json").read_text(encoding="utf-8"))["general"]
        if fits(g):
            return g
    f = base_general_path(project.path, len(items), samples)
    if f.is_file() and fits(g := json.loads(f.read_text(encoding="utf-8"))):
        return g
    # the same weights with the adapter off: the base
    ref = general_check(model, tok, items, use_adapter=False, samples=samples)
    atomic.write_json(f, ref)
    return ref


def nightly(
    docs: list[Path],
    project_dir: Path,
    *,
    night: str | None = None,
    extra_data: Path | None = None,
    settings: dict | None = None,
    export: list[str] | None = None,
    ollama: str | None = None,
    log=print,
) -> dict:
    """Run one night; returns its gate record (decision, reasons, figures). One night at a time per project:
    a second one fails at once, naming the first one's pid. `orgtune nightly --docs DIR --project P` runs it."""
    from orgtune.train import lock

    with lock.hold(Path(project_dir), "orgtune nightly"):
        return _night(
            docs,
            project_dir,
            night=night,
            extra_data=extra_data,
            settings=settings,
            export=export,
            ollama=ollama,
            log=log,
        )


def _night(
    docs: list[Path],
    project_dir: Path,
    *,
    night: str | None,
    extra_data: Path | None,
    settings: dict | None,
    export: list[str] | None,
    ollama: str | None,
    log,
) -> dict:
    from orgtune.nightly.gate import decide, general_check, general_items, load_candidate, score_candidate
    from orgtune.train.sft import train

    project = Project.open(project_dir, settings)
    s = project.settings
    extra = _extra_rows(extra_data)  # file:line errors before anything else
    current = scan(docs)
    promoted = project.promoted()
    prev = project.state(promoted)
    delta = diff(current, prev)
    if delta.empty() and not extra:
        log(f"nothing changed since the promoted night {promoted}: no training")
        project.record({"event": "night", "night": None, "promoted": False, "reasons": ["nothing changed"]})
        return {"promote": False, "reasons": ["nothing changed"], "night": None}

    night_id = project.new_night_id(night)
    nd = project.night(night_id)
    nd.mkdir(parents=True, exist_ok=True)
    log(
        f"night {night_id}: {len(delta.added)} added, {len(delta.changed)} changed, {len(delta.removed)} removed, "
        f"{len(delta.unchanged)} unchanged document(s) since {promoted or 'the start'}"
    )
    fresh = delta.added + delta.changed
    data = _build(project, nd, [current[k].path for k in fresh], log) if fresh else None
    changed = _write_delta(project, nd, delta, prev, current, data, promoted, extra_data, log)
    mix = assemble(project.nights_dir, nd, delta, prev, current, data, extra, replay=s.replay, seed=0)
    log("mix: " + ", ".join(f"{k} {v}" for k, v in mix["counts"].items()))

    parent_run = Path(project.state_record(promoted)["run"]) if promoted else None
    if mix["counts"]["new_rows"] + mix["counts"]["extra_rows"] == 0:
        log("only removals: no training; the promoted model stands for the new set of documents")
        run_dir = parent_run
    else:
        run_dir = train(
            mix["dir"],
            nd / "run",
            overrides=s.config_overrides(first=promoted is None),
            init_adapter=parent_run,
            log=log,
        ).path
    model, tok = load_candidate(run_dir)
    log(f"gate: answering {len(mix['probes'])} probes and the general check")
    candidate = score_candidate(model, tok, mix["probes"])
    items = general_items(s.general_items)
    general = general_check(model, tok, items, use_adapter=True, samples=s.general_samples)
    reference = json.loads((project.night(promoted) / "gate.json").read_text())["probes"] if promoted else None
    decision = decide(
        probes=mix["probes"],
        candidate=candidate,
        reference=reference,
        general=general,
        general_ref=_general_reference(project, promoted, model, tok, items, s.general_samples),
        changed=changed,
        settings=s,
    )
    state = {k: ({"sha256": current[k].sha256, "data_night": night_id} if k in fresh else prev[k]) for k in current}
    atomic.write_json(nd / "state.json", {"docs": state, "run": str(run_dir), "parent_night": promoted})
    record = {
        "night": night_id,
        "run": str(run_dir),
        "parent_night": promoted,
        **decision,
        "probes": {k: {"correct": v["correct"], "abstained": v["abstained"]} for k, v in candidate.items()},
        "general": general,
        "settings": asdict(s),
        "mix": mix["counts"],
    }
    atomic.write_json(nd / "gate.json", record)  # the night's completion marker
    if decision["promote"]:
        project.promote(night_id)
        log(f"promoted {night_id}")
    else:
        log(f"not promoted: {'; '.join(decision['reasons'])}; {promoted or 'nothing'} stays promoted")
    project.record(
        {
            "event": "night",
            "night": night_id,
            "promoted": decision["promote"],
            "reasons": decision["reasons"],
            "figures": decision["figures"],
        }
    )
    if decision["promote"] and (export or ollama):
        from orgtune.export.run import export as export_run

        export_run(Path(run_dir), gguf_types=export or ["q4_k_m"], ollama_name=ollama, log=log)
    return record


def _write_delta(project, nd: Path, delta, prev: dict, current: dict, data, promoted, extra_data, log) -> list[dict]:
    """The night's delta.json: documents added/changed/removed and the facts whose value changed."""
    changed = []
    for k in delta.changed:
        old_data = project.nights_dir / prev[k]["data_night"] / "data"
        for c in changed_facts(old_data, prev[k]["sha256"], data, current[k].sha256):
            changed.append({**c, "doc": k})
            log(f"changed in {k}: {c['subject']} {c['attribute']}: {c['old']!r} → {c['new']!r}")
    atomic.write_json(
        nd / "delta.json",
        {
            **asdict(delta),
            "changed_facts": changed,
            "parent_night": promoted,
            "docs": {k: d.sha256 for k, d in current.items()},
            "extra_data": str(extra_data) if extra_data else None,
        },
    )
    return changed


def _acc(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def history_table(project_dir: Path) -> str:
    """Every night and rollback, with its figures and decision; the promoted night marked."""
    project = Project.open(project_dir, create=False)
    promoted = project.promoted()
    # general: greedy right answers, reference → night; worse: items worse by the gate's rule (sampled, or greedy)
    lines = [f"{'night':<16} {'new':>7} {'old':>15} {'general':>11} {'worse':>6} {'held-out wrong':>14}  decision"]
    for h in project.history():
        if h["event"] == "rollback":
            lines.append(f"{'':<16} rollback: {h['from']} → {h['to']}")
            continue
        if h["night"] is None:
            lines.append(f"{'-':<16} {'':>7} {'':>15} {'':>11} {'':>6} {'':>14}  nothing changed")
            continue
        f = h["figures"]
        old = f"{_acc(f['old']['promoted'])}→{_acc(f['old']['accuracy'])}" if f["old"]["n"] else "-"
        g = f["general"]
        mark = " *" if h["night"] == promoted else ""
        what = "promoted" if h["promoted"] else "rejected: " + "; ".join(h["reasons"])
        lines.append(
            f"{h['night'] + mark:<16} {_acc(f['new']['accuracy']):>7} {old:>15} "
            f"{g['reference']}→{g['right']}/{g['items']:>3} {g.get('sampled', g)['worse']:>6} "
            f"{f['held_out']['confident_wrong']:>7}/{f['held_out']['n']:<6}"
            f"  {what}"
        )
    lines.append(f"promoted: {promoted or 'none'} (*)")
    return "\n".join(lines)


def rollback(project_dir: Path, to: str | None = None) -> tuple[str, str]:
    project = Project.open(project_dir, create=False)
    if to is not None and not (project.night(to) / "gate.json").is_file():
        raise OrgtuneError(f"no finished night {to!r} in {project_dir}", fix="`orgtune nightly history` lists them")
    return project.rollback(to)
