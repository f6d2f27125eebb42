// What every view shares: the main landmark, the current view's clean-ups, error and status markup.
import { h } from "/static/api.js";

const main = document.getElementById("main");
const cleanup = [];  // timers and streams of the current view, stopped when the route changes

export function onLeave(fn) { cleanup.push(fn); }

export function leave() { for (const fn of cleanup.splice(0)) fn(); }

export function show(title, ...children) {
  document.title = `${title} · orgtune`;
  main.replaceChildren(...children);
}

export function problem(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

export function statusBadge(status) {
  return h("span", { class: `status ${status}` }, status.replace("_", " "));
}

export function table(caption, columns, rows, cls = "") {
  return h("div", { class: "scroll" }, h("table", { class: cls },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c, i) => h("td", { "data-label": columns[i] }, c)))))));
}
