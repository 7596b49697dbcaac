// Models (reviewers): the project's trained model versions with their validation metrics,
// activate one; "Train" starts a `train` job on the approved labels of the chosen task
// (masks → segmentation, image classes → classification, boxes → detection),
// "Pre-annotate" a `preannotate` job with that task's active model (proposals for the
// whole team appear in the workspace to accept or reject); both are followed here and
// listed on the Jobs tab. Also the project's active-learning strategy ("next image" in
// the workspace follows it).
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { checkbox, field, input, select } from "../components/form.js";
import { formatBytes, formatDate } from "../components/format.js";
import { showError, toast } from "../components/toast.js";
import { jobProgress, watchJob } from "./project-jobs.js";

const STRATEGIES = [
  { value: "order", label: "Image order", hint: "images in the order they were imported" },
  { value: "random", label: "Random", hint: "a reproducible random order" },
  { value: "foreground-random", label: "Random, structures first", hint: "random, preferring images where the model sees a structure" },
  { value: "uncertainty", label: "Most uncertain first", hint: "images the model is least sure about (after pre-annotation)" },
  { value: "diversity", label: "Most diverse first", hint: "images least like those already labelled (core-set)" },
  { value: "uncertainty-diversity", label: "Uncertain and diverse", hint: "uncertainty weighted by novelty" },
];

// what each task learns from, and the label kind it needs
const TASKS = [
  { value: "seg", label: "Segmentation (masks)", kind: "mask", what: "masks" },
  { value: "cls", label: "Classification (image classes)", kind: "classification", what: "classes" },
  { value: "det", label: "Detection (boxes)", kind: "box", what: "boxes" },
];

// the validation figure shown for a model of each task
const METRICS = { seg: ["mean_dice", "Dice"], cls: ["auc", "AUC"], det: ["ap50", "AP50"] };

const metric = (r) => {
  const m = r.metrics || {};
  const [key] = METRICS[r.task] || [];
  const v = m[key] ?? m.mean_dice ?? m.dice_1 ?? m.accuracy ?? Object.values(m).find((x) => typeof x === "number");
  return typeof v === "number" ? v.toFixed(3) : "–";
};

function modelsTable(rows, onActivate) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "table" },
      el("thead", {}, el("tr", {}, ["Version", "Name", "Task", "Validation", "Epochs", "Images", "Size", "Trained", ""].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        rows.map((r) => {
          const activate = r.active
            ? el("span", { class: "badge job-succeeded", testid: "model-active" }, "Active")
            : el("button", { type: "button", class: "btn btn-small", testid: "model-activate", onclick: () => onActivate(r) }, "Activate");
          return el(
            "tr",
            { testid: "model-row", dataset: { modelId: String(r.id) } },
            el("td", {}, `v${r.version}`),
            el("td", {}, r.name, r.summary.ensemble_members ? el("span", { class: "muted small", testid: "model-ensemble" }, ` · ${r.summary.ensemble_members}-fold ensemble`) : null),
            el("td", {}, r.task),
            el("td", { class: "num", title: (METRICS[r.task] || [])[1] || "" }, metric(r)),
            el("td", { class: "num" }, String(r.summary.epochs_run ?? "")),
            el("td", { class: "num" }, `${r.summary.train_images}+${r.summary.val_images}`),
            el("td", { class: "num" }, formatBytes(r.size_bytes)),
            el("td", {}, formatDate(r.created_at)),
            el("td", {}, activate),
          );
        }),
      ),
    ),
  );
}

export function mountModels(container, env) {
  const { project, bus } = env;
  const stops = [];
  const list = el("div", {}, spinner("Loading models…"));
  const status = el("div", { class: "stack", testid: "models-job" });

  // training and pre-annotation forms
  const task = select(TASKS, { value: "seg", testid: "train-task" });
  const taskHint = el("span", { class: "field-hint", testid: "train-task-hint" });
  const minutes = input({ type: "number", min: 0.5, max: 600, step: 0.5, value: "5", testid: "train-minutes" });
  const epochs = input({ type: "number", min: 1, max: 1000, value: "", placeholder: "auto", testid: "train-epochs" });
  const seed = input({ type: "number", min: 0, value: "0" });
  // classification only: a cross-validated ensemble of one CNN per fold (1: one network)
  const folds = input({ type: "number", min: 1, max: 10, value: "1", testid: "train-folds" });
  const foldsField = field("Ensemble folds", folds, { hint: "1: one network; 2–10: one per fold, averaged (takes that many times longer)" });
  foldsField.hidden = true;
  const train = el("button", { type: "button", class: "btn btn-primary", testid: "train-start" }, "Train");
  const preannotate = el("button", { type: "button", class: "btn", testid: "preannotate-start" }, "Pre-annotate unlabelled images");
  const forTeam = checkbox("Proposals for every annotator (not only for me)", { checked: true, testid: "preannotate-team" });

  const strategy = select(STRATEGIES, { value: project.active_strategy || "order", testid: "active-strategy" });
  const strategyHint = el("span", { class: "field-hint" });
  const syncHint = () => (strategyHint.textContent = `Next image: ${STRATEGIES.find((s) => s.value === strategy.value).hint}.`);
  syncHint();
  strategy.addEventListener("change", async () => {
    syncHint();
    try {
      await api.patch(`/projects/${project.id}`, { active_strategy: strategy.value });
      toast("Active-learning strategy saved", { kind: "success" });
    } catch (err) {
      showError(err);
    }
  });

  function follow(job, what) {
    const jobsLink = el("button", { type: "button", class: "btn btn-small", onclick: () => env.showTab && env.showTab("jobs") }, "Open in Jobs");
    const box = el("div", { class: "stack", dataset: { jobId: String(job.id) } });
    status.replaceChildren(box);
    stops.push(
      watchJob(job.id, async (current, err) => {
        if (err) {
          box.replaceChildren(errorBox(err));
          return;
        }
        if (current.state === "queued" || current.state === "running") {
          box.replaceChildren(el("div", { class: "row" }, el("span", { class: "spacer" }, `${what}…`), jobsLink), jobProgress(current));
          return;
        }
        bus.dispatchEvent(new Event("jobs-changed"));
        if (current.state === "succeeded") {
          const r = current.result || {};
          const text = job.kind === "train" ? `Trained ${r.name} (version ${r.version}).` : `${r.proposals} proposal(s) on ${r.images} image(s): open an image to accept or reject them.`;
          box.replaceChildren(el("div", { class: "alert alert-success", testid: "models-job-done" }, text));
          toast(text, { kind: "success" });
          load();
        } else {
          box.replaceChildren(errorBox(current.error || `${what} ${current.state}; see its log on the Jobs tab.`), jobsLink);
        }
      }, { interval: 1000 }),
    );
  }

  async function start(kind, params, what) {
    status.replaceChildren(spinner(`Starting ${what.toLowerCase()}…`));
    try {
      const job = await api.post(`/projects/${project.id}/jobs`, { kind, params });
      bus.dispatchEvent(new Event("jobs-changed"));
      follow(job, what);
    } catch (err) {
      status.replaceChildren(errorBox(err));
    }
  }

  train.addEventListener("click", () => {
    const params = { task: task.value, seed: Number(seed.value) || 0, minutes: Number(minutes.value) || 5 };
    if (epochs.value) params.epochs = Number(epochs.value);
    if (task.value === "cls" && Number(folds.value) > 1) params.options = { folds: Number(folds.value) };
    start("train", params, "Training");
  });
  preannotate.addEventListener("click", () => {
    start("preannotate", { task: task.value, for_annotators: forTeam.querySelector("input").checked }, "Pre-annotating");
  });

  // which tasks this project's labels allow, and whether the chosen one has an active model
  let models = [];
  let labelKinds = null;
  function syncTask() {
    const chosen = TASKS.find((t) => t.value === task.value);
    const active = models.find((r) => r.active && r.task === task.value);
    preannotate.disabled = !active;
    foldsField.hidden = chosen.value !== "cls";
    const missing = labelKinds && !labelKinds.has(chosen.kind);
    train.disabled = Boolean(missing);
    taskHint.textContent = missing
      ? `This project has no ${chosen.kind} label: add one on the Labels tab to train a ${chosen.value} model.`
      : `Learns from approved ${chosen.what}; ${active ? `pre-annotation uses ${active.name} (v${active.version})` : "no active model of this task yet"}.`;
  }
  task.addEventListener("change", syncTask);
  api
    .get(`/projects/${project.id}/labels`)
    .then((labels) => {
      labelKinds = new Set(labels.map((l) => l.kind));
      const usable = TASKS.filter((t) => labelKinds.has(t.kind));
      if (usable.length && !labelKinds.has("mask")) task.value = usable[0].value;
      syncTask();
    })
    .catch(() => syncTask());

  async function activate(row) {
    try {
      await api.post(`/models/${row.id}/activate`);
      toast(`${row.name} is now the active model`, { kind: "success" });
      load();
    } catch (err) {
      showError(err);
    }
  }

  async function load() {
    try {
      const rows = await api.get(`/projects/${project.id}/models`);
      list.replaceChildren(rows.length ? modelsTable(rows, activate) : emptyState("No model yet: approve labels on at least two images, then train one."));
      models = rows;
      syncTask();
    } catch (err) {
      list.replaceChildren(errorBox(err, load));
    }
  }

  container.append(
    el(
      "section",
      { class: "card stack", "aria-label": "Train and pre-annotate" },
      el("h2", {}, "Learn from the approved labels"),
      el("p", { class: "small muted" }, "Training uses the reference labels (approved consensus, else approved readings); the first model of each task becomes active."),
      el("div", { class: "form-grid" }, field("Task", task), field("Time budget (minutes)", minutes), field("Epochs at most", epochs), field("Seed", seed), foldsField),
      taskHint,
      el("div", { class: "row" }, train, preannotate),
      forTeam,
      status,
    ),
    el("section", { class: "section" }, el("h2", {}, "Model versions"), list),
    el("section", { class: "card stack", "aria-label": "Active learning" }, el("h2", {}, "Active learning"), field("Next image", strategy), strategyHint),
  );
  load();
  return () => stops.forEach((stop) => stop());
}
