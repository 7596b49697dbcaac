// Jobs (reviewers): the project's background jobs (exports now; pre-annotation and
// training later) with their state, progress and log; cancel running or queued jobs,
// retry failed or cancelled ones. Polls while a job is queued or running and the tab is
// visible. Other tabs announce new jobs with bus event "jobs-changed"; the project page
// sends "tab-shown" when the tab is shown again.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { formatDate } from "../components/format.js";
import { showError, toast } from "../components/toast.js";

const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = 1000;
const STATE_LABELS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const isActive = (job) => ACTIVE.has(job.state);

export function jobStateBadge(job) {
  const label = job.state === "running" && job.cancel_requested ? "Cancelling" : STATE_LABELS[job.state] || job.state;
  return el("span", { class: ["badge", `job-${job.state}`], testid: "job-state" }, label);
}

// A progress meter with "12 / 40 writing" (indeterminate while the total is unknown).
export function jobProgress(job) {
  const p = job.progress || {};
  const total = p.total || 0;
  const done = job.state === "succeeded" && total ? total : p.done || 0;
  const meter = el("progress", { class: "meter", max: String(total || 1), "aria-label": "Job progress" });
  if (total) meter.value = done;
  else if (job.state === "succeeded") meter.value = 1;
  else if (!isActive(job)) meter.value = 0;
  // (no value while active with unknown total: the browser shows an indeterminate bar)
  const count = total ? `${fmt(done)} / ${fmt(total)}` : "";
  const text = [count, p.message].filter(Boolean).join(" ");
  return el(
    "div",
    { class: "job-progress", testid: "job-progress", dataset: { done: String(done), total: String(total) } },
    meter,
    el("span", { class: "small muted" }, text),
  );
}

const fmt = (n) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

function describe(job) {
  const p = job.params || {};
  if (job.kind === "export") return `Export ${p.format || ""}${p.which === "approved" ? " (approved)" : ""}`;
  return job.kind;
}

// Poll a job until it is over; onUpdate(job) after each read. Returns a stop function.
export function watchJob(id, onUpdate, { interval = 500 } = {}) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      const job = await api.get(`/jobs/${id}`);
      if (stopped) return;
      onUpdate(job);
      if (!isActive(job)) return;
    } catch (err) {
      if (stopped) return;
      onUpdate(null, err);
      return;
    }
    timer = setTimeout(tick, interval);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// A job's log as a growing <pre>: poll() appends the lines written since the last call
// (staying at the bottom if the reader was there) and resolves to the job's state; calls
// made while one is under way share it, so no line is shown twice.
export function jobLogTail(jobId, { testid = "job-logs" } = {}) {
  const node = el("pre", { class: "job-log", testid, "aria-live": "polite" });
  let after = 0;
  let pending = null;
  const poll = () => (pending ??= read().finally(() => (pending = null)));
  async function read() {
    const page = await api.get(`/jobs/${jobId}/logs?after=${after}`);
    const atBottom = node.scrollTop + node.clientHeight >= node.scrollHeight - 4;
    for (const line of page.lines) {
      const time = new Date(line.at).toLocaleTimeString();
      node.append(el("span", { class: `log-${line.level}` }, `${time}  ${line.line}\n`));
    }
    after = page.next;
    if (atBottom) node.scrollTop = node.scrollHeight;
    return page.state;
  }
  return { node, poll };
}

export function mountJobs(container, env) {
  const { project, bus } = env;
  const list = el("div", {}, spinner("Loading jobs…"));
  const logPanel = el("section", { class: "section stack", hidden: true, testid: "job-log-panel" });
  let jobs = [];
  let selected = null; // job id whose log is shown
  let logTail = null;
  let logTitle = null;
  let timer = null;
  let stopped = false;

  async function act(path, job, message) {
    try {
      await api.post(`/jobs/${job.id}/${path}`);
      toast(message, { kind: "success" });
    } catch (err) {
      showError(err);
    }
    refresh();
  }

  function row(job) {
    const actions = el("div", { class: "row" });
    actions.append(
      el("button", { type: "button", class: "btn btn-small", testid: "job-show-logs", onclick: () => openLog(job) }, "Log"),
    );
    if (isActive(job) && !job.cancel_requested) {
      actions.append(
        el("button", { type: "button", class: "btn btn-small btn-danger", testid: "job-cancel", onclick: () => act("cancel", job, `Cancelling job ${job.id}`) }, "Cancel"),
      );
    }
    if (job.state === "failed" || job.state === "cancelled") {
      actions.append(
        el("button", { type: "button", class: "btn btn-small", testid: "job-retry", onclick: () => act("retry", job, `Job ${job.id} queued again`) }, "Retry"),
      );
    }
    if (job.state === "succeeded" && job.kind === "export" && job.result && job.result.export_id) {
      actions.append(
        el("a", { class: "btn btn-small", href: `/api/exports/${job.result.export_id}/download`, download: "", testid: "job-download" }, "Download"),
      );
    }
    return el(
      "tr",
      { testid: "job-row", dataset: { jobId: String(job.id), state: job.state }, class: selected === job.id ? "selected" : null },
      el("td", { class: "num" }, String(job.id)),
      el(
        "td",
        {},
        el("div", {}, describe(job)),
        job.error ? el("div", { class: "small job-error", testid: "job-error" }, job.error) : null,
      ),
      el("td", {}, jobStateBadge(job), job.attempt > 1 ? el("span", { class: "small muted" }, ` attempt ${job.attempt}`) : null),
      el("td", { class: "job-progress-cell" }, jobProgress(job)),
      el("td", { class: "small" }, job.created_by_name || "—"),
      el("td", { class: "small" }, formatDate(job.started_at)),
      el("td", { class: "small" }, formatDate(job.finished_at)),
      el("td", {}, actions),
    );
  }

  function table() {
    return el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table", testid: "jobs-table" },
        el("thead", {}, el("tr", {}, ["#", "Job", "State", "Progress", "By", "Started", "Finished", ""].map((h) => el("th", { class: h === "#" ? "num" : null }, h)))),
        el("tbody", {}, jobs.map(row)),
      ),
    );
  }

  function openLog(job) {
    selected = job.id;
    logTail = jobLogTail(job.id);
    logTitle = el("h2", { class: "spacer" }, `Log of job ${job.id}`);
    const close = el("button", { type: "button", class: "btn btn-small btn-ghost", onclick: closeLog }, "Close");
    logPanel.replaceChildren(el("div", { class: "row" }, logTitle, close), logTail.node);
    logPanel.hidden = false;
    render();
    pollLog();
  }

  function closeLog() {
    selected = null;
    logPanel.hidden = true;
    logPanel.replaceChildren();
    render();
  }

  async function pollLog() {
    if (selected === null) return;
    const id = selected;
    try {
      const state = await logTail.poll();
      if (id !== selected) return;
      logPanel.dataset.state = state;
    } catch (err) {
      if (id === selected) logPanel.append(errorBox(err));
    }
  }

  function render() {
    list.replaceChildren(jobs.length ? table() : emptyState("No jobs yet. Exports started on the Exports tab run here."));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      jobs = await api.get(`/jobs?project_id=${project.id}&limit=100`);
      if (stopped) return;
      render();
      const current = jobs.find((j) => j.id === selected);
      if (current && (isActive(current) || logPanel.dataset.state !== current.state)) await pollLog();
    } catch (err) {
      if (stopped) return;
      list.replaceChildren(errorBox(err, refresh));
    }
    schedule();
  }

  // Refresh every second while a job is active and the tab is shown; when the tab is
  // shown again (bus "tab-shown") or a job was started elsewhere ("jobs-changed").
  function schedule() {
    clearTimeout(timer);
    if (stopped || container.hidden || !container.isConnected || !jobs.some(isActive)) return;
    timer = setTimeout(refresh, POLL_MS);
  }

  const onChanged = () => refresh();
  const onShown = (ev) => ev.detail === "jobs" && refresh();
  bus.addEventListener("jobs-changed", onChanged);
  bus.addEventListener("tab-shown", onShown);
  container.append(
    el(
      "section",
      { class: "section stack" },
      el("div", { class: "row" }, el("h2", { class: "spacer" }, "Jobs"), el("button", { type: "button", class: "btn btn-small", testid: "jobs-refresh", onclick: refresh }, "Refresh")),
      el("p", { class: "small muted" }, "Long tasks of this project run in the background; you may leave this page while they do."),
      list,
    ),
    logPanel,
  );
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    bus.removeEventListener("jobs-changed", onChanged);
    bus.removeEventListener("tab-shown", onShown);
  };
}
