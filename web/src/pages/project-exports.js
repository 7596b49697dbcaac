// Exports (reviewers): choose a format and which revisions, start an export job and follow
// its progress (it runs in the background: the Jobs tab lists it too), download the zip;
// list earlier exports of the project.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { checkbox, field, input, select } from "../components/form.js";
import { formatBytes, formatDate, plural } from "../components/format.js";
import { showError, toast } from "../components/toast.js";
import { jobProgress, watchJob } from "./project-jobs.js";

const FORMATS = [
  { value: "nifti", label: "NIfTI", hint: "Label masks as .nii.gz next to the images, in their geometry." },
  { value: "dicom-seg", label: "DICOM SEG", hint: "Segmentation objects referencing the stored DICOM series." },
  { value: "coco", label: "COCO JSON", hint: "Boxes, points and mask polygons per 2D plane." },
  { value: "csv", label: "CSV", hint: "One row per box, point, class and note, in voxels and mm." },
  { value: "nnunet", label: "nnU-Net", hint: "A dataset folder (imagesTr, labelsTr, dataset.json) for training." },
];
const WHICH = [
  { value: "latest", label: "Latest", hint: "the latest revision of each annotation" },
  { value: "approved", label: "Approved only", hint: "only revisions a reviewer approved" },
];

const downloadLink = (row) =>
  el("a", { class: "btn btn-small", href: `/api/exports/${row.id}/download`, download: "", testid: "export-download" }, "Download");

function exportSummary(row) {
  const s = row.summary || {};
  const skipped = s.skipped || [];
  return el(
    "div",
    { class: "stack", testid: "export-result" },
    el(
      "div",
      { class: "alert alert-success" },
      el("span", {}, `Exported ${plural(s.exported ?? 0, "image")} as ${row.format} (${formatBytes(row.size)}).`),
      downloadLink(row),
    ),
    skipped.length
      ? el(
          "details",
          { class: "disclosure" },
          el("summary", {}, `${skipped.length} skipped`),
          el("ul", { class: "small" }, skipped.map((x) => el("li", {}, `${x.name || x.image_id}: ${x.reason}`))),
        )
      : null,
  );
}

function exportsTable(rows) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "table" },
      el("thead", {}, el("tr", {}, ["When", "Format", "Revisions", "Images", "Size", ""].map((h) => el("th", { class: ["Images", "Size"].includes(h) ? "num" : null }, h)))),
      el(
        "tbody",
        {},
        rows.map((r) =>
          el(
            "tr",
            { testid: "export-row" },
            el("td", {}, formatDate(r.created_at)),
            el("td", {}, r.format),
            el("td", {}, (r.options && r.options.which) || (r.summary && r.summary.which) || ""),
            el("td", { class: "num" }, String((r.summary && r.summary.exported) ?? "")),
            el("td", { class: "num" }, formatBytes(r.size)),
            el("td", {}, downloadLink(r)),
          ),
        ),
      ),
    ),
  );
}

export function mountExports(container, env) {
  const { project, bus } = env;
  let stopWatching = null;
  const format = select(FORMATS, { testid: "export-format" });
  const which = select(WHICH, { testid: "export-which" });
  const formatHint = el("span", { class: "field-hint" });
  const whichHint = el("span", { class: "field-hint" });
  const images = checkbox("Include the images (NIfTI)", { checked: true });
  const datasetId = input({ type: "number", min: 1, max: 999, value: "1" });
  const datasetField = field("nnU-Net dataset id", datasetId);
  const submit = el("button", { type: "submit", class: "btn btn-primary", testid: "export-submit" }, "Export");
  const result = el("div", {});
  const list = el("div", {}, spinner("Loading exports…"));
  const sync = () => {
    formatHint.textContent = FORMATS.find((f) => f.value === format.value).hint;
    whichHint.textContent = `Exports ${WHICH.find((w) => w.value === which.value).hint}.`;
    images.hidden = format.value !== "nifti";
    datasetField.hidden = format.value !== "nnunet";
  };
  format.addEventListener("change", sync);
  which.addEventListener("change", sync);
  sync();

  const form = el(
    "form",
    { class: "card stack", "aria-label": "New export" },
    el("h2", {}, "New export"),
    el("div", { class: "form-grid" }, el("label", { class: "field" }, el("span", { class: "field-label" }, "Format"), format, formatHint), el("label", { class: "field" }, el("span", { class: "field-label" }, "Revisions"), which, whichHint), datasetField),
    images,
    el("div", { class: "row" }, submit),
    result,
  );
  const done = () => {
    submit.disabled = false;
    submit.textContent = "Export";
    stopWatching = null;
  };

  // Follow the export job: progress and a Cancel button while it runs, then the result.
  function follow(job) {
    const cancel = el("button", { type: "button", class: "btn btn-small btn-danger", testid: "export-cancel" }, "Cancel");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await api.post(`/jobs/${job.id}/cancel`);
      } catch (err) {
        showError(err);
      }
    });
    const status = el("div", { class: "stack", testid: "export-job", dataset: { jobId: String(job.id) } });
    result.replaceChildren(status);
    stopWatching = watchJob(job.id, async (current, err) => {
      if (err) {
        result.replaceChildren(errorBox(err));
        done();
        return;
      }
      if (current.state === "queued" || current.state === "running") {
        const what = current.state === "queued" ? "Waiting for a free worker…" : "Writing the export…";
        status.replaceChildren(el("div", { class: "row" }, el("span", { class: "spacer" }, what), cancel), jobProgress(current));
        return;
      }
      done();
      bus.dispatchEvent(new Event("jobs-changed"));
      if (current.state === "succeeded") {
        const rows = await load();
        const row = (rows || []).find((r) => r.id === current.result.export_id);
        result.replaceChildren(row ? exportSummary(row) : el("div", { class: "alert alert-success" }, "Export ready."));
        toast("Export ready", { kind: "success" });
      } else if (current.state === "cancelled") {
        result.replaceChildren(el("div", { class: "alert alert-warn" }, "The export was cancelled."));
      } else {
        result.replaceChildren(errorBox(current.error || "The export failed; see its log on the Jobs tab."));
      }
    });
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    submit.textContent = "Exporting…";
    result.replaceChildren(spinner("Starting the export…"));
    const params = { format: format.value, which: which.value };
    if (format.value === "nifti") params.include_images = images.querySelector("input").checked;
    if (format.value === "nnunet") params.dataset_id = Number(datasetId.value) || 1;
    try {
      const job = await api.post(`/projects/${project.id}/jobs`, { kind: "export", params });
      bus.dispatchEvent(new Event("jobs-changed"));
      follow(job);
    } catch (err) {
      result.replaceChildren(errorBox(err));
      done();
    }
  });

  async function load() {
    try {
      const rows = await api.get(`/projects/${project.id}/exports`);
      list.replaceChildren(rows.length ? exportsTable(rows) : emptyState("No exports yet."));
      return rows;
    } catch (err) {
      list.replaceChildren(errorBox(err, load));
      return null;
    }
  }
  container.append(form, el("section", { class: "section" }, el("h2", {}, "Earlier exports"), list));
  load();
  return () => stopWatching && stopWatching();
}
