// Project page: summary (progress by status, "Start labelling"), and tabs for the image
// list, the label schema, the reader study and agreement dashboard, evaluation reports,
// imports, exports and background jobs (reviewers); "My queue" for readers. The tab
// panels live in project-*.js; they talk through `bus` ("images-changed" after an
// import, "jobs-changed" after a job was started, "tab-shown" with the tab id when a
// mounted panel is shown again).
import { api } from "../api.js";
import { el, errorBox, spinner } from "../components/dom.js";
import { plural } from "../components/format.js";
import { pageShell } from "../components/header.js";
import { progressBar } from "../components/status.js";
import { showError, toast } from "../components/toast.js";
import { mountAgreement } from "./project-agreement.js";
import { mountEvaluations } from "./project-evaluations.js";
import { mountExports } from "./project-exports.js";
import { mountImages } from "./project-images.js";
import { mountImport } from "./project-import.js";
import { mountJobs } from "./project-jobs.js";
import { mountLabels } from "./project-labels.js";
import { mountModels } from "./project-models.js";
import { mountStudy, queueCard } from "./project-study.js";

const TABS = [
  { id: "images", label: "Images", mount: mountImages },
  { id: "labels", label: "Labels", mount: mountLabels },
  { id: "study", label: "Reader study", mount: mountStudy, reviewer: true },
  { id: "agreement", label: "Agreement", mount: mountAgreement, reviewer: true },
  { id: "evaluations", label: "Evaluations", mount: mountEvaluations, reviewer: true },
  { id: "models", label: "Models", mount: mountModels, reviewer: true },
  { id: "import", label: "Import", mount: mountImport, reviewer: true },
  { id: "exports", label: "Exports", mount: mountExports, reviewer: true },
  { id: "jobs", label: "Jobs", mount: mountJobs, reviewer: true },
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
  // "My queue" for readers: always for annotators, for reviewers only when they owe work.
  const queue = project.role === "viewer" ? null : queueCard(project, ctx, { hideWhenEmpty: isReviewer });
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
      } else if (selected) {
        bus.dispatchEvent(new CustomEvent("tab-shown", { detail: tid })); // panels may refresh
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
    queue,
    tabBar,
    body,
  );
  show(current);
  return () => cleanups.forEach((fn) => fn());
}
