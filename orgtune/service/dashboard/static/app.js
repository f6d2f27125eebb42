// The dashboard: a hash router over four views (jobs, a job, its report, new job, nightly).
import { api, duration, h, jobDuration, key, logout, when } from "/static/api.js";
import { jobPage, reportPage } from "/static/job.js";
import { leave, onLeave, problem, show, statusBadge } from "/static/page.js";
import { newJobPage } from "/static/newjob.js";
import { nightlyPage } from "/static/nightly.js";

if (!key()) location.replace("/login");

function jobRow(j) {
  const o = j.orgtune || {};
  const step = o.total_steps ? `${o.step}/${o.total_steps}` : "–";
  const cell = (label, ...c) => h("td", { "data-label": label }, ...c);
  return h("tr", { "data-job": j.id },
    h("th", { scope: "row", "data-label": "Job" }, h("a", { href: `#/jobs/${j.id}` }, j.id)),
    cell("Status", statusBadge(j.status)), cell("Queue", o.queue_position ?? "–"),
    cell("Base model", h("span", { class: "model" }, (o.base_model || j.model).split("/").pop())),
    cell("Step", step), cell("Duration", duration(jobDuration(j))), cell("Created", when(j.created_at)));
}

async function jobsPage() {
  const table = h("table", { class: "jobs" },
    h("caption", {}, "Fine-tuning jobs of this project, newest first"),
    h("thead", {}, h("tr", {}, ...["Job", "Status", "Queue", "Base model", "Step", "Duration", "Created"]
      .map((c) => h("th", { scope: "col" }, c)))));
  const body = h("tbody");
  table.append(body);
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let last = null;
  async function load(append) {
    const page = await api(`/v1/fine_tuning/jobs?limit=50${append && last ? `&after=${last}` : ""}`);
    const rows = page.data.map(jobRow);
    if (append) body.append(...rows); else body.replaceChildren(...rows);
    if (page.data.length) last = page.data.at(-1).id;
    more.hidden = !page.has_more;
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 7 }, "No jobs yet: start one under New job.")));
  }
  more.addEventListener("click", () => load(true));
  show("Jobs", h("h1", {}, "Jobs"), h("p", {}, h("a", { href: "#/new", class: "button" }, "New job")),
       h("div", { class: "scroll" }, table), more);
  await load(false);
  const timer = setInterval(() => { if (!last || body.children.length <= 50) load(false).catch(() => {}); }, 5000);
  onLeave(() => clearInterval(timer));
}

async function route() {
  leave();
  const parts = (location.hash.replace(/^#\/?/, "") || "jobs").split("/");
  try {
    if (parts[0] === "jobs" && parts[1] && parts[2] === "report") await reportPage(parts[1]);
    else if (parts[0] === "jobs" && parts[1]) await jobPage(parts[1]);
    else if (parts[0] === "new") await newJobPage();
    else if (parts[0] === "nightly") await nightlyPage();
    else await jobsPage();
  } catch (err) {
    show("Error", h("h1", {}, err.status === 404 ? "Not found" : "Something went wrong"), problem(err),
         h("p", {}, h("a", { href: "#/jobs" }, "Back to the jobs")));
  }
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#/${parts[0]}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
if (key()) route();
