// Project page: summary (progress by status, "Start labelling"), and tabs for the image
// list, the label schema, imports (reviewers) and exports (reviewers). The tab panels live
// in project-*.js; they talk through `bus` ("images-changed" after an import).
import { api } from "../api.js";
import { el, errorBox, spinner } from "../components/dom.js";
import { plural } from "../components/format.js";
import { pageShell } from "../components/header.js";
import { progressBar } from "../components/status.js";
import { showError, toast } from "../components/toast.js";
import { mountExports } from "./project-exports.js";
import { mountImages } from "./project-images.js";
import { mountImport } from "./project-import.js";
import { mountLabels } from "./project-labels.js";

const TABS = [
  { id: "images", label: "Images", mount: mountImages },
  { id: "labels", label: "Labels", mount: mountLabels },
  { id: "import", label: "Import", mount: mountImport, reviewer: true },
  { id: "exports", label: "Exports", mount: mountExports, reviewer: true },
];

const DEID_LABELS = {
  shift_dates: "dates shifted",
  retain_patient_characteristics: "patient characteristics kept",
  retain_descriptions: "descriptions kept",
};

async function startLabelling(project, ctx, button) {
  button.disabled = true;
  try {
    const next = await api.get(`/projects/${project.id}/next-image`);
    if (!next) toast("No unlabelled images left in this project.", { kind: "info" });
    else ctx.navigate(`#/images/${next.id}`);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function summaryCard(project, ctx) {
  const counts = project.counts || {};
  const started = (counts.in_progress || 0) + (counts.submitted || 0) + (counts.approved || 0) > 0;
  const next = el(
    "button",
    { type: "button", class: "btn btn-primary", testid: "next-image", disabled: !counts.unlabelled },
    started ? "Next unlabelled →" : "Start labelling →",
  );
  next.addEventListener("click", () => startLabelling(project, ctx, next));
  const deid = Object.entries(DEID_LABELS)
    .filter(([key]) => project.deid && project.deid[key])
    .map(([, label]) => label);
  return el(
    "section",
    { class: "card stack", testid: "project-summary" },
    el(
      "div",
      { class: "row" },
      el("h2", { class: "spacer" }, "Progress"),
      el("span", { class: "muted", testid: "project-total" }, plural(project.total_images, "image")),
      next,
    ),
    progressBar(counts, project.total_images),
    el(
      "p",
      { class: "small muted" },
      "De-identification: PS3.15 basic profile",
      deid.length ? ` — ${deid.join(", ")}` : "",
      ".",
    ),
  );
}

export async function render(root, ctx) {
  const id = ctx.params.projectId;
  let main = pageShell(root, ctx, { crumbs: [{ label: `Project ${id}` }] });
  main.append(spinner("Loading project…"));
  let project;
  try {
    project = await api.get(`/projects/${id}`);
  } catch (err) {
    main.replaceChildren(errorBox(err), el("p", {}, el("a", { href: "#/" }, "← Back to projects")));
    return;
  }
  main = pageShell(root, ctx, { crumbs: [{ label: project.name }] });
  const isReviewer = project.role === "reviewer" || ctx.me.role === "admin";
  const bus = new EventTarget();
  const summary = el("div", {}, summaryCard(project, ctx));
  const tabs = TABS.filter((t) => !t.reviewer || isReviewer);
  const tabKey = `medlabel:project-tab:${id}`;
  let current = sessionStorage.getItem(tabKey);
  if (!tabs.some((t) => t.id === current)) current = "images";

  const cleanups = [];
  const panels = {};
  const tabBar = el("div", { class: "tabs", role: "tablist", "aria-label": "Project sections" });
  const body = el("div", {});
  const env = { project, ctx, bus, isReviewer, showTab: (tid) => show(tid) };

  function show(tid) {
    current = tid;
    sessionStorage.setItem(tabKey, tid);
    for (const t of tabs) {
      const selected = t.id === tid;
      tabBar.querySelector(`[data-tab="${t.id}"]`).setAttribute("aria-selected", String(selected));
      if (selected && !panels[t.id]) {
        panels[t.id] = el("div", { role: "tabpanel", "aria-label": t.label, testid: `panel-${t.id}` });
        body.append(panels[t.id]);
        const cleanup = t.mount(panels[t.id], env);
        if (typeof cleanup === "function") cleanups.push(cleanup);
      }
      if (panels[t.id]) panels[t.id].hidden = !selected;
    }
  }
  for (const t of tabs) {
    tabBar.append(
      el("button", { type: "button", class: "tab", role: "tab", dataset: { tab: t.id }, testid: `tab-${t.id}`, onclick: () => show(t.id) }, t.label),
    );
  }

  bus.addEventListener("images-changed", async () => {
    try {
      project = await api.get(`/projects/${id}`);
      env.project = project;
      summary.replaceChildren(summaryCard(project, ctx));
    } catch (err) {
      showError(err);
    }
  });

  main.append(
    el(
      "div",
      { class: "page-head" },
      el("div", { class: "spacer" }, el("h1", { testid: "project-title" }, project.name), project.description ? el("p", { class: "subtitle" }, project.description) : null),
      el("span", { class: "badge badge-role", title: "Your role in this project" }, `You: ${project.role}`),
    ),
    summary,
    tabBar,
    body,
  );
  show(current);
  return () => cleanups.forEach((fn) => fn());
}
