// The project's nightly training: schedule, history with the gate's decisions, rollback.
import { api, h } from "/static/api.js";
import { problem, show, table } from "/static/page.js";

function history(n) {
  if (!n.history.length) return h("p", {}, "No nights yet.");
  const rows = n.history.slice().reverse().map((e) => [e.at || "–", e.event || "–", e.night || "–",
    e.event === "night" ? (e.promoted ? "promoted" : "kept the previous model") : (e.to ? `to ${e.to}` : "–"),
    (e.reasons || []).join("; ") || "–"]);
  return table("Nights and rollbacks, newest first", ["When", "Event", "Night", "Gate decision", "Reasons"], rows, "history");
}

function rollbackForm(n, status, reload) {
  const nights = [...new Set(n.history.filter((e) => e.event === "night" && e.promoted && e.night).map((e) => e.night))]
    .filter((x) => x !== n.promoted);
  const select = h("select", { id: "rollback-to", name: "to" }, h("option", { value: "" }, "the previously promoted night"),
    ...nights.map((x) => h("option", { value: x }, x)));
  const form = h("form", { id: "rollback" }, h("label", { for: "rollback-to" }, "Roll back to"), select,
    h("button", { type: "submit", disabled: !n.promoted }, "Roll back"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!confirm(`Roll the promoted model back from ${n.promoted}?`)) return;
    try {
      const r = await api("/v1/orgtune/nightly/rollback", { method: "POST", body: select.value ? { to: select.value } : {} });
      status.textContent = `Rolled back from ${r.rolled_back.from} to ${r.rolled_back.to}.`;
      await reload();
    } catch (err) { status.textContent = err.message; }
  });
  return form;
}

export async function nightlyPage() {
  const status = h("p", { role: "status", class: "note" });
  const load = async () => {
    const n = await api("/v1/orgtune/nightly");
    const s = n.schedule;
    show("Nightly", h("h1", {}, "Nightly training"),
      s ? h("dl", { class: "facts" }, h("dt", {}, "Schedule (UTC)"), h("dd", {}, h("code", {}, s.cron)),
        h("dt", {}, "Enabled"), h("dd", {}, s.enabled ? "yes" : "no"),
        h("dt", {}, "Promoted night"), h("dd", {}, n.promoted || "none yet"),
        h("dt", {}, "Model"), h("dd", {}, n.model || "–"))
        : h("p", {}, "This project has no nightly schedule (PUT /v1/orgtune/nightly sets one; see docs/nightly.md)."),
      h("section", { "aria-labelledby": "hist-h" }, h("h2", { id: "hist-h" }, "History"), history(n)),
      h("section", { "aria-labelledby": "rb-h" }, h("h2", { id: "rb-h" }, "Rollback"), rollbackForm(n, status, load), status));
  };
  try { await load(); } catch (err) { show("Nightly", h("h1", {}, "Nightly training"), problem(err)); }
}
