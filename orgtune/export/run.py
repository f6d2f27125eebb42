"""`orgtune export RUN_DIR`: merge → GGUF → quantize → verify → Ollama Modelfile, with a report of what was checked.

    orgtune export runs/first                              # merged/ + model-q4_k_m.gguf + Modelfile
    orgtune export runs/first --gguf f16,q8_0,q4_k_m       # several types, one quantization table
    orgtune export runs/first --keep-adapter               # adapter alone + base GGUF + ADAPTER Modelfile
    orgtune export runs/first --ollama halvo               # also `ollama create halvo` where Ollama exists

Everything lands in RUN_DIR/export/. Each artifact is written under a temporary name and renamed when
complete, so a failed step (missing converter or llama.cpp, full disk, unsupported architecture) leaves
nothing that looks finished. export.json holds every figure; export_report.md shows them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from orgtune import atomic
from orgtune.errors import OrgtuneError
from orgtune.export import gguf as G
from orgtune.export import ollama as O
from orgtune.generate import llama as L
from orgtune.generate.stops import stop_tokens
from orgtune.train.runfolder import read_complete_run

# Prompts every GGUF must answer briefly and then stop on its own (EOS / end-of-turn honoured).
EOS_PROMPTS = [
    "What is the capital of France?",
    "Say hello in one short sentence.",
    "What is 2 + 2?",
    "Name one primary colour.",
    "Answer yes or no: is water wet?",
]
EOS_BUDGET = 128
GREEDY_TOKENS = 48


def export(
    run_dir: Path,
    *,
    gguf_types: list[str] | None = None,
    keep_adapter: bool = False,
    ollama_name: str | None = None,
    system: str | None = None,
    verify: bool = True,
    max_probes: int | None = None,
    device: str = "cpu",
    num_ctx: int | None = None,
    log=print,
) -> dict:
    """Merge, convert, quantize, verify each GGUF against the merged model, write the Modelfile; returns the
    report (export.json). `orgtune export RUN_DIR --gguf q4_k_m` runs it."""
    run = read_complete_run(run_dir)
    types = gguf_types if gguf_types is not None else ["q4_k_m"]
    out = run.path / "export"
    out.mkdir(exist_ok=True)
    atomic.remove_partials(out)
    for f in out.glob(".partial-*"):
        f.unlink(missing_ok=True)
    # Fail before any expensive step when a tool is missing.
    if types:
        G.converter_path()
        if any(t not in G.CONVERTER_TYPES for t in types) or verify:
            L.llama_cpp()
    started = time.time()
    report: dict = {
        "run": str(run.path),
        "base_model": run.base_model,
        "mode": "adapter" if keep_adapter else "merged",
        "artifacts": {},
        "gguf": {},
    }
    from orgtune.evaluate.run import eval_rows

    probe_rows, val_rows = eval_rows(run, max_probes)

    from orgtune.models.loading import load_tokenizer, resolve_source

    tok = load_tokenizer(resolve_source(run.base_model))
    if keep_adapter:
        from orgtune.export.merge import copy_adapter

        adapter = copy_adapter(run, out / "adapter")
        report["artifacts"]["adapter"] = str(adapter)
        hf_folder = resolve_source(run.base_model).path
        log(f"adapter → {adapter}")
    else:
        from orgtune.export.merge import merge_run

        hf_folder = out / "merged"
        report["merge"] = merge_run(run, hf_folder, device=device, log=log)
        report["artifacts"]["merged"] = str(hf_folder)

    hf = None
    if verify and types and not keep_adapter:
        hf = _hf_reference(hf_folder, tok, probe_rows, val_rows, run, log)
        report["hf_merged"] = hf["summary"]

    stem = "base" if keep_adapter else "model"
    files = _convert_and_quantize(hf_folder, out, stem, types, report, log) if types else {}

    for t, path in files.items():
        info = G.inspect(path, expected_template=tok.chat_template)
        entry = {
            "file": str(path),
            "size_bytes": info.size_bytes,
            "vocab_size": info.vocab_size,
            "embedding_rows": info.embedding_rows,
            "special_ids": info.special_ids,
            "add_bos": info.add_bos,
            "chat_template_embedded": bool(info.chat_template),
            "problems": list(info.problems),
        }
        if verify:
            entry.update(_verify_gguf(path, tok, probe_rows, val_rows, run, hf, log))
        if entry["problems"]:
            bad = path.with_name(path.name + ".failed-verification")
            path.replace(bad)
            entry["file"] = str(bad)
            log(f"GGUF {t}: FAILED verification: {'; '.join(entry['problems'])}")
        report["gguf"][t] = entry

    report["ollama"] = _write_modelfile(
        run,
        out,
        tok,
        files,
        report,
        keep_adapter=keep_adapter,
        system=system,
        ollama_name=ollama_name,
        num_ctx=num_ctx,
        log=log,
    )
    report["seconds"] = round(time.time() - started, 1)
    atomic.write_json(out / "export.json", report)
    atomic.write_text(out / "export_report.md", report_markdown(report))
    failed = [t for t, e in report["gguf"].items() if e["problems"]]
    if failed:
        raise OrgtuneError(
            f"GGUF verification failed for {', '.join(failed)} (see {out / 'export_report.md'})",
            fix="the failing files were renamed *.failed-verification; do not ship them",
        )
    return report


def _convert_and_quantize(
    hf_folder: Path, out: Path, stem: str, types: list[str], report: dict, log
) -> dict[str, Path]:
    """HF folder → f16 GGUF → one file per quantization type; the f16 file is kept only when asked for."""
    files: dict[str, Path] = {}
    src_type = "f16"
    src = out / f"{stem}-{src_type}.gguf"
    t0 = time.time()
    G.convert(hf_folder, src, src_type, log=log)
    log(f"GGUF f16 ← {hf_folder.name} ({time.time() - t0:.0f} s)")
    for t in types:
        target = out / f"{stem}-{t}.gguf"
        if t == src_type:
            files[t] = src
            continue
        t0 = time.time()
        files[t] = G.quantize(src, target, t)
        notes = [x for x in L.take_log() if "falling back" in x]
        if notes:
            report.setdefault("quantize_notes", {})[t] = notes
        log(f"GGUF {t} ({files[t].stat().st_size / 2**20:.0f} MiB, {time.time() - t0:.1f} s)")
    if src_type not in types:
        src.unlink(missing_ok=True)
    return files


def _fixed_prompts(probe_rows: list[dict]) -> list[list[dict]]:
    trained = [p for p in probe_rows if not p.get("held_out")][:8]
    from orgtune.evaluate.answer import conversation_of

    return [conversation_of(p, "probe") for p in trained] + [[{"role": "user", "content": q}] for q in EOS_PROMPTS]


def _hf_reference(folder: Path, tok, probe_rows, val_rows, run, log) -> dict:
    """Greedy answers, probe accuracy and validation perplexity of the merged HF model: the yardstick."""
    from orgtune.evaluate.loss import assistant_loss
    from orgtune.evaluate.run import answer_probes, summarise
    from orgtune.evaluate.score import score_probe
    from orgtune.generate.hf import HFBackend
    from orgtune.generate.settings import GenerationSettings
    from orgtune.models.loading import load_model

    model, tok2, _ = load_model(str(folder), device="cpu", dtype="float32")
    backend = HFBackend(
        model, tok2, name="merged", settings=GenerationSettings(max_new_tokens=GREEDY_TOKENS, batch_size=16)
    )
    fixed = backend.answer(_fixed_prompts(probe_rows))
    summary: dict = {}
    earlier = _tuned_from_eval(run, len(probe_rows))
    if earlier is not None:
        # The merge check above proved merged == base + adapter; `orgtune eval` already scored that model.
        summary["probes"], summary["probes_from"] = earlier, "orgtune eval (base + adapter), metrics.json"
    elif probe_rows:
        log(f"merged (HF): answering {len(probe_rows)} probes")
        answers = answer_probes(backend, probe_rows, GenerationSettings(batch_size=16))
        summary["probes"] = summarise(probe_rows, [score_probe(p, a) for p, a in zip(probe_rows, answers, strict=True)])
    if val_rows:
        loss, ppl, n = assistant_loss(model, tok2, val_rows, max_len=run.config.model.max_seq_length)
        summary["val"] = {"loss": loss, "perplexity": ppl, "tokens": n}
    del model
    return {"fixed": fixed, "summary": summary}


def _tuned_from_eval(run, n_probes: int) -> dict | None:
    path = run.path / "metrics.json"
    if not path.is_file() or not n_probes:
        return None
    try:
        probes = json.loads(path.read_text())["backends"]["tuned"]["probes"]
    except (KeyError, ValueError):
        return None
    n = probes["trained"]["overall"]["n"] + probes["held_out"]["overall"]["n"]
    return probes if n == n_probes else None


def _verify_gguf(path: Path, tok, probe_rows, val_rows, run, hf, log) -> dict:
    from orgtune.evaluate.run import answer_probes, summarise
    from orgtune.evaluate.score import score_probe
    from orgtune.generate.settings import GenerationSettings
    from orgtune.models.template import render

    try:
        backend = L.LlamaCppBackend(path, tok, settings=GenerationSettings(max_new_tokens=GREEDY_TOKENS))
    except Exception as e:  # llama.cpp refuses the file: that is the finding
        return {"loads": False, "problems": [f"llama.cpp cannot load it: {e}"]}
    res: dict = {"loads": True, "problems": [], "warnings": []}
    prompts = [render(tok, c, add_generation_prompt=True) for c in _fixed_prompts(probe_rows)]
    same_tokens = backend.check_tokenizer(prompts)
    res["tokenizer_matches_hf"] = f"{same_tokens}/{len(prompts)}"
    if same_tokens != len(prompts):
        res["problems"].append(
            f"llama.cpp tokenizes {len(prompts) - same_tokens} of {len(prompts)} prompts "
            "differently from the HF tokenizer"
        )
    eos = []
    for q in EOS_PROMPTS:
        text, stopped = backend.generate(
            render(tok, [{"role": "user", "content": q}], add_generation_prompt=True),
            GenerationSettings(max_new_tokens=EOS_BUDGET),
        )
        eos.append({"prompt": q, "answer": text, "stopped": stopped})
    res["eos"] = eos
    res["eos_stopped"] = sum(e["stopped"] for e in eos)
    if res["eos_stopped"] != len(eos):  # a quality finding (small models lose it at 4 bit), not a broken file
        res["warnings"].append(
            f"{len(eos) - res['eos_stopped']} of {len(eos)} answers ran to {EOS_BUDGET} tokens "
            "without an end-of-turn token"
        )
    if hf is not None:
        greedy = [backend.generate(p, GenerationSettings(max_new_tokens=GREEDY_TOKENS))[0] for p in prompts]
        res["greedy_same_as_hf"] = sum(a == b for a, b in zip(greedy, hf["fixed"], strict=True))
        res["greedy_prompts"] = len(prompts)
    if probe_rows:
        log(f"{path.name}: answering {len(probe_rows)} probes in llama.cpp")
        answers = answer_probes(backend, probe_rows, GenerationSettings())
        res["probes"] = summarise(probe_rows, [score_probe(p, a) for p, a in zip(probe_rows, answers, strict=True)])
    if val_rows:
        loss, ppl, n = backend.assistant_loss(val_rows, max_len=run.config.model.max_seq_length)
        res["val"] = {"loss": loss, "perplexity": ppl, "tokens": n}
        ref = (hf or {}).get("summary", {}).get("val")
        if ref:
            res["val"]["perplexity_change"] = ppl / ref["perplexity"] - 1
    backend.close()
    return res


def _write_modelfile(
    run,
    out: Path,
    tok,
    files: dict[str, Path],
    report: dict,
    *,
    keep_adapter: bool,
    system: str | None,
    ollama_name: str | None,
    log,
    num_ctx: int | None = None,
) -> dict:
    from orgtune.models.template import render

    if not files:
        return {"written": False, "reason": "no GGUF requested"}
    # The smallest file that passed every check; one that failed to stop on its own only when nothing else passed.
    order = [t for t in ("q4_k_m", "q4_0", "q3_k_m", "q5_k_m", "q6_k", "q8_0", "f16") if t in files]
    usable = [t for t in order if not report["gguf"][t]["problems"]]
    if not usable:
        return {"written": False, "reason": "no GGUF passed verification"}
    clean = [t for t in usable if not report["gguf"][t].get("warnings")]
    pick = (clean or usable)[0]
    if pick != order[0]:
        log(f"Modelfile uses {pick}: {order[0]} did not pass every check (see the export report)")
    gg = files[pick]
    info = G.inspect(gg)

    def rend(m, g):
        return render(tok, m, add_generation_prompt=g)

    parts = O.template_parts(rend, tok.chat_template, bos_text=tok.bos_token or "", runtime_adds_bos=bool(info.add_bos))
    template = O.go_template(parts)
    check = O.verify_template(template, rend, strip_bos=parts.strip_bos) if O.go_available() else None
    if check is not None and check["mismatches"]:
        raise OrgtuneError(
            f"the Ollama TEMPLATE renders {len(check['mismatches'])} of {check['conversations']} "
            "conversations differently from the model's chat template",
            fix="report this with export.json; ship the GGUF without the Modelfile meanwhile",
        )
    max_pos = int(info.context_length or 4096)
    if num_ctx is None:
        num_ctx = min(max_pos, max(2048, run.config.model.max_seq_length))
    elif num_ctx > max_pos:
        log(f"num_ctx {num_ctx} is over the model's context length {max_pos}: answers past it will degrade")
    name = "Modelfile"
    text = O.modelfile(
        source=f"./{gg.name}",
        template=template,
        stops=stop_tokens(tok),
        num_ctx=num_ctx,
        system=system,
        adapter="./adapter" if keep_adapter else None,
        comment=f"Made by orgtune export from {run.path.name} (base {run.base_model}).\n"
        f"TEMPLATE verified against the model's chat template with Go text/template: "
        f"{'yes' if check else 'no (Go missing)'}.",
    )
    atomic.write_text(out / name, text)
    res = {
        "written": True,
        "file": str(out / name),
        "gguf": gg.name,
        "family": parts.family,
        "num_ctx": num_ctx,
        "stops": stop_tokens(tok),
        "template_check": check,
        "adapter": keep_adapter,
    }
    cmd = ["ollama", "create", ollama_name or run.path.name, "-f", str(out / name)]
    res["create_command"] = " ".join(cmd)
    if ollama_name:
        if shutil.which("ollama"):
            proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
            res["ollama_create"] = {"exit": proc.returncode, "output": (proc.stdout + proc.stderr)[-2000:]}
            if proc.returncode != 0:
                raise OrgtuneError(
                    f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()[-300:]}",
                    fix="is the Ollama server running (`ollama serve`)?",
                )
            log(f"ollama: created {ollama_name}")
        else:
            log(f"ollama CLI not found; on a machine with Ollama run:\n  cd {out} && {' '.join(cmd)}")
    log(
        f"Modelfile → {out / name} (FROM {gg.name}; TEMPLATE {parts.family}, "
        f"{'verified ' + str(check['identical']) + '/' + str(check['conversations']) if check else 'not verified: Go missing'})"
    )
    return res


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def report_markdown(r: dict) -> str:
    lines = [
        f"# Export of `{Path(r['run']).name}`",
        "",
        f"Base `{r['base_model']}`; mode {r['mode']}; {r.get('seconds')} s.",
        "",
    ]
    if "merge" in r:
        m = r["merge"]
        lines += [
            "## Merge",
            "",
            f"Merged in {m['dtype']}: max |Δlogit| vs base + adapter {m['max_abs_logit_diff']:.2e} "
            f"({m['relative_diff']:.1e} of the logit range; limit {m['tolerance']:.0e}) over {m['tokens_checked']} tokens.",
            "",
        ]
    hf = r.get("hf_merged", {})
    if r["gguf"]:
        lines += [
            "## Quantization table",
            "",
            "| file | size (MiB) | perplexity | vs HF | trained-fact probes | held-out confident wrong | "
            "greedy = HF | EOS stops | checks |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        if hf:
            p = hf.get("probes", {})
            lines.append(
                f"| merged HF (fp32) | – | {hf.get('val', {}).get('perplexity', float('nan')):.3f} | – | "
                f"{_pct(p.get('trained', {}).get('overall', {}).get('accuracy'))} | "
                f"{_pct(p.get('held_out', {}).get('overall', {}).get('confident_wrong_rate'))} | – | – | – |"
            )
        for e in r["gguf"].values():
            v, p = e.get("val", {}), e.get("probes", {})
            change = v.get("perplexity_change")
            lines.append(
                f"| {Path(e['file']).name} | {e['size_bytes'] / 2**20:.1f} | "
                f"{v['perplexity']:.3f} | {'–' if change is None else f'{100 * change:+.2f}%'} | "
                if v
                else f"| {Path(e['file']).name} | {e['size_bytes'] / 2**20:.1f} | – | – | "
            )
            lines[-1] += (
                f"{_pct(p.get('trained', {}).get('overall', {}).get('accuracy'))} | "
                f"{_pct(p.get('held_out', {}).get('overall', {}).get('confident_wrong_rate'))} | "
                f"{e.get('greedy_same_as_hf', '–')}/{e.get('greedy_prompts', '–')} | "
                f"{e.get('eos_stopped', '–')}/{len(e.get('eos', [])) or '–'} | "
                f"{'FAILED: ' + '; '.join(e['problems']) if e['problems'] else '; '.join(e.get('warnings', [])) or 'ok'} |"
            )
        if hf.get("probes_from"):
            lines += [
                "",
                f"Probe accuracy of the HF model: from {hf['probes_from']}; the merge check shows the "
                "merged model computes the same logits.",
            ]
        lines += [
            "",
            "Perplexity: assistant tokens of val.jsonl, computed from llama.cpp's logits (GGUF) and "
            "from transformers (merged). *greedy = HF*: identical greedy answers to the same fixed prompts. "
            "*EOS stops*: short prompts whose answer ended on an end-of-turn token within "
            f"{EOS_BUDGET} tokens.",
            "",
        ]
        for e in r["gguf"].values():
            lines += [
                f"### {Path(e['file']).name}",
                "",
                f"vocabulary {e['vocab_size']} = embedding rows {e['embedding_rows']}; special ids "
                f"{e['special_ids']}; add BOS {e['add_bos']}; chat template embedded "
                f"{e['chat_template_embedded']}; llama.cpp tokenizer = HF on {e.get('tokenizer_matches_hf', '–')} prompts.",
                "",
            ]
            for x in e.get("eos", []):
                lines.append(
                    f"- {x['prompt']} → {' '.join(x['answer'].split())[:120]!r} "
                    f"({'stopped' if x['stopped'] else 'NO STOP'})"
                )
            lines.append("")
    o = r.get("ollama", {})
    if o.get("written"):
        c = o.get("template_check")
        lines += [
            "## Ollama",
            "",
            f"`{Path(o['file']).name}`: FROM {o['gguf']}, {o['family']} TEMPLATE, stops "
            f"{', '.join(o['stops'])}, num_ctx {o['num_ctx']}.",
            f"TEMPLATE vs HF chat template (Go text/template vs Jinja): "
            f"{str(c['identical']) + '/' + str(c['conversations']) + ' conversations byte-identical' if c else 'not verified (Go missing)'}.",
            "",
            f"Create it: `{o['create_command']}`",
            "",
        ]
    return "\n".join(lines)
