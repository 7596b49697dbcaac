// Import panel (reviewers): pick files or a folder, or drop them; upload with progress
// to POST /projects/{id}/imports; show the import report; list the import history.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { checkbox, field, select } from "../components/form.js";
import { formatBytes, formatDate, plural } from "../components/format.js";
import { showError, toast } from "../components/toast.js";
import { collectDroppedFiles, filesFormData, uploadWithProgress } from "../components/upload.js";
import { importReport, problemList } from "./import-report.js";

const MODALITY_CHOICES = [
  { value: "", label: "Automatic" },
  ...["CT", "MR", "CR", "DX", "US", "ES", "OP", "XC", "SM", "OT"].map((m) => ({ value: m, label: m })),
];

const STATUS_TEXT = { done: "done", preparing: "building images…", failed: "building failed" };

// A background import: poll its prepare_import job, then show the final report.
async function followBuild(record, { result, onDone }) {
  const note = el("span", {}, `Stored ${plural(record.counts.instances || 0, "DICOM instance")}, de-identified; building the images…`);
  result.replaceChildren(el("div", { class: "alert alert-info", testid: "import-building" }, spinner(""), note), importReport(record));
  let job = null;
  for (;;) {
    try {
      job = await api.get(`/jobs/${record.job_id}`);
    } catch (err) {
      result.replaceChildren(errorBox(err));
      return;
    }
    if (["succeeded", "failed", "cancelled"].includes(job.state)) break;
    if (job.progress && job.progress.total) note.textContent = `Building the images: ${job.progress.done} of ${plural(job.progress.total, "instance")}…`;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const final = await api.get(`/imports/${record.id}`);
  const ok = job.state === "succeeded";
  result.replaceChildren(
    el("div", { class: `alert ${ok ? "alert-success" : "alert-error"}`, testid: "import-built" }, el("span", {}, ok ? `Import finished: ${plural(final.counts.images || 0, "image")}.` : `Building the images failed (job #${job.id}: ${job.error || job.state}); the stored instances are kept — retry the job from the Jobs tab.`)),
    importReport(final),
  );
  onDone();
}

function historyTable(records, users, onShow) {
  const name = (uid) => (uid === null ? "command line" : users.get(uid) || `user #${uid}`);
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "table" },
      el(
        "thead",
        {},
        el("tr", {}, ["When", "By", "Files", "Images", "Duplicates", "Rejected", "Status", ""].map((h, i) => el("th", { class: i >= 2 && i <= 5 ? "num" : null }, h))),
      ),
      el(
        "tbody",
        {},
        records.map((r) =>
          el(
            "tr",
            { testid: "import-history-row" },
            el("td", {}, formatDate(r.created_at)),
            el("td", {}, name(r.user_id)),
            ["files", "images", "duplicates", "rejected"].map((k) => el("td", { class: "num" }, String(r.counts[k] || 0))),
            el("td", { testid: "import-status" }, STATUS_TEXT[r.status] || r.status),
            el("td", {}, el("button", { type: "button", class: "btn btn-small", onclick: () => onShow(r) }, "Report")),
          ),
        ),
      ),
    ),
  );
}

export function mountImport(container, env) {
  const { project, bus } = env;
  let chosen = []; // [{file, path}]
  let upload = null;

  const filesInput = el("input", { type: "file", multiple: true, class: "sr-only", testid: "import-files", "aria-label": "Choose files" });
  const folderInput = el("input", { type: "file", multiple: true, webkitdirectory: true, class: "sr-only", testid: "import-folder", "aria-label": "Choose a folder" });
  const chosenInfo = el("div", { class: "small", testid: "import-chosen" });
  const modality = select(MODALITY_CHOICES, { "aria-label": "Modality for NIfTI and photographs" });
  const skip = checkbox("Skip unreadable files (default: any unreadable file rejects the whole upload)", { name: "on_error" });
  const background = checkbox("Build DICOM images in the background (the upload returns once files are checked, de-identified and stored; files whose pixels then fail to decode are dropped and reported)", { name: "background", testid: "import-background" });
  const submit = el("button", { type: "button", class: "btn btn-primary", testid: "import-submit", disabled: true }, "Upload and import");
  const cancel = el("button", { type: "button", class: "btn", hidden: true }, "Cancel upload");
  const meter = el("progress", { class: "meter", max: 1, value: 0, hidden: true, testid: "import-progress" });
  const meterText = el("div", { class: "small muted", "aria-live": "polite" });
  const result = el("div", { class: "stack", testid: "import-result" });
  const history = el("div", {}, spinner("Loading import history…"));

  function setChosen(entries) {
    chosen = entries.filter((e) => !e.path.split("/").some((part) => part.startsWith(".")));
    const bytes = chosen.reduce((n, e) => n + e.file.size, 0);
    submit.disabled = !chosen.length;
    chosenInfo.replaceChildren(
      chosen.length
        ? el(
            "div",
            { class: "stack", style: "gap: 4px" },
            el("strong", {}, `${plural(chosen.length, "file")} selected (${formatBytes(bytes)})`),
            el("ul", { class: "file-list" }, chosen.slice(0, 8).map((e) => el("li", {}, e.path)), chosen.length > 8 ? el("li", {}, `… and ${chosen.length - 8} more`) : null),
          )
        : "",
    );
  }
  const fromInput = (inp) => () => {
    setChosen(Array.from(inp.files).map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    inp.value = "";
  };
  filesInput.addEventListener("change", fromInput(filesInput));
  folderInput.addEventListener("change", fromInput(folderInput));

  const zone = el(
    "div",
    { class: "dropzone", testid: "dropzone" },
    el("strong", {}, "Drop DICOM, NIfTI, PNG/JPEG/TIFF files, folders or zip archives here"),
    el("span", { class: "small" }, "Everything is de-identified before it is stored."),
    el(
      "div",
      { class: "row" },
      el("button", { type: "button", class: "btn", onclick: () => filesInput.click() }, "Choose files…"),
      el("button", { type: "button", class: "btn", onclick: () => folderInput.click() }, "Choose folder…"),
    ),
    filesInput,
    folderInput,
    chosenInfo,
  );
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("dragover");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    zone.classList.remove("dragover");
    try {
      setChosen(await collectDroppedFiles(ev.dataTransfer));
    } catch (err) {
      showError(err, "Could not read the dropped files");
    }
  });

  async function start() {
    if (!chosen.length || upload) return;
    const form = filesFormData(chosen, { modality: modality.value, on_error: skip.querySelector("input").checked ? "skip" : "", background: background.querySelector("input").checked ? "true" : "" });
    const total = chosen.reduce((n, e) => n + e.file.size, 0);
    submit.disabled = true;
    cancel.hidden = false;
    meter.hidden = false;
    meter.value = 0;
    meterText.textContent = "Uploading…";
    result.replaceChildren();
    upload = uploadWithProgress(`/projects/${project.id}/imports`, form, {
      onProgress: (loaded, size) => {
        const all = size || total || 1;
        meter.value = Math.min(1, loaded / all);
        meterText.textContent = loaded >= all ? "Upload complete — de-identifying and importing on the server…" : `Uploading ${formatBytes(loaded)} of ${formatBytes(all)} (${Math.round((100 * loaded) / all)}%)`;
      },
    });
    try {
      const record = await upload.promise;
      if (record.status === "preparing" && record.job_id) {
        toast(`Stored ${plural(record.counts.instances || 0, "instance")}; building the images`, { kind: "success" });
        setChosen([]);
        loadHistory();
        followBuild(record, {
          result,
          onDone: () => {
            bus.dispatchEvent(new Event("images-changed"));
            loadHistory();
          },
        });
        return;
      }
      toast(`Imported ${plural(record.counts.images || 0, "image")}`, { kind: "success" });
      result.replaceChildren(el("div", { class: "alert alert-success" }, el("span", {}, `Import finished: ${plural(record.image_ids.length, "new image")}.`)), importReport(record));
      setChosen([]);
      bus.dispatchEvent(new Event("images-changed"));
      loadHistory();
    } catch (err) {
      if (err.aborted) {
        result.replaceChildren(el("div", { class: "alert alert-info" }, el("span", {}, "Upload cancelled; nothing was imported.")));
      } else {
        result.replaceChildren(errorBox(err), problemList(err.details && err.details.problems));
        showError(err, "Import failed");
      }
    } finally {
      upload = null;
      submit.disabled = !chosen.length;
      cancel.hidden = true;
      meter.hidden = true;
      meterText.textContent = "";
    }
  }
  submit.addEventListener("click", start);
  cancel.addEventListener("click", () => upload && upload.abort());

  async function loadHistory() {
    try {
      // Who imported: administrators may list all users, others see the project's members.
      const people = env.ctx.me.role === "admin" ? api.get("/users") : api.get(`/projects/${project.id}/members`).then((ms) => ms.map((m) => m.user));
      const [records, known] = await Promise.all([api.get(`/projects/${project.id}/imports`), people.catch(() => [])]);
      const users = new Map(known.map((u) => [u.id, u.username]));
      users.set(env.ctx.me.id, `${env.ctx.me.username} (you)`);
      if (!records.length) return history.replaceChildren(emptyState("No imports yet."));
      history.replaceChildren(
        historyTable(records, users, (r) => {
          result.replaceChildren(el("h3", {}, `Import of ${formatDate(r.created_at)}`), importReport(r));
          result.scrollIntoView({ behavior: "smooth", block: "start" });
        }),
      );
    } catch (err) {
      history.replaceChildren(errorBox(err, loadHistory));
    }
  }

  container.append(
    el(
      "div",
      { class: "two-col" },
      el(
        "section",
        { class: "card stack" },
        el("h2", {}, "Import images"),
        zone,
        el("div", { class: "form-grid" }, field("Modality of NIfTI files and photographs", modality, { hint: "DICOM files keep the modality from their header." })),
        skip,
        background,
        el("div", { class: "row" }, submit, cancel),
        meter,
        meterText,
      ),
      el("section", { class: "card stack" }, el("h2", {}, "Result"), result),
    ),
    el("section", { class: "section" }, el("h2", {}, "Import history"), history),
  );
  result.append(el("p", { class: "muted small" }, "The report of the next import appears here."));
  loadHistory();
  return () => upload && upload.abort();
}
