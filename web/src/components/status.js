// Image work status: badges and the stacked progress bar used on cards and the project page.
//
//   STATUSES                    [{value, label}] in workflow order
//   statusLabel(value)          "In progress"
//   statusBadge(value)          <span class="badge status-<value>">
//   progressBar(counts, total)  stacked bar + legend with counts (class .progress)
import { el } from "./dom.js";

export const STATUSES = [
  { value: "unlabelled", label: "Unlabelled" },
  { value: "in_progress", label: "In progress" },
  { value: "submitted", label: "Submitted" },
  { value: "approved", label: "Approved" },
];

export function statusLabel(value) {
  const found = STATUSES.find((s) => s.value === value);
  return found ? found.label : value;
}

export function statusBadge(value) {
  return el("span", { class: ["badge", `status-${value}`], testid: "status-badge" }, statusLabel(value));
}

export function progressBar(counts = {}, total) {
  const sum = total ?? Object.values(counts).reduce((a, b) => a + b, 0);
  const done = (counts.approved || 0) + (counts.submitted || 0);
  const bar = el("div", {
    class: "progress-bar",
    role: "img",
    "aria-label": `${done} of ${sum} images submitted or approved`,
  });
  for (const s of STATUSES) {
    const n = counts[s.value] || 0;
    if (!n || !sum) continue;
    bar.append(
      el("span", {
        class: ["progress-seg", `status-${s.value}`],
        style: { width: `${(100 * n) / sum}%` },
        title: `${s.label}: ${n}`,
      }),
    );
  }
  const legend = el(
    "ul",
    { class: "legend" },
    STATUSES.map((s) =>
      el(
        "li",
        { dataset: { status: s.value } },
        el("span", { class: ["dot", `status-${s.value}`] }),
        `${s.label} `,
        el("strong", { testid: `count-${s.value}` }, String(counts[s.value] || 0)),
      ),
    ),
  );
  return el("div", { class: "progress" }, bar, legend);
}
