// The JSON API with the key of this tab, and a small DOM builder that never parses HTML.
export const KEY = "orgtune.key";

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export function key() { return sessionStorage.getItem(KEY); }

export function logout() {
  sessionStorage.removeItem(KEY);
  location.assign("/login");
}

export async function api(path, { method = "GET", body, form, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${key()}` };
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const r = await fetch(path, { method, headers, body: payload });
  if (r.status === 401) { logout(); throw new ApiError(401, "the key is no longer valid"); }
  if (!r.ok) {
    const err = await r.json().catch(() => ({}));
    throw new ApiError(r.status, err?.error?.message || `${method} ${path}: ${r.status}`);
  }
  return raw ? r.blob() : r.json();
}

// Save a file the API serves (Authorization header, so not a plain link).
export async function download(fileId, filename) {
  const blob = await api(`/v1/files/${encodeURIComponent(fileId)}/content`, { raw: true });
  const a = h("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// h("p", {class: "x"}, "text", child): an element; strings become text nodes.
export function h(tag, attrs = {}, ...children) {
  const ns = attrs.svg ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function jobDuration(job) {
  const start = job.orgtune?.started_at;
  if (!start) return null;
  return (job.finished_at || Date.now() / 1000) - start;
}

export function when(ts) {
  return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : "–";
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function pct(x) { return x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`; }
