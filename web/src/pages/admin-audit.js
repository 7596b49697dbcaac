// Admin: the audit log — who read or changed what, when, from where — with filters,
// paging and a "Verify chain" button that recomputes the hash chain on the server.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { field, input, select } from "../components/form.js";
import { formatDate, plural } from "../components/format.js";
import { pageShell } from "../components/header.js";

const DEFAULTS = { actor: "", action: "", project: "", since: "", until: "", limit: 50, offset: 0 };
const PREFIXES = ["login", "token.", "user.", "member.", "project.", "label.", "image.", "annotation.", "proposal.", "assignment.", "review.", "job.", "evaluation.", "export.", "audit."];

// "2026-11-22T08:00" (local, from <input type=datetime-local>) → ISO 8601 in UTC.
function toIso(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function target(ev) {
  if (!ev.target_type) return el("span", { class: "muted" }, "—");
  return `${ev.target_type} ${ev.target_id}`;
}

function details(ev) {
  const entries = Object.entries(ev.details || {});
  if (!entries.length) return el("span", { class: "muted" }, "—");
  const text = entries.map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  return el("span", { class: "small mono audit-details", title: text }, text);
}

function eventRow(ev) {
  return el(
    "tr",
    { testid: "audit-row", dataset: { eventId: ev.id, action: ev.action } },
    el("td", { class: "mono small" }, ev.id),
    el("td", { class: "small", title: ev.at }, formatDate(ev.at)),
    el("td", {}, ev.actor ? el("strong", {}, ev.actor) : el("span", { class: "muted" }, "—")),
    el("td", {}, el("span", { class: ["badge", ev.action === "login_failed" && "audit-failed"] }, ev.action)),
    el("td", { class: "small" }, target(ev)),
    el("td", { class: "small" }, ev.project_id ?? el("span", { class: "muted" }, "—")),
    el("td", { class: "small mono" }, ev.client || el("span", { class: "muted" }, "—")),
    el("td", {}, details(ev)),
  );
}

function verifyResult(result) {
  if (result.ok) {
    return el(
      "div",
      { class: "alert alert-success", role: "status" },
      el("span", {}, `Chain intact: ${plural(result.rows, "row")} checked in ${result.seconds.toFixed(2)} s. Head: row ${result.head_id}, hash `, el("code", { class: "mono", testid: "audit-head-hash" }, result.head_hash)),
    );
  }
  const where = result.broken_id ? `at row ${result.broken_id}` : "";
  return el(
    "div",
    { class: "alert alert-error", role: "alert" },
    el("span", {}, el("strong", {}, `Chain broken ${where}: ${result.reason}. `), result.message, ` (${plural(result.rows, "row")} intact before it.)`),
  );
}

function verifyPanel() {
  const anchor = input({ placeholder: "Optional: a head hash saved earlier", maxlength: 64, testid: "audit-anchor", "aria-label": "Anchor hash", class: "mono" });
  const result = el("div", { testid: "audit-verify-result", "aria-live": "polite" });
  const button = el("button", { type: "button", class: "btn btn-primary", testid: "audit-verify" }, "Verify chain");
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.replaceChildren(spinner("Recomputing the hash chain…"));
    try {
      const params = new URLSearchParams();
      if (anchor.value.trim()) params.set("anchor", anchor.value.trim());
      result.replaceChildren(verifyResult(await api.get(`/audit/verify?${params}`)));
    } catch (err) {
      result.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  });
  return el(
    "section",
    { class: "card stack", "aria-label": "Verify the audit chain" },
    el("h2", {}, "Verify chain"),
    el("p", { class: "small muted" }, "Every row's hash covers its content and the previous row's hash, so an edited, deleted or reordered row breaks the chain. Rows cut from the end are caught by an anchor: a head hash you saved elsewhere earlier."),
    el("div", { class: "row" }, Object.assign(field("Anchor", anchor), { style: "flex: 1; min-width: 280px" }), button),
    result,
  );
}

export async function render(root, ctx) {
  const main = pageShell(root, ctx, { crumbs: [{ label: "Administration", href: "#/admin" }, { label: "Audit log" }] });
  main.append(
    el(
      "div",
      { class: "page-head" },
      el("div", { class: "spacer" }, el("h1", {}, "Audit log"), el("p", { class: "subtitle" }, "Every sign-in, change, export and read of image data: who, what, when and from where. Reads are recorded once per user, image and kind within a few minutes.")),
    ),
  );
  if (ctx.me.role !== "admin") {
    main.append(errorBox("The audit log is for administrators."));
    return;
  }
  let actions = [];
  try {
    actions = await api.get("/audit/actions");
  } catch (err) {
    main.append(errorBox(err));
    return;
  }
  let state = { ...DEFAULTS };
  let request = 0;
  const actor = input({ placeholder: "Username", testid: "audit-filter-actor", "aria-label": "Actor" });
  const actionOptions = [{ value: "", label: "All actions" }, ...PREFIXES.filter((p) => p.endsWith(".")).map((p) => ({ value: p, label: `${p}*` })), ...actions.map((a) => ({ value: a, label: a }))];
  const action = select(actionOptions, { testid: "audit-filter-action", "aria-label": "Action" });
  const project = input({ type: "number", min: 1, placeholder: "Id", testid: "audit-filter-project", "aria-label": "Project id" });
  const since = input({ type: "datetime-local", testid: "audit-filter-since", "aria-label": "From" });
  const until = input({ type: "datetime-local", testid: "audit-filter-until", "aria-label": "Before" });
  const pageSize = select([25, 50, 100, 200].map((n) => ({ value: n, label: `${n} per page` })), { value: state.limit, "aria-label": "Page size" });
  const results = el("div", { "aria-live": "polite" });
  const pager = el("div", { class: "pager" });

  const update = (changes) => {
    state = { ...state, ...changes, offset: changes.offset ?? 0 };
    load();
  };
  const apply = () => update({ actor: actor.value.trim(), action: action.value, project: project.value, since: toIso(since.value), until: toIso(until.value) });
  for (const control of [action, since, until]) control.addEventListener("change", apply);
  for (const control of [actor, project]) control.addEventListener("keydown", (ev) => ev.key === "Enter" && apply());
  pageSize.addEventListener("change", () => update({ limit: Number(pageSize.value) }));

  async function load() {
    const mine = ++request;
    if (!results.firstChild) results.append(spinner("Loading the audit log…"));
    results.setAttribute("aria-busy", "true");
    const params = new URLSearchParams({ limit: String(state.limit), offset: String(state.offset) });
    if (state.actor) params.set("actor", state.actor);
    if (state.action) params.set("action", state.action);
    if (state.project) params.set("project_id", state.project);
    if (state.since) params.set("since", state.since);
    if (state.until) params.set("until", state.until);
    let page;
    try {
      page = await api.get(`/audit?${params}`);
    } catch (err) {
      if (mine === request) results.replaceChildren(errorBox(err, load));
      return;
    } finally {
      if (mine === request) results.removeAttribute("aria-busy");
    }
    if (mine !== request) return;
    pager.replaceChildren();
    if (!page.total) {
      results.replaceChildren(emptyState("No events match these filters."));
      return;
    }
    const head = el("tr", {}, ["#", "When", "Who", "Action", "Target", "Project", "From", "Details"].map((h) => el("th", {}, h)));
    results.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "table", testid: "audit-table" }, el("thead", {}, head), el("tbody", {}, page.items.map(eventRow)))));
    const first = state.offset + 1;
    const last = state.offset + page.items.length;
    pager.append(
      el("span", { testid: "audit-range" }, `${first}–${last} of ${page.total}`),
      el("button", { type: "button", class: "btn btn-small", disabled: state.offset === 0, testid: "audit-prev", onclick: () => update({ offset: Math.max(0, state.offset - state.limit) }) }, "← Newer"),
      el("button", { type: "button", class: "btn btn-small", disabled: last >= page.total, testid: "audit-next", onclick: () => update({ offset: state.offset + state.limit }) }, "Older →"),
    );
  }

  main.append(
    verifyPanel(),
    el(
      "section",
      { class: "section" },
      el("h2", {}, "Events"),
      el(
        "div",
        { class: "filters" },
        field("Who", actor),
        field("Action", action),
        Object.assign(field("Project", project), { style: "min-width: 90px; max-width: 110px" }),
        field("From", since),
        field("Before", until),
        field("Show", pageSize),
        el("button", { type: "button", class: "btn", testid: "audit-apply", onclick: apply }, "Apply"),
      ),
      results,
      pager,
    ),
  );
  load();
}
