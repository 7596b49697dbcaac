// Renders an import record (POST/GET imports): counts, problems, and the
// de-identification summary (actions per kind, warnings, per-attribute details).
import { el } from "../components/dom.js";

const COUNT_LABELS = [
  ["files", "files"],
  ["images", "images"],
  ["instances", "DICOM instances"],
  ["duplicates", "duplicates"],
  ["skipped", "skipped"],
  ["rejected", "rejected"],
  ["frame_of_reference_added", "frames of reference added"],
];
const ACTION_LABELS = {
  removed: "removed",
  emptied: "emptied",
  replaced: "replaced with dummies",
  pseudonymized: "pseudonymized",
  uid_remapped: "UIDs remapped",
  date_shifted: "dates shifted",
  retained: "retained",
  cleaned: "cleaned",
  blanked: "blanked",
};

export function countStats(counts) {
  return el(
    "div",
    { class: "stat-row", testid: "import-counts" },
    COUNT_LABELS.filter(([key]) => counts[key] !== undefined && (counts[key] > 0 || ["files", "images"].includes(key))).map(([key, label]) =>
      el("div", { class: "stat", dataset: { count: key } }, el("strong", {}, String(counts[key])), el("span", {}, label)),
    ),
  );
}

export function problemList(problems) {
  if (!problems || !problems.length) return null;
  return el(
    "div",
    { class: "stack", testid: "import-problems" },
    el("h3", {}, `Problems (${problems.length})`),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table" },
        el("thead", {}, el("tr", {}, el("th", {}, "File"), el("th", {}, "Reason"))),
        el("tbody", {}, problems.map((p) => el("tr", {}, el("td", { class: "mono" }, p.file), el("td", {}, p.reason)))),
      ),
    ),
  );
}

function totalsByAction(actions) {
  const totals = {};
  for (const perAttr of Object.values(actions || {})) {
    for (const [action, n] of Object.entries(perAttr)) totals[action] = (totals[action] || 0) + n;
  }
  return totals;
}

export function deidSummary(deid) {
  if (!deid) return null;
  const totals = totalsByAction(deid.actions);
  const attrs = Object.keys(deid.actions || {}).sort();
  const warnings = deid.warnings || [];
  const options = Object.entries(deid.options || {}).filter(([, on]) => on).map(([k]) => k.replaceAll("_", " "));
  return el(
    "div",
    { class: "stack", testid: "deid-summary" },
    el("h3", {}, "De-identification"),
    el(
      "p",
      { class: "small muted" },
      `${deid.profile || "Basic profile"}${deid.table_edition ? ` (tables ${deid.table_edition})` : ""}; `,
      `${deid.instances || 0} DICOM instance(s)`,
      options.length ? `; options: ${options.join(", ")}` : "",
      ".",
    ),
    Object.keys(totals).length
      ? el(
          "div",
          { class: "row", testid: "deid-actions" },
          Object.entries(totals)
            .sort((a, b) => b[1] - a[1])
            .map(([action, n]) => el("span", { class: "badge", dataset: { action } }, `${n} ${ACTION_LABELS[action] || action}`)),
        )
      : el("p", { class: "small muted" }, "No DICOM attributes needed changes."),
    warnings.map((w) =>
      el("div", { class: "alert alert-warn", testid: "deid-warning" }, el("span", {}, typeof w === "string" ? w : `${w.message}${w.count > 1 ? ` (${w.count}×)` : ""}`)),
    ),
    attrs.length
      ? el(
          "details",
          { class: "disclosure" },
          el("summary", {}, `Attributes changed (${attrs.length})`),
          el(
            "div",
            { class: "table-wrap" },
            el(
              "table",
              { class: "table" },
              el("thead", {}, el("tr", {}, el("th", {}, "Attribute"), el("th", {}, "Action"))),
              el(
                "tbody",
                {},
                attrs.map((a) =>
                  el("tr", {}, el("td", { class: "mono" }, a), el("td", {}, Object.entries(deid.actions[a]).map(([act, n]) => `${ACTION_LABELS[act] || act} ×${n}`).join(", "))),
                ),
              ),
            ),
          ),
        )
      : null,
  );
}

export function importReport(record) {
  const report = record.report || {};
  return el("div", { class: "stack", testid: "import-report" }, countStats(record.counts || {}), problemList(report.problems), deidSummary(report.deidentification));
}
