// The login page: check the key against the API, keep it for this tab, go to the dashboard.
import { KEY } from "/static/api.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.textContent = "";
  const key = form.key.value.trim();
  const r = await fetch("/v1/fine_tuning/jobs?limit=1", { headers: { Authorization: `Bearer ${key}` } });
  if (r.ok) {
    sessionStorage.setItem(KEY, key);
    location.assign("/");
    return;
  }
  const body = await r.json().catch(() => ({}));
  error.textContent = body?.error?.message || `The service answered ${r.status}.`;
});
