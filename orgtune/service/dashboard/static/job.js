// A job's page (live loss curve and events over SSE, config, checkpoints, cancel/resume) and its report.
import { api, bytes, download, duration, h, jobDuration, pct, when } from "/static/api.js";
import { legend, lossChart } from "/static/chart.js";
import { onLeave, problem, show, statusBadge, table } from "/static/page.js";

const FINAL = ["succeeded", "failed", "cancelled"];
const enc = encodeURIComponent;

// What the page has seen of a job's events, kept for this tab: a reload replays only what came after
// `last` (Last-Event-ID) and redraws the curve from these points plus the replay.
function cached(id) {
  const raw = sessionStorage.getItem(`orgtune.events.${id}`);
  const c = raw ? JSON.parse(raw) : { last: 0, points: [], log: [] };
  return { last: c.last, points: new Map(c.points), log: c.log };
}

function store(id, c) {
  try {
    sessionStorage.setItem(`orgtune.events.${id}`,
      JSON.stringify({ last: c.last, points: [...c.points.entries()], log: c.log.slice(-200) }));
  } catch {  // over the tab's quota: a reload then replays the whole history instead
    sessionStorage.removeItem(`orgtune.events.${id}`);
  }
}

function summary(job) {
  const o = job.orgtune || {};
  const rows = [["Status", statusBadge(job.status)], ["Stage", o.stage || "–"],
    ["Step", o.total_steps ? `${o.step} of ${o.total_steps}` : "–"], ["Queue position", o.queue_position ?? "–"],
    ["Model", job.model], ["Base model", o.base_model], ["Fine-tuned model", job.fine_tuned_model || "–"],
    ["Duration", duration(jobDuration(job))], ["Created", when(job.created_at)],
    ["Attempts", `${o.attempts} of ${o.max_attempts}`]];
  if (job.error) rows.push(["Error", h("span", { class: "error" }, job.error.message)]);
  return h("dl", { class: "facts", id: "job-summary", "data-status": job.status },
    ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function controls(job, act) {
  const live = ["validating_files", "queued", "running"].includes(job.status);
  const resumable = ["cancelled", "failed"].includes(job.status) && !(job.error?.code || "").startsWith("invalid_");
  return h("div", { class: "actions" },
    h("button", { type: "button", id: "cancel", disabled: !live, onclick: () => act("cancel") }, "Cancel"),
    h("button", { type: "button", id: "resume", disabled: !resumable, onclick: () => act("resume") }, "Resume"),
    h("a", { class: "button quiet", href: `#/jobs/${job.id}/report` }, "Eval report and exports"));
}

function eventItem(e) {
  return h("li", { class: e.level }, h("time", {}, when(e.created_at).slice(11)), " ", e.message);
}

function checkpointsTable(ckpts) {
  if (!ckpts.data.length) return h("p", {}, "No checkpoints yet.");
  return table("Checkpoints kept (newest first)", ["Step", "Training loss", "Checkpoint"],
    ckpts.data.map((c) => [String(c.step_number), c.metrics?.train_loss?.toFixed?.(4) ?? "–",
                           h("code", {}, c.fine_tuned_model_checkpoint)]));
}

// Follow the job's events: a token for this job, then EventSource from the last seq seen.
function follow(id, c, onEvent, onEnd) {
  let es = null, stopped = false, timer = null;
  async function connect() {
    if (stopped) return;
    try {
      const t = await api(`/v1/fine_tuning/jobs/${enc(id)}/events/stream_token`, { method: "POST" });
      es = new EventSource(`/v1/fine_tuning/jobs/${enc(id)}/events/stream?token=${enc(t.token)}&last_event_id=${c.last}`);
    } catch (err) { timer = setTimeout(connect, 3000); return; }
    es.onmessage = (m) => { onEvent(JSON.parse(m.data)); };
    es.addEventListener("end", () => { es.close(); es = null; onEnd(); });
    es.onerror = () => { if (es) es.close(); es = null; if (!stopped) timer = setTimeout(connect, 2000); };
  }
  connect();
  return {
    restart() { if (!es) { clearTimeout(timer); connect(); } },
    stop() { stopped = true; clearTimeout(timer); if (es) es.close(); },
  };
}

export async function jobPage(id) {
  let job = await api(`/v1/fine_tuning/jobs/${enc(id)}`);
  const c = cached(id);
  const head = h("div"), chartBox = h("div", { class: "chart" }), log = h("ol", { class: "events", id: "events" });
  const ckBox = h("div"), cfgBox = h("div"), status = h("p", { role: "status", class: "note" });
  const drawChart = () => chartBox.replaceChildren(lossChart(c.points, job.orgtune?.total_steps, chartBox.clientWidth || 640));
  const refresh = async () => {
    job = await api(`/v1/fine_tuning/jobs/${enc(id)}`);
    head.replaceChildren(summary(job), controls(job, act));
    ckBox.replaceChildren(checkpointsTable(await api(`/v1/fine_tuning/jobs/${enc(id)}/checkpoints?limit=20`)));
    drawChart();
  };
  async function act(what) {
    status.textContent = what === "cancel" ? "Cancelling: the run stops after its current step…" : "Resuming…";
    try {
      await api(`/v1/fine_tuning/jobs/${enc(id)}/${what}`, { method: "POST" });
      status.textContent = what === "cancel" ? "Cancelled." : "Resumed: back in the queue.";
      if (what === "resume") stream.restart();
    } catch (err) { status.textContent = err.message; }
    await refresh();
  }
  let pending = null, drawn = null;
  const stream = follow(id, c, (e) => {
    c.last = e.seq;
    if (e.type === "metrics" && e.data && typeof e.data.step === "number") {
      const p = c.points.get(e.data.step) || {};
      for (const k of ["train_loss", "valid_loss"]) if (typeof e.data[k] === "number") p[k] = e.data[k];
      c.points.set(e.data.step, p);
    }
    c.log.push({ created_at: e.created_at, level: e.level, message: e.message });
    if (c.log.length > 400) c.log.splice(0, c.log.length - 200);
    log.prepend(eventItem(e));
    while (log.children.length > 200) log.lastChild.remove();
    // A replay brings thousands of events at once: draw, save and refetch at most every so often.
    if (!drawn) drawn = setTimeout(() => { drawn = null; store(id, c); drawChart(); }, 100);
    if (!pending) pending = setTimeout(() => { pending = null; refresh().catch(() => {}); }, 1000);
  }, () => refresh().catch(() => {}));
  onLeave(() => { stream.stop(); clearTimeout(pending); clearTimeout(drawn); });
  log.replaceChildren(...c.log.slice().reverse().map(eventItem));
  const cfg = await api(`/v1/orgtune/jobs/${enc(id)}/report`);
  cfgBox.append(h("p", {}, `From ${cfg.config.source}:`), h("pre", { tabindex: 0 }, cfg.config.text));
  show(`Job ${id}`, h("h1", {}, "Job ", h("code", {}, id)), head, status,
    h("section", { "aria-labelledby": "loss-h" }, h("h2", { id: "loss-h" }, "Loss"), chartBox, legend()),
    h("section", { "aria-labelledby": "events-h" }, h("h2", { id: "events-h" }, "Events (newest first)"), log),
    h("section", { "aria-labelledby": "ck-h" }, h("h2", { id: "ck-h" }, "Checkpoints"), ckBox),
    h("section", { "aria-labelledby": "cfg-h" }, h("h2", { id: "cfg-h" }, "Resolved config"), cfgBox));
  await refresh();
}

function fileButton(id, name, label) {
  if (!id) return "–";
  return h("button", { type: "button", class: "quiet", onclick: () => download(id, name) }, label || `Download ${name}`);
}

function probeTables(ev) {
  if (!ev.has_probes) return [h("p", {}, "No closed-book probes: the job trained on a JSONL dataset, not on documents. "
    + "Below, base and tuned answer the data's own questions next to its reference answers.")];
  const names = Object.keys(ev.backends);
  return ["trained", "held_out"].filter((s) => ev.backends[names[0]].probes[s]).map((scope) => {
    const first = ev.backends[names[0]].probes[scope];
    const tasks = ["overall", ...Object.keys(first.by_task)];
    const cell = (n, t) => { const p = ev.backends[n].probes[scope]; return t === "overall" ? p.overall : p.by_task[t] || {}; };
    return table(`Closed-book probes, ${scope === "trained" ? "trained facts" : "held-out facts"}: accuracy per task`,
      ["Task", "Probes", ...names], tasks.map((t) => [t, String(cell(names[0], t).n ?? 0),
        ...names.map((n) => pct(cell(n, t).accuracy))]), "numbers");
  });
}

const clip = (t, n = 280) => (t && t.length > n ? `${t.slice(0, n)}…` : t);

const marked = (ok, text) => (ok === null || ok === undefined ? clip(text) : `${ok ? "✓ right" : "✗ wrong"}: ${clip(text)}`);

function sampleRows(ev) {
  return ev.samples.map((s) => [s.task || "–", s.held_out ? "yes" : "no", s.question, clip(s.expected),
    marked(s.base_correct, s.base), marked(s.tuned_correct, s.tuned),
    s.source ? h("span", {}, h("strong", {}, s.source.document), s.source.section ? ` › ${s.source.section}` : "",
      ` (characters ${s.source.span[0]}–${s.source.span[1]})`, s.source.text ? h("q", {}, s.source.text) : "")
      : s.reference ? h("code", {}, s.reference) : "–"]);
}

async function plotImage(p) {
  const fig = h("figure", {}, h("figcaption", {}, p.name));
  if (p.file_id) {
    const blob = await api(`/v1/files/${enc(p.file_id)}/content`, { raw: true });
    fig.prepend(h("img", { src: URL.createObjectURL(blob), alt: `Plot ${p.name} of the evaluation` }));
  }
  return fig;
}

async function evalSection(ev) {
  if (!ev) return [h("p", {}, "No evaluation for this job (eval was turned off, or it has not finished).")];
  const val = Object.entries(ev.backends).filter(([, b]) => b.val);
  const r = ev.regression;
  return [...probeTables(ev),
    val.length ? table("Validation loss on assistant tokens", ["Backend", "Loss", "Perplexity", "Tokens"],
      val.map(([n, b]) => [n, b.val.loss.toFixed(4), b.val.perplexity.toFixed(2), String(b.val.tokens)]), "numbers") : "",
    r.sampled ? h("p", {}, `General instructions, ${r.sampled.samples} sampled answers each: worse ${r.sampled.worse}, better ${r.sampled.better} of ${r.sampled.total}; right ${(100 * r.sampled.mean_base).toFixed(1)}% (base) → ${(100 * r.sampled.mean_tuned).toFixed(1)}% (tuned).`) : "",
    r.total ? h("p", {}, `General instructions${r.sampled ? ", greedy" : ""}: base right ${r.base_right}/${r.total}, tuned right ${r.tuned_right}/${r.total}; worse ${r.worse}, better ${r.better}.`) : "",
    h("div", { class: "plots" }, ...(await Promise.all(ev.plots.map(plotImage)))),
    ev.has_probes
      ? table("Sample answers, with the source span of each fact", ["Task", "Held out", "Question", "Expected", "Base", "Tuned", "Source"],
        sampleRows(ev), "samples")
      : table("Sample answers to the dataset's own questions", ["Task", "Held out", "Question", "Reference answer", "Base", "Tuned", "Line"],
        sampleRows(ev), "samples")];
}

function exportSection(x) {
  if (!x) return [h("p", {}, "No exports for this job (ask for GGUF types with orgtune.export.gguf).")];
  const rows = x.gguf.map((g) => [g.type, bytes(g.size_bytes), g.perplexity?.toFixed(3) ?? "–",
    g.perplexity_change === null || g.perplexity_change === undefined ? "–" : `${(100 * g.perplexity_change).toFixed(2)}%`,
    g.problems.length ? g.problems.join("; ") : "ok", fileButton(g.file_id, g.file, `Download ${g.file}`)]);
  return [table("GGUF files", ["Type", "Size", "Perplexity", "Change vs HF", "Checks", "Download"], rows, "numbers"),
    x.modelfile ? h("div", {}, h("h3", {}, "Modelfile"), h("pre", { tabindex: 0 }, x.modelfile),
      fileButton(x.modelfile_id, "Modelfile")) : ""];
}

export async function reportPage(id) {
  const [job, rep] = await Promise.all([api(`/v1/fine_tuning/jobs/${enc(id)}`), api(`/v1/orgtune/jobs/${enc(id)}/report`)]);
  const files = rep.result_files.map((f) => [f.filename, bytes(f.bytes), fileButton(f.id, f.filename, "Download")]);
  show(`Report ${id}`, h("h1", {}, "Report of ", h("code", {}, id)),
    h("p", {}, statusBadge(job.status), " ", h("a", { href: `#/jobs/${id}` }, "Back to the job")),
    h("section", { "aria-labelledby": "ev-h", id: "eval" }, h("h2", { id: "ev-h" }, "Evaluation: base vs tuned"),
      ...(await evalSection(rep.eval))),
    h("section", { "aria-labelledby": "ex-h", id: "exports" }, h("h2", { id: "ex-h" }, "Exports"), ...exportSection(rep.export)),
    h("section", { "aria-labelledby": "rf-h" }, h("h2", { id: "rf-h" }, "Result files"),
      files.length ? table("Files this job wrote", ["File", "Size", "Download"], files) : h("p", {}, "None yet.")));
  if (FINAL.includes(job.status)) return;
  const timer = setTimeout(() => reportPage(id).catch(() => {}), 5000);
  onLeave(() => clearTimeout(timer));
}
