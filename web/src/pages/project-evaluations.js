// Evaluations (reviewers): how well one reader, or one engine (a model, a classical tool,
// a consensus method), matches the project's reference — each image's approved consensus,
// or else the approved readings of the others. "New evaluation" starts an `evaluate` job
// and follows its progress and log (it runs in the background: the Jobs tab lists it too);
// the list shows each evaluation's per-label mean Dice with its 95% confidence interval,
// HD95 and NSD, and links to the stored report (a self-contained HTML page) and its JSON.
// Data: GET /api/projects/{id}/evaluations, GET /api/projects/{id}/evaluations/subjects.
import { api } from "../api.js";
import { boxPlot } from "../components/charts.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { field, input, select } from "../components/form.js";
import { formatDate, plural } from "../components/format.js";
import { showError, toast } from "../components/toast.js";
import { isActive, jobLogTail, jobProgress, watchJob } from "./project-jobs.js";

const SUBJECTS = [
  { value: "reader", label: "A reader" },
  { value: "engine", label: "An engine (model or tool)" },
];
const WHICH = [
  { value: "latest", label: "Latest", hint: "each reading's latest revision" },
  { value: "approved", label: "Approved only", hint: "only readings a reviewer approved" },
];

const finite = (v) => typeof v === "number" && Number.isFinite(v);
const fmt = (v, digits = 3) => (finite(v) ? v.toFixed(digits) : "n/a");
const fmtMm = (v) => (finite(v) ? `${v.toFixed(v >= 100 ? 0 : 1)} mm` : "n/a");
const ci = (m) => (m && finite(m.ci_low) && finite(m.ci_high) ? `${fmt(m.ci_low)}–${fmt(m.ci_high)}` : "");

// The summary's labels ({"<value>": {name, cases, dice, hd95, nsd}}) in label-value order.
function labelsOf(row) {
  return Object.entries(row.summary || {})
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([value, s]) => ({ value, ...s, name: s.name || `label ${value}` }));
}

function subjectName(subject) {
  return subject.kind === "engine" ? subject.engine_name : subject.name || `user ${subject.user_id}`;
}

function readerOption(r) {
  const who = r.full_name ? `${r.name} (${r.full_name})` : r.name;
  const counts = r.readings ? `${plural(r.readings, "reading")}${r.approved ? `, ${r.approved} approved` : ""}` : "no readings";
  return { value: String(r.user_id), label: `${who} — ${counts}` };
}

const engineOption = (e) => ({ value: e.engine_name, label: `${e.engine_name} — ${plural(e.revisions, "revision")} on ${plural(e.images, "image")}` });

// Mean Dice of each label with its 95% bootstrap CI, as numbers and as intervals.
function diceCell(labels) {
  const values = el(
    "div",
    { class: "eval-values" },
    labels.map((l) =>
      el(
        "div",
        { testid: "evaluation-dice", dataset: { label: l.value, value: finite(l.dice?.mean) ? l.dice.mean : "" } },
        labels.length > 1 ? el("span", { class: "muted" }, `${l.name} `) : null,
        el("strong", { class: "mono" }, fmt(l.dice?.mean)),
        ci(l.dice) ? el("span", { class: "small muted" }, ` (95% CI ${ci(l.dice)})`) : null,
      ),
    ),
  );
  const chart = boxPlot(
    labels.map((l) => ({
      label: l.name,
      min: l.dice?.ci_low,
      max: l.dice?.ci_high,
      mean: l.dice?.mean,
      title: `${l.name}: mean Dice ${fmt(l.dice?.mean)}${ci(l.dice) ? `, 95% CI ${ci(l.dice)}` : ""} over ${plural(l.cases ?? 0, "case")}`,
      dataset: { value: l.value },
    })),
    { domain: [0, 1], width: 300, format: (v) => fmt(v, 1), testid: "evaluation-dice-chart", ariaLabel: "Mean Dice per label with its 95% confidence interval" },
  );
  return el("td", { class: "eval-dice" }, values, chart);
}

function metricCell(labels, key, format, testid) {
  return el(
    "td",
    { class: "num" },
    labels.map((l) =>
      el(
        "div",
        { testid, dataset: { label: l.value }, title: ci(l[key]) ? `95% CI ${key === "hd95" ? `${fmtMm(l[key].ci_low)}–${fmtMm(l[key].ci_high)}` : ci(l[key])}` : null },
        labels.length > 1 ? el("span", { class: "muted" }, `${l.name} `) : null,
        format(l[key]?.mean),
      ),
    ),
  );
}

function subjectCell(row) {
  const o = row.options || {};
  const engine = row.subject.kind === "engine";
  const details = [engine ? null : `${o.which === "approved" ? "approved" : "latest"} revisions`, finite(o.tolerance_mm) ? `NSD at ${o.tolerance_mm} mm` : null].filter(Boolean);
  return el(
    "td",
    {},
    el("div", {}, el("span", { class: "badge" }, engine ? "Engine" : "Reader"), " ", el("strong", { testid: "evaluation-subject-name" }, subjectName(row.subject))),
    el("div", { class: "small muted" }, details.join(" · ")),
  );
}

function evaluationsTable(rows, { names, highlight }) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "table", testid: "evaluations-table" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", {}, "Subject"),
          el("th", {}, "When"),
          el("th", { class: "num" }, "Cases"),
          el("th", {}, "Mean Dice (95% CI)"),
          el("th", { class: "num", title: "95th percentile Hausdorff distance, mean over cases (lower is better)" }, "HD95"),
          el("th", { class: "num", title: "Normalised surface Dice at the tolerance, mean over cases" }, "NSD"),
          el("th", {}, el("span", { class: "sr-only" }, "Report")),
        ),
      ),
      el(
        "tbody",
        {},
        rows.map((r) => {
          const labels = labelsOf(r);
          const by = names.get(r.created_by);
          return el(
            "tr",
            { testid: "evaluation-row", dataset: { evaluationId: String(r.id) }, class: r.id === highlight ? "selected" : null },
            subjectCell(r),
            el("td", { class: "small" }, el("div", {}, formatDate(r.created_at)), by ? el("div", { class: "muted" }, `by ${by}`) : null),
            el("td", { class: "num" }, el("span", { testid: "evaluation-cases" }, String(r.cases)), r.skipped ? el("div", { class: "small muted" }, `${r.skipped} skipped`) : null),
            labels.length ? diceCell(labels) : el("td", { class: "muted" }, "no mask labels"),
            metricCell(labels, "hd95", fmtMm, "evaluation-hd95"),
            metricCell(labels, "nsd", (v) => fmt(v), "evaluation-nsd"),
            el(
              "td",
              {},
              el(
                "div",
                { class: "row" },
                el("a", { class: "btn btn-small", href: `/api/evaluations/${r.id}/report.html`, target: "_blank", rel: "noopener", testid: "evaluation-open-report" }, "Open report"),
                el("a", { class: "btn btn-small btn-ghost", href: `/api/evaluations/${r.id}/report.json`, target: "_blank", rel: "noopener", testid: "evaluation-json" }, "JSON"),
              ),
            ),
          );
        }),
      ),
    ),
  );
}

export function mountEvaluations(container, env) {
  const { project, bus } = env;
  let subjects = { readers: [], engines: [] };
  let rows = [];
  let highlight = null;
  let stopWatching = null;
  let stopped = false;
  let loaded = false; // subjects

  const subject = select(SUBJECTS, { testid: "evaluation-subject" });
  const reader = select([], { testid: "evaluation-reader" });
  const engine = select([], { testid: "evaluation-engine" });
  const which = select(WHICH, { testid: "evaluation-which" });
  const tolerance = input({ type: "number", min: 0.1, max: 100, step: 0.1, value: "1", testid: "evaluation-tolerance" });
  const readerField = field("Reader", reader, { hint: "Their readings are compared with the other readers' approved ones, or the consensus." });
  const engineField = field("Engine", engine, { hint: "Its latest revision of each image is compared with the reference." });
  const whichHint = el("span", { class: "field-hint" });
  const whichField = el("label", { class: "field" }, el("span", { class: "field-label" }, "Revisions"), which, whichHint);
  const start = el("button", { type: "submit", class: "btn btn-primary", testid: "evaluation-start" }, "Start evaluation");
  const result = el("div", { "aria-live": "polite" });
  const list = el("div", {}, spinner("Loading evaluations…"));

  function fill(sel, options, empty) {
    const keep = sel.value;
    sel.replaceChildren(...(options.length ? options : [{ value: "", label: empty }]).map((o) => el("option", { value: o.value }, o.label)));
    if (options.some((o) => o.value === keep)) sel.value = keep;
    sel.disabled = !options.length;
  }

  function sync() {
    const isEngine = subject.value === "engine";
    readerField.hidden = isEngine;
    whichField.hidden = isEngine;
    engineField.hidden = !isEngine;
    whichHint.textContent = `Evaluates ${WHICH.find((w) => w.value === which.value).hint}.`;
    start.disabled = Boolean(stopWatching) || (isEngine ? engine.disabled : reader.disabled);
  }

  function fillSubjects() {
    // viewers cannot read; list them only if they once did
    const readers = subjects.readers.filter((r) => r.role !== "viewer" || r.readings);
    fill(reader, readers.map(readerOption), loaded ? "No readers in this project" : "Loading…");
    fill(engine, subjects.engines.map(engineOption), loaded ? "No engine has made revisions here yet" : "Loading…");
    sync();
  }

  subject.addEventListener("change", sync);
  which.addEventListener("change", sync);

  const form = el(
    "form",
    { class: "card stack", "aria-label": "New evaluation", testid: "evaluation-form", novalidate: true },
    el("h2", {}, "New evaluation"),
    el(
      "p",
      { class: "small muted" },
      "Compares a reader's or an engine's masks with each image's reference: its approved consensus, or else the approved readings of the others (majority vote). Images without a reference, or that the subject did not label, are left out. Dice, HD95 and NSD per label, with 95% bootstrap confidence intervals.",
    ),
    el(
      "div",
      { class: "form-grid" },
      field("Evaluate", subject),
      readerField,
      engineField,
      whichField,
      field("NSD tolerance (mm)", tolerance, { hint: "Surface distance counted as agreement." }),
    ),
    el("div", { class: "row" }, start),
    result,
  );

  const finish = () => {
    stopWatching = null;
    start.textContent = "Start evaluation";
    sync();
  };

  // Follow an evaluate job: state, progress and log while it runs, then the outcome.
  function follow(job) {
    const tail = jobLogTail(job.id, { testid: "evaluation-log" });
    const cancel = el("button", { type: "button", class: "btn btn-small btn-danger", testid: "evaluation-cancel" }, "Cancel");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await api.post(`/jobs/${job.id}/cancel`);
      } catch (err) {
        showError(err);
      }
    });
    const head = el("div", { class: "row" });
    const meter = el("div", {});
    const outcome = el("div", {});
    const status = el("section", { class: "stack", testid: "evaluation-progress", dataset: { jobId: String(job.id), state: job.state } }, head, meter, tail.node, outcome);
    result.replaceChildren(status);
    start.disabled = true;
    start.textContent = "Evaluating…";
    const show = (current) => {
      status.dataset.state = current.state;
      const what = current.state === "queued" ? "Waiting for a free worker…" : isActive(current) ? `Evaluating ${describe(current.params)}…` : `Evaluation of ${describe(current.params)}`;
      head.replaceChildren(el("span", { class: "spacer" }, what));
      if (isActive(current) && !current.cancel_requested) head.append(cancel);
      meter.replaceChildren(jobProgress(current));
    };
    show(job);
    stopWatching = watchJob(job.id, async (current, err) => {
      tail.poll().catch(() => {}); // the log is a courtesy: its errors do not stop the watch
      if (err) {
        outcome.replaceChildren(errorBox(err));
        finish();
        return;
      }
      show(current);
      if (isActive(current)) return;
      finish();
      bus.dispatchEvent(new Event("jobs-changed"));
      if (current.state === "succeeded") {
        const r = current.result || {};
        highlight = r.evaluation_id ?? null;
        await load();
        if (stopped) return;
        outcome.replaceChildren(
          el("div", { class: "alert alert-success", testid: "evaluation-done" }, el("span", {}, `Evaluation ready: ${plural(r.cases ?? 0, "case")}${r.skipped ? `, ${r.skipped} skipped` : ""}. It is highlighted in the list below.`)),
        );
        toast("Evaluation ready", { kind: "success" });
      } else if (current.state === "cancelled") {
        outcome.replaceChildren(el("div", { class: "alert alert-warn" }, "The evaluation was cancelled."));
      } else {
        outcome.replaceChildren(errorBox(current.error || "The evaluation failed; see its log above or on the Jobs tab."));
      }
    });
  }

  function describe(params) {
    const p = params || {};
    if (p.subject === "engine") return `engine ${p.engine_name}`;
    const r = subjects.readers.find((x) => x.user_id === p.user_id);
    return `reader ${r ? r.name : p.user_id}`;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (stopWatching) return;
    const t = Number(tolerance.value);
    if (!(t > 0 && t <= 100)) {
      result.replaceChildren(el("div", { testid: "evaluation-error" }, errorBox("The NSD tolerance must be a number of millimetres above 0 and at most 100.")));
      return;
    }
    const params = { subject: subject.value, tolerance_mm: t, seed: 0 };
    if (subject.value === "engine") params.engine_name = engine.value;
    else Object.assign(params, { user_id: Number(reader.value), which: which.value });
    start.disabled = true;
    result.replaceChildren(spinner("Starting the evaluation…"));
    try {
      const job = await api.post(`/projects/${project.id}/jobs`, { kind: "evaluate", params });
      if (stopped) return;
      bus.dispatchEvent(new Event("jobs-changed"));
      follow(job);
    } catch (err) {
      // 422: nothing to evaluate, not a member... — the server's message says why
      result.replaceChildren(el("div", { testid: "evaluation-error" }, errorBox(err)));
      sync();
    }
  });

  async function loadSubjects() {
    try {
      subjects = await api.get(`/projects/${project.id}/evaluations/subjects`);
      loaded = true;
      if (!stopped) fillSubjects();
    } catch (err) {
      if (!stopped) result.replaceChildren(errorBox(err, loadSubjects));
    }
  }

  async function load() {
    try {
      rows = await api.get(`/projects/${project.id}/evaluations`);
      if (stopped) return;
      const names = new Map(subjects.readers.map((r) => [r.user_id, r.name]));
      list.replaceChildren(
        rows.length
          ? evaluationsTable(rows, { names, highlight })
          : el("div", { testid: "evaluations-empty" }, emptyState("No evaluations yet. Evaluations compare against the reference: approve some readings or build a consensus first, then evaluate a reader or an engine above.")),
      );
    } catch (err) {
      if (!stopped) list.replaceChildren(errorBox(err, load));
    }
  }

  // An evaluation started earlier (or elsewhere) that still runs is followed here too.
  async function resume() {
    try {
      const jobs = await api.get(`/jobs?project_id=${project.id}&kind=evaluate&limit=10`);
      const running = jobs.find(isActive);
      if (running && !stopWatching && !stopped) follow(running);
    } catch (_) {
      /* the form still works; the Jobs tab shows the job */
    }
  }

  const onShown = (ev) => {
    if (ev.detail !== "evaluations") return;
    loadSubjects().then(load);
  };
  bus.addEventListener("tab-shown", onShown);
  fillSubjects();
  container.append(el("div", { class: "stack", testid: "evaluations-tab" }, form, el("section", { class: "section stack" }, el("h2", {}, "Evaluations"), list)));
  loadSubjects().then(() => Promise.all([load(), resume()]));
  return () => {
    stopped = true;
    if (stopWatching) stopWatching();
    bus.removeEventListener("tab-shown", onShown);
  };
}
