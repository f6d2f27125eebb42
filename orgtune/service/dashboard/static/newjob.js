// Upload documents or a dataset and start a job on it.
import { api, h } from "/static/api.js";
import { show } from "/static/page.js";

function field(label, input, hint) {
  const id = input.id;
  if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : "");
}

async function upload(file, note) {
  note(`Uploading ${file.name}…`);
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", file);
  return api("/v1/files", { method: "POST", form });
}

function jobBody(f, training, docs, validation) {
  const options = f.options.value.trim() ? JSON.parse(f.options.value) : {};
  const config = options.config || {};
  if (f.max_steps.value) config.training = { ...(config.training || {}), max_steps: Number(f.max_steps.value) };
  const body = { model: f.model.value.trim(), training_file: training.id,
    orgtune: { ...options, config, documents: docs.map((d) => d.id),
               eval: { ...(options.eval || {}), enabled: f.evaluate.checked } } };
  if (validation) body.validation_file = validation.id;
  if (f.suffix.value.trim()) body.suffix = f.suffix.value.trim();
  if (f.epochs.value) body.method = { type: "supervised", supervised: { hyperparameters: { n_epochs: Number(f.epochs.value) } } };
  return body;
}

export async function newJobPage() {
  const models = await api("/v1/models").catch(() => ({ data: [] }));
  const list = h("datalist", { id: "model-list" }, ...models.data.map((m) => h("option", { value: m.id })));
  const status = h("p", { role: "status", id: "new-status", class: "note" });
  const form = h("form", { id: "new-job" },
    h("fieldset", {}, h("legend", {}, "Data"),
      field("Training file: a JSONL dataset, a document, or an archive of documents",
            h("input", { id: "training", name: "training", type: "file", required: true })),
      field("More documents (optional)", h("input", { id: "documents", name: "documents", type: "file", multiple: true }),
            "Only with documents: they are built into training data together."),
      field("Validation file (optional, JSONL)", h("input", { id: "validation", name: "validation", type: "file" }))),
    h("fieldset", {}, h("legend", {}, "Training"),
      field("Model", h("input", { id: "model", name: "model", list: "model-list", required: true,
                                  value: models.data[0]?.id || "", autocomplete: "off" }), "A base model or one of your fine-tuned models."),
      list,
      field("Suffix (optional)", h("input", { id: "suffix", name: "suffix", maxlength: 64 })),
      field("Epochs (optional)", h("input", { id: "epochs", name: "epochs", type: "number", min: 1, step: "any" })),
      field("Max steps (optional)", h("input", { id: "max_steps", name: "max_steps", type: "number", min: 1 })),
      field("orgtune options (JSON, optional)", h("textarea", { id: "options", name: "options", rows: 4, spellcheck: "false",
            placeholder: '{"config": {"training": {"save_steps": 5}}, "export": {"gguf": ["q8_0"]}}' }),
            "config (run config overrides), build, eval and export, as in the API's orgtune object (docs/service.md)."),
      h("div", { class: "field check" }, h("input", { id: "evaluate", name: "evaluate", type: "checkbox", checked: true }),
        h("label", { for: "evaluate" }, "Evaluate base vs tuned after training"))),
    h("button", { type: "submit" }, "Upload and start the job"), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const note = (t) => { status.textContent = t; };
    try {
      if (form.options.value.trim()) JSON.parse(form.options.value);  // a typo is reported before any upload
      const training = await upload(form.training.files[0], note);
      const docs = [];
      for (const f of form.documents.files) docs.push(await upload(f, note));
      const validation = form.validation.files[0] ? await upload(form.validation.files[0], note) : null;
      note("Starting the job…");
      const job = await api("/v1/fine_tuning/jobs", { method: "POST", body: jobBody(form, training, docs, validation) });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      note(err instanceof SyntaxError ? `The options are not valid JSON: ${err.message}` : err.message);
    }
  });
  show("New job", h("h1", {}, "New job"), form);
}
