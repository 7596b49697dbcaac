// Label schema: the project's labels with colour, kind, mask value and code; reviewers
// add labels, change colours, rename and delete them.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { field, input, select } from "../components/form.js";
import { confirmDialog, formDialog } from "../components/modal.js";
import { showError, toast } from "../components/toast.js";

const KINDS = [
  { value: "mask", label: "Mask (segmentation)" },
  { value: "box", label: "Box" },
  { value: "point", label: "Point" },
  { value: "classification", label: "Classification" },
  { value: "note", label: "Note" },
];
// Suggested colours for new labels (distinct on dark images).
const PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff"];

function codeText(code) {
  return code ? `${code.meaning} (${code.scheme} ${code.value})` : "";
}

function editDialog(label) {
  const name = input({ value: label.name, required: true, maxlength: 64 });
  const description = input({ value: label.description, maxlength: 1000 });
  return formDialog({
    title: `Edit label “${label.name}”`,
    fields: [field("Name", name), field("Description", description)],
    submit: () => api.patch(`/labels/${label.id}`, { name: name.value.trim(), description: description.value }),
  });
}

export function mountLabels(container, env) {
  const { project, isReviewer } = env;
  const list = el("div", {}, spinner("Loading labels…"));
  let labels = [];

  function row(label) {
    const colour = isReviewer
      ? el("input", { type: "color", class: "input", value: label.color, "aria-label": `Colour of ${label.name}` })
      : el("span", { class: "swatch", style: { background: label.color }, title: label.color });
    if (isReviewer) {
      colour.addEventListener("change", async () => {
        try {
          await api.patch(`/labels/${label.id}`, { color: colour.value });
          label.color = colour.value;
          toast(`Colour of “${label.name}” changed`, { kind: "success" });
        } catch (err) {
          colour.value = label.color;
          showError(err);
        }
      });
    }
    const actions = isReviewer
      ? el(
          "td",
          {},
          el(
          "div",
          { class: "row", style: "flex-wrap: nowrap; justify-content: flex-end" },
          el("button", { type: "button", class: "btn btn-small", onclick: async () => (await editDialog(label)) && load() }, "Edit"),
          el(
            "button",
            {
              type: "button",
              class: "btn btn-small btn-danger",
              testid: "label-delete",
              onclick: async () => {
                const ok = await confirmDialog(`Delete the label “${label.name}”? Labels already used in annotations cannot be deleted.`, { confirmLabel: "Delete", danger: true });
                if (!ok) return;
                try {
                  await api.del(`/labels/${label.id}`);
                  toast(`Label “${label.name}” deleted`, { kind: "success" });
                  load();
                } catch (err) {
                  showError(err);
                }
              },
            },
            "Delete",
          ),
          ),
        )
      : null;
    return el(
      "tr",
      { testid: "label-row", dataset: { labelId: label.id } },
      el("td", {}, colour),
      el("td", {}, el("strong", {}, label.name), label.description ? el("div", { class: "small muted" }, label.description) : null),
      el("td", {}, label.kind),
      el("td", { class: "num" }, label.value ?? "—"),
      el("td", { class: "small" }, codeText(label.code) || el("span", { class: "muted" }, "—")),
      actions,
    );
  }

  async function load() {
    try {
      labels = await api.get(`/projects/${project.id}/labels`);
    } catch (err) {
      list.replaceChildren(errorBox(err, load));
      return;
    }
    if (!labels.length) {
      list.replaceChildren(emptyState(isReviewer ? "No labels yet — add the structures and findings annotators should mark." : "No labels yet — a reviewer defines them."));
    } else {
      const heads = ["Colour", "Name", "Kind", "Mask value", "Code", isReviewer ? "" : null].filter((h) => h !== null);
      list.replaceChildren(
        el(
          "div",
          { class: "table-wrap" },
          el(
            "table",
            { class: "table", testid: "label-table" },
            el("thead", {}, el("tr", {}, heads.map((h) => el("th", { class: h === "Mask value" ? "num" : null }, h)))),
            el("tbody", {}, labels.map(row)),
          ),
        ),
      );
    }
    if (addForm) colourInput.value = PALETTE.find((c) => !labels.some((l) => l.color === c)) || PALETTE[labels.length % PALETTE.length];
  }

  let addForm = null;
  let colourInput = null;
  if (isReviewer) {
    const name = input({ name: "name", required: true, maxlength: 64, testid: "label-name", placeholder: "e.g. Liver" });
    const kind = select(KINDS, { name: "kind", testid: "label-kind" });
    colourInput = input({ type: "color", name: "color", value: PALETTE[0], testid: "label-color" });
    const value = input({ type: "number", name: "value", min: 1, max: 65535, placeholder: "auto", testid: "label-value" });
    const codeValue = input({ placeholder: "10200004" });
    const codeScheme = input({ placeholder: "SCT" });
    const codeMeaning = input({ placeholder: "Liver" });
    const description = input({ maxlength: 1000, placeholder: "Optional instructions" });
    const error = el("div", { class: "alert alert-error", role: "alert", hidden: true });
    kind.addEventListener("change", () => (value.disabled = kind.value !== "mask"));
    addForm = el(
      "form",
      { class: "card stack section", "aria-label": "Add a label" },
      el("h2", {}, "Add a label"),
      error,
      el("div", { class: "form-grid" }, field("Name", name), field("Kind", kind), field("Colour", colourInput), field("Mask value", value, { hint: "Integer in exported masks" })),
      field("Description", description),
      el(
        "details",
        { class: "disclosure" },
        el("summary", {}, "Coded concept (optional, e.g. SNOMED CT — used in DICOM SEG exports)"),
        el("div", { class: "form-grid" }, field("Code value", codeValue), field("Scheme", codeScheme), field("Meaning", codeMeaning)),
      ),
      el("div", { class: "row" }, el("button", { type: "submit", class: "btn btn-primary", testid: "label-add" }, "Add label")),
    );
    addForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      const spec = { name: name.value.trim(), kind: kind.value, color: colourInput.value, description: description.value };
      if (kind.value === "mask" && value.value) spec.value = Number(value.value);
      const code = [codeValue.value.trim(), codeScheme.value.trim(), codeMeaning.value.trim()];
      if (code.some(Boolean)) {
        if (!code.every(Boolean)) {
          error.textContent = "A code needs a value, a scheme and a meaning (or leave all three empty).";
          error.hidden = false;
          return;
        }
        spec.code = { value: code[0], scheme: code[1], meaning: code[2] };
      }
      if (!spec.name) {
        error.textContent = "Give the label a name.";
        error.hidden = false;
        return;
      }
      try {
        await api.post(`/projects/${project.id}/labels`, [spec]);
        toast(`Label “${spec.name}” added`, { kind: "success" });
        for (const inp of [name, value, codeValue, codeScheme, codeMeaning, description]) inp.value = "";
        await load();
        name.focus();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      }
    });
  }

  container.append(list, addForm);
  load();
}
