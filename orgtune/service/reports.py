"""What a job's folder holds, read back for the dashboard: the resolved config, the eval report (base vs
tuned per task, plots, sample answers with the source span each fact came from) and the exports (GGUF
sizes, perplexity change, Modelfile) — with the ids of the result files that download them.

Only fixed names under the job's own folder are read; nothing a request names is ever opened.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from orgtune.service.db import Database
from orgtune.service.files import file_object
from orgtune.service.models import File, Job

MAX_TEXT = 64 * 1024  # a Modelfile or a config, shown on the page: never a whole large file


def _inside(folder: Path, *parts: str) -> Path | None:
    """folder/parts when it is a file that really lies under folder (a link out of it does not count)."""
    p = folder.joinpath(*parts)
    try:
        return p if p.is_file() and p.resolve().is_relative_to(folder.resolve()) else None
    except OSError:
        return None


def _text(path: Path | None) -> str | None:
    if path is None:
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(MAX_TEXT)


def _json(path: Path | None):
    return json.loads(path.read_text(encoding="utf-8")) if path is not None else None


def result_files(db: Database, job: Job) -> list[dict]:
    with db.reading() as s:
        rows = s.scalars(
            select(File)
            .where(File.job_id == job.id, File.project_id == job.project_id, File.deleted.is_(False))
            .order_by(File.seq)
        )
        return [file_object(f) for f in rows]


def config_of(folder: Path, job: Job) -> dict:
    """The run's resolved config (run/config.yaml) once training started; before that, what the job asked."""
    import yaml

    text = _text(_inside(folder, "run", "config.yaml"))
    if text is not None:
        return {"source": "run/config.yaml", "text": text}
    return {
        "source": "job request (resolved at create)",
        "text": yaml.safe_dump(job.options.get("config") or {}, sort_keys=False),
    }


def _span_texts(folder: Path, samples: list[dict]) -> dict[str, str]:
    """{doc_id: text} of the documents the samples' facts come from (data/docs.jsonl of the job)."""
    want = {s["source"]["doc_id"] for s in samples if s.get("source")}
    path = _inside(folder, "data", "docs.jsonl")
    out: dict[str, str] = {}
    if not want or path is None:
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("doc_id") in want:
                out[d["doc_id"]] = d.get("text", "")
    return out


def _with_sources(folder: Path, samples: list[dict]) -> list[dict]:
    """Each sample answer with its probe's source: document, section and the span's own text."""
    answers = _inside(folder, "run", "eval", "answers.jsonl")
    by_question: dict[str, dict] = {}
    if answers is not None:
        wanted = {s["question"] for s in samples}
        with open(answers, encoding="utf-8") as f:
            for line in f:
                p = json.loads(line)
                if p.get("plain_question") in wanted and p.get("source"):
                    by_question.setdefault(p["plain_question"], p["source"])
    out = [{**s, "source": by_question.get(s["question"])} for s in samples]
    texts = _span_texts(folder, out)
    for s in out:
        src = s["source"]
        if src:
            a, z = src["span"]
            s["source"] = {
                "document": Path(src.get("path") or src["doc_id"]).name,
                "doc_id": src["doc_id"],
                "section": " › ".join(src.get("section_path") or []),
                "span": [a, z],
                "text": texts.get(src["doc_id"], "")[a:z][:600],
            }
    return out


def eval_report(folder: Path, files: dict[str, str]) -> dict | None:
    """metrics.json of the run, trimmed for the page: per backend the probes per scope and task, the
    validation loss, the general check's summary, the plots (as result file ids) and the samples."""
    m = _json(_inside(folder, "run", "metrics.json"))
    if m is None:
        return None
    backends = {
        name: {
            "probes": {
                scope: {"overall": b["probes"][scope]["overall"], "by_task": b["probes"][scope]["by_task"]}
                for scope in ("trained", "held_out")
                if scope in b["probes"]
            },
            "val": b.get("val"),
        }
        for name, b in m["backends"].items()
    }
    r = m.get("regression") or {}
    regression = {
        k: r.get(k) for k in ("rule", "total", "base_right", "tuned_right", "worse", "better", "sign_p", "changed")
    }
    sr = r.get("sampled")
    if sr:
        regression["sampled"] = {
            k: sr.get(k) for k in ("rule", "samples", "total", "worse", "better", "mean_base", "mean_tuned")
        }
    plots = [{"name": Path(p).name, "file_id": files.get(Path(p).name)} for p in m.get("plots", [])]
    return {
        "base_model": m.get("base_model"),
        "has_probes": bool(m.get("probes_file")),
        "seconds": m.get("seconds"),
        "backends": backends,
        "regression": regression,
        "preferences": m.get("preferences"),
        "plots": plots,
        "samples": _with_sources(folder, m.get("samples", [])),
    }


def export_report(folder: Path, files: dict[str, str]) -> dict | None:
    """export.json, trimmed: per GGUF type its size, perplexity and change against the merged HF model."""
    x = _json(_inside(folder, "run", "export", "export.json"))
    if x is None:
        return None
    gguf = []
    for t, e in (x.get("gguf") or {}).items():
        val = e.get("val") or {}
        name = Path(e.get("file", "")).name
        gguf.append(
            {
                "type": t,
                "file": name,
                "file_id": files.get(name),
                "size_bytes": e.get("size_bytes"),
                "perplexity": val.get("perplexity"),
                "perplexity_change": val.get("perplexity_change"),
                "problems": e.get("problems") or [],
            }
        )
    modelfile = _inside(folder, "run", "export", "Modelfile")
    return {
        "gguf": gguf,
        "modelfile": _text(modelfile),
        "modelfile_id": files.get("Modelfile"),
        "report_id": files.get("export_report.md"),
        "seconds": x.get("seconds"),
    }


def job_report(db: Database, folder: Path, job: Job) -> dict:
    """Everything the dashboard's job and report pages show beside the job object and its events."""
    res = result_files(db, job)
    by_name = {f["filename"]: f["id"] for f in res}
    return {
        "object": "orgtune.job_report",
        "job_id": job.id,
        "config": config_of(folder, job),
        "eval": eval_report(folder, by_name),
        "export": export_report(folder, by_name),
        "result_files": res,
        "report_md_id": by_name.get("report.md"),
    }
