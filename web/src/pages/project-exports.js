// Exports (reviewers): choose a format and which revisions, export, download the zip;
// list earlier exports of the project.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { checkbox, field, input, select } from "../components/form.js";
import { formatBytes, formatDate, plural } from "../components/format.js";
import { toast } from "../components/toast.js";

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
  const { project } = env;
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
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    submit.textContent = "Exporting…";
    result.replaceChildren(spinner("Writing the export…"));
    try {
      const body = { format: format.value, which: which.value };
      if (format.value === "nifti") body.include_images = images.querySelector("input").checked;
      if (format.value === "nnunet") body.dataset_id = Number(datasetId.value) || 1;
      const row = await api.post(`/projects/${project.id}/exports`, body);
      result.replaceChildren(exportSummary(row));
      toast("Export ready", { kind: "success" });
      load();
    } catch (err) {
      result.replaceChildren(errorBox(err));
    } finally {
      submit.disabled = false;
      submit.textContent = "Export";
    }
  });

  async function load() {
    try {
      const rows = await api.get(`/projects/${project.id}/exports`);
      list.replaceChildren(rows.length ? exportsTable(rows) : emptyState("No exports yet."));
    } catch (err) {
      list.replaceChildren(errorBox(err, load));
    }
  }
  container.append(form, el("section", { class: "section" }, el("h2", {}, "Earlier exports"), list));
  load();
}
