// Reader study (reviewers): how many independent readers each image needs and whether
// they are blinded, dealing images to readers ("Distribute"), progress per reader, and the
// assignments per image with reassign / unassign / assign.
// Also `queueCard` for the project summary: the images you still owe, returned work first,
// and "Start reading" (POST /queue/next claims the next image when you owe nothing).
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { checkbox, field, input, select } from "../components/form.js";
import { plural } from "../components/format.js";
import { confirmDialog, formDialog } from "../components/modal.js";
import { showError, toast } from "../components/toast.js";

const MAX_READERS = 20;
const PAGE = 50;

// What each reading state is called here (assignment.state: null = not started).
const READING = {
  none: { label: "Not started", cls: "reading-none" },
  draft: { label: "In progress", cls: "reading-draft" },
  submitted: { label: "Submitted", cls: "reading-submitted" },
  approved: { label: "Approved", cls: "reading-approved" },
  rejected: { label: "Returned", cls: "reading-rejected" },
};
const readingOf = (state) => READING[state || "none"] || { label: state, cls: "reading-none" };

// Progress columns: key in the API row, header, and the bar segment class.
const PROGRESS_COLS = [
  { key: "assigned", label: "Assigned" },
  { key: "not_started", label: "Not started", seg: "reading-none" },
  { key: "started", label: "In progress", seg: "reading-draft" },
  { key: "rejected", label: "Returned", seg: "reading-rejected" },
  { key: "submitted", label: "Submitted", seg: "reading-submitted" },
  { key: "approved", label: "Approved", seg: "reading-approved" },
  { key: "remaining", label: "Remaining" },
];

// A stacked bar of a reader's assignments by state (approved, submitted, returned, ...).
function readerBar(row) {
  const total = row.assigned || 0;
  const done = (row.submitted || 0) + (row.approved || 0);
  const bar = el("div", { class: "progress-bar", role: "img", "aria-label": `${done} of ${total} readings submitted or approved` });
  for (const key of ["approved", "submitted", "rejected", "started"]) {
    const n = row[key] || 0;
    const col = PROGRESS_COLS.find((c) => c.key === key);
    if (n && total) bar.append(el("span", { class: ["progress-seg", col.seg], style: { width: `${(100 * n) / total}%` }, title: `${col.label}: ${n}` }));
  }
  const pct = total ? Math.round((100 * done) / total) : 0;
  return el("div", { class: "reader-progress" }, bar, el("span", { class: "small muted" }, total ? `${pct}%` : "—"));
}

// ---- my queue (project summary) ----------------------------------------------------------
export function queueCard(project, ctx, { hideWhenEmpty = false } = {}) {
  const card = el("section", { class: "card stack queue-card", testid: "my-queue" }, spinner("Loading your queue…"));
  const start = el("button", { type: "button", class: "btn btn-primary", testid: "start-reading" }, "Start reading →");
  start.addEventListener("click", async () => {
    start.disabled = true;
    try {
      const item = await api.post(`/projects/${project.id}/queue/next`);
      if (!item) {
        toast("Nothing left for you to read in this project.", { kind: "info" });
        load();
      } else {
        ctx.navigate(`#/images/${item.image.id}`);
      }
    } catch (err) {
      showError(err);
      start.disabled = false;
    }
  });

  function item(it) {
    const returned = it.reason === "returned";
    return el(
      "li",
      { testid: "queue-item", dataset: { imageId: it.image.id, reason: it.reason } },
      el("a", { href: `#/images/${it.image.id}`, class: "image-name" }, it.image.name),
      " ",
      el("span", { class: ["badge", returned ? "reading-rejected" : it.annotation_state ? "reading-draft" : "reading-none"] }, returned ? "Returned — fix it" : it.annotation_state ? "In progress" : "Assigned"),
    );
  }

  async function load() {
    let queue;
    try {
      queue = await api.get(`/projects/${project.id}/queue`);
    } catch (err) {
      card.replaceChildren(errorBox(err, load));
      return;
    }
    const owed = queue.items.length;
    card.hidden = hideWhenEmpty && !owed;
    const returned = queue.items.filter((i) => i.reason === "returned").length;
    start.disabled = !owed && !queue.open_images;
    const line = owed
      ? `You owe ${plural(owed, "image")}${returned ? `, ${returned} returned for fixes` : ""}.`
      : queue.open_images
        ? `Nothing assigned to you; ${plural(queue.open_images, "image")} still need readers — Start reading takes the next one.`
        : "You are all caught up.";
    const shown = queue.items.slice(0, 5);
    card.replaceChildren(
      el(
        "div",
        { class: "row" },
        el("h2", { class: "spacer" }, "My queue"),
        el("span", { class: "muted", testid: "queue-count", dataset: { owed: owed, returned: returned, open: queue.open_images } }, owed ? `${owed} owed` : ""),
        start,
      ),
      el("p", { class: "small" }, line),
      shown.length
        ? el(
            "ul",
            { class: "queue-list" },
            shown.map(item),
            owed > shown.length ? el("li", { class: "muted small" }, `… and ${owed - shown.length} more`) : null,
          )
        : "", // replaceChildren would print null
    );
  }
  load();
  return card;
}

// ---- the reader-study tab ----------------------------------------------------------------
export function mountStudy(container, env) {
  const { project, bus } = env;
  const pid = project.id;
  let members = [];
  let assignments = [];
  let page = 0;
  let filterUser = "";
  let filterState = "";
  let want = project.readers_per_image || 1; // readers per image, as last loaded

  // settings
  const readers = input({ type: "number", min: 1, max: MAX_READERS, step: 1, value: String(project.readers_per_image ?? 1), testid: "readers-per-image", required: true, style: "width: 110px" });
  const blindedBox = checkbox("Blinded — readers see only their own work (reviewers see everyone's)", { testid: "blinded", checked: Boolean(project.blinded) });
  const save = el("button", { type: "submit", class: "btn btn-primary", testid: "study-save" }, "Save settings");
  const settingsMsg = el("div", { testid: "study-settings-message", "aria-live": "polite" });
  const settings = el(
    "form",
    { class: "card stack", testid: "study-settings", novalidate: true, "aria-label": "Reader study settings" },
    el("h2", {}, "Reader study"),
    el(
      "div",
      { class: "row study-settings-row" },
      field("Readers per image", readers, { hint: `1 to ${MAX_READERS}. Lowering it keeps the readers images already have.` }),
      blindedBox,
    ),
    el("div", { class: "row" }, save),
    settingsMsg,
  );
  settings.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    settingsMsg.replaceChildren();
    const n = Number(readers.value);
    if (readers.value.trim() === "" || !Number.isInteger(n) || n < 1 || n > MAX_READERS) {
      settingsMsg.replaceChildren(errorBox(`Readers per image must be a whole number from 1 to ${MAX_READERS}.`));
      readers.setAttribute("aria-invalid", "true");
      readers.focus();
      return;
    }
    readers.removeAttribute("aria-invalid");
    save.disabled = true;
    try {
      const updated = await api.patch(`/projects/${pid}`, { readers_per_image: n, blinded: blindedBox.querySelector("input").checked });
      Object.assign(env.project, { readers_per_image: updated.readers_per_image, blinded: updated.blinded });
      want = updated.readers_per_image;
      settingsMsg.replaceChildren(
        el("div", { class: "alert alert-success", testid: "study-saved" }, el("span", {}, `Saved: ${plural(updated.readers_per_image, "reader")} per image, ${updated.blinded ? "blinded" : "not blinded"}.`)),
      );
      load();
    } catch (err) {
      settingsMsg.replaceChildren(errorBox(err));
    } finally {
      save.disabled = false;
    }
  });

  // distribute
  const readerPicks = el("div", { class: "row", testid: "distribute-readers" });
  const distributeButton = el("button", { type: "button", class: "btn btn-primary", testid: "distribute" }, "Distribute");
  const distributeMsg = el("div", { "aria-live": "polite" });
  const distribute = el(
    "section",
    { class: "card stack", "aria-label": "Distribute images" },
    el("div", { class: "row" }, el("h2", { class: "spacer" }, "Distribute images"), distributeButton),
    el("p", { class: "small muted" }, "Fills every image's free reader slots, dealing images round-robin to the readers ticked below (the one with the fewest readings first), so each image gets its readers per image. Existing assignments are kept."),
    readerPicks,
    distributeMsg,
  );
  distributeButton.addEventListener("click", async () => {
    const ids = [...readerPicks.querySelectorAll("input:checked")].map((i) => Number(i.value));
    if (!ids.length) {
      distributeMsg.replaceChildren(errorBox("Tick at least one reader."));
      return;
    }
    distributeButton.disabled = true;
    distributeMsg.replaceChildren(spinner("Distributing…"));
    try {
      const result = await api.post(`/projects/${pid}/assignments/distribute`, { user_ids: ids });
      const short = result.short_images.length;
      distributeMsg.replaceChildren(
        el(
          "div",
          { class: ["alert", short ? "alert-warn" : "alert-success"], testid: "distribute-result" },
          el("span", {}, `Created ${plural(result.created.length, "assignment")}.`, short ? ` ${plural(short, "image")} still lack readers: tick more readers or lower the readers per image.` : " Every image has its readers."),
        ),
      );
      bus.dispatchEvent(new Event("assignments-changed"));
      load();
    } catch (err) {
      distributeMsg.replaceChildren(errorBox(err));
    } finally {
      distributeButton.disabled = false;
    }
  });

  const totals = el("div", { class: "stat-row", testid: "study-totals" });
  const progressBox = el("div", {}, spinner("Loading progress…"));
  const assignmentsBox = el("div", {}, spinner("Loading assignments…"));
  const filters = el("div", { class: "filters" });

  function renderReaderPicks() {
    const eligible = members.filter((m) => m.role === "annotator" || m.role === "reviewer");
    const previous = new Set([...readerPicks.querySelectorAll("input")].map((i) => (i.checked ? i.value : null)).filter(Boolean));
    const first = !readerPicks.childElementCount;
    readerPicks.replaceChildren(
      ...(eligible.length
        ? eligible.map((m) =>
            checkbox(`${m.user.username} (${m.role})`, {
              value: String(m.user.id),
              checked: first ? m.role === "annotator" : previous.has(String(m.user.id)),
              testid: "distribute-reader",
              dataset: { username: m.user.username },
            }),
          )
        : [el("span", { class: "muted" }, "No annotators or reviewers in this project yet — add members first (Admin → Users and membership).")]),
    );
    distributeButton.disabled = !eligible.length;
  }

  function renderProgress(p) {
    totals.replaceChildren(
      stat(p.images, "images", "total-images"),
      stat(p.readers_per_image, "readers per image", "total-readers"),
      stat(p.images_complete, "images fully read", "total-complete"),
      stat(p.images_approved, "images approved", "total-approved"),
      stat(p.open_slots, "open reader slots", "total-open"),
    );
    // viewers cannot read: list them only if they still hold readings from an earlier role
    const users = p.users.filter((u) => u.role !== "viewer" || u.assigned);
    if (!users.length) {
      progressBox.replaceChildren(emptyState("Nobody reads images in this project yet — Distribute deals them out."));
      return;
    }
    const sum = Object.fromEntries(PROGRESS_COLS.map((c) => [c.key, users.reduce((a, u) => a + (u[c.key] || 0), 0)]));
    const row = (u, foot) =>
      el(
        "tr",
        { testid: foot ? "progress-total" : "progress-row", dataset: foot ? {} : { username: u.username, userId: u.user_id } },
        el("td", {}, foot ? el("strong", {}, "All readers") : el("strong", {}, u.username), foot || u.role ? null : el("span", { class: "muted small" }, " (no longer a member)")),
        el("td", { class: "muted" }, foot ? "" : u.role || "—"),
        PROGRESS_COLS.map((c) => el("td", { class: "num", dataset: { col: c.key } }, String(u[c.key] ?? 0))),
        el("td", {}, readerBar(u)),
      );
    progressBox.replaceChildren(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { class: "table", testid: "progress-table" },
          el("thead", {}, el("tr", {}, el("th", {}, "Reader"), el("th", {}, "Role"), PROGRESS_COLS.map((c) => el("th", { class: "num" }, c.label)), el("th", { style: "min-width: 160px" }, "Progress"))),
          el("tbody", {}, users.map((u) => row(u, false))),
          users.length > 1 ? el("tfoot", {}, row(sum, true)) : null,
        ),
      ),
      el(
        "ul",
        { class: "legend" },
        ["approved", "submitted", "rejected", "started"].map((k) => {
          const col = PROGRESS_COLS.find((c) => c.key === k);
          return el("li", {}, el("span", { class: ["dot", col.seg] }), col.label);
        }),
      ),
    );
  }

  // ---- assignments, grouped per image ----
  function eligibleFor(imageId, except) {
    const reading = new Set(assignments.filter((a) => a.image_id === imageId).map((a) => a.user_id));
    return members.filter((m) => (m.role === "annotator" || m.role === "reviewer") && m.user.is_active !== false && !reading.has(m.user.id) && m.user.id !== except);
  }

  async function reassign(a) {
    const options = eligibleFor(a.image_id, a.user_id);
    if (!options.length) {
      toast("No other annotator or reviewer is free to read this image.", { kind: "warn" });
      return;
    }
    const pick = select(options.map((m) => ({ value: m.user.id, label: `${m.user.username} (${m.role})` })), { testid: "reassign-user" });
    const done = await formDialog({
      title: `Reassign ${a.image_name}`,
      submitLabel: "Reassign",
      testid: "reassign-dialog",
      fields: [
        el("p", { class: "small muted" }, `From ${a.username}. ${a.state ? "Their started work moves to the new reader." : "They have not started it."}`),
        field("New reader", pick),
      ],
      submit: () => api.post(`/assignments/${a.id}/reassign`, { user_id: Number(pick.value) }),
    });
    if (done) {
      toast(`${a.image_name}: now read by ${done.username}`, { kind: "success" });
      load();
    }
  }

  async function unassign(a) {
    if (!(await confirmDialog(`Remove ${a.username} as a reader of ${a.image_name}?`, { confirmLabel: "Unassign", danger: true }))) return;
    try {
      await api.del(`/assignments/${a.id}`);
      toast(`${a.username} no longer reads ${a.image_name}`, { kind: "success" });
    } catch (err) {
      showError(err);
    }
    load();
  }

  async function assign(imageId, imageName) {
    const options = eligibleFor(imageId);
    if (!options.length) {
      toast("Every annotator and reviewer reads this image already.", { kind: "warn" });
      return;
    }
    const pick = select(options.map((m) => ({ value: m.user.id, label: `${m.user.username} (${m.role})` })), { testid: "assign-user" });
    const done = await formDialog({
      title: `Add a reader to ${imageName}`,
      submitLabel: "Assign",
      testid: "assign-dialog",
      fields: [field("Reader", pick)],
      submit: () => api.post(`/projects/${pid}/assignments`, { user_id: Number(pick.value), image_ids: [imageId] }),
    });
    if (done) load();
  }

  function readerChip(a) {
    const r = readingOf(a.state);
    const finished = a.state === "submitted" || a.state === "approved";
    return el(
      "li",
      { class: "reader-chip", testid: "assignment", dataset: { username: a.username, state: a.state || "none", assignmentId: a.id } },
      el("span", { class: "reader-name" }, a.username),
      el("span", { class: ["badge", r.cls], testid: "reading-state" }, r.label),
      el(
        "button",
        { type: "button", class: "btn btn-small btn-ghost", testid: "reassign", disabled: finished, title: finished ? "Finished work stays with its reader" : `Give this reading to someone else`, onclick: () => reassign(a) },
        "Reassign",
      ),
      el(
        "button",
        { type: "button", class: "btn-icon", testid: "unassign", disabled: Boolean(a.annotation_id), "aria-label": `Unassign ${a.username}`, title: a.annotation_id ? "Started — reassign it instead" : "Unassign", onclick: () => unassign(a) },
        "×",
      ),
    );
  }

  function renderAssignments() {
    const byImage = new Map();
    for (const a of assignments) {
      if (!byImage.has(a.image_id)) byImage.set(a.image_id, { id: a.image_id, name: a.image_name, rows: [] });
      byImage.get(a.image_id).rows.push(a);
    }
    let images = [...byImage.values()];
    if (filterUser) images = images.filter((im) => im.rows.some((a) => String(a.user_id) === filterUser));
    if (filterState) images = images.filter((im) => im.rows.some((a) => (a.state || "none") === filterState && (!filterUser || String(a.user_id) === filterUser)));

    const users = [...new Map(assignments.map((a) => [a.user_id, a.username])).entries()].sort((x, y) => x[1].localeCompare(y[1]));
    const userSelect = select([{ value: "", label: "All readers" }, ...users.map(([id, name]) => ({ value: id, label: name }))], { value: filterUser, "aria-label": "Reader", testid: "assignments-user" });
    const stateSelect = select([{ value: "", label: "Any state" }, ...Object.entries(READING).map(([value, r]) => ({ value, label: r.label }))], { value: filterState, "aria-label": "Reading state", testid: "assignments-state" });
    userSelect.addEventListener("change", () => {
      filterUser = userSelect.value;
      page = 0;
      renderAssignments();
    });
    stateSelect.addEventListener("change", () => {
      filterState = stateSelect.value;
      page = 0;
      renderAssignments();
    });
    filters.replaceChildren(field("Reader", userSelect), field("State", stateSelect));

    if (!assignments.length) {
      assignmentsBox.replaceChildren(emptyState("No assignments yet. Distribute deals the images to readers; annotators can also take the next image from their queue."));
      return;
    }
    if (!images.length) {
      assignmentsBox.replaceChildren(emptyState("No image matches these filters."));
      return;
    }
    const pages = Math.ceil(images.length / PAGE);
    page = Math.min(page, pages - 1);
    const shown = images.slice(page * PAGE, (page + 1) * PAGE);
    const rows = shown.map((im) => {
      const short = want - im.rows.length;
      return el(
        "tr",
        { testid: "assignment-row", dataset: { imageId: im.id, imageName: im.name } },
        el("td", {}, el("a", { class: "image-name", href: `#/images/${im.id}` }, im.name)),
        el("td", { class: "num" }, el("span", { class: short > 0 ? "warn-text" : null }, `${im.rows.length}/${want}`)),
        el("td", {}, el("ul", { class: "reader-chips" }, im.rows.map(readerChip))),
        el("td", {}, short > 0 ? el("button", { type: "button", class: "btn btn-small", testid: "assign", onclick: () => assign(im.id, im.name) }, "+ Reader") : null),
      );
    });
    assignmentsBox.replaceChildren(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { class: "table", testid: "assignments-table" },
          el("thead", {}, el("tr", {}, el("th", {}, "Image"), el("th", { class: "num" }, "Readers"), el("th", {}, "Readings"), el("th", {}, el("span", { class: "sr-only" }, "Actions")))),
          el("tbody", {}, rows),
        ),
      ),
      pages > 1
        ? el(
            "div",
            { class: "pager" },
            el("span", {}, `${page * PAGE + 1}–${page * PAGE + shown.length} of ${images.length} images`),
            el("button", { type: "button", class: "btn btn-small", disabled: page === 0, onclick: () => { page -= 1; renderAssignments(); } }, "← Previous"),
            el("button", { type: "button", class: "btn btn-small", disabled: page >= pages - 1, onclick: () => { page += 1; renderAssignments(); } }, "Next →"),
          )
        : "",
    );
  }

  let seq = 0;
  async function load() {
    const mine = ++seq;
    try {
      const [m, p, a] = await Promise.all([api.get(`/projects/${pid}/members`), api.get(`/projects/${pid}/progress`), api.get(`/projects/${pid}/assignments`)]);
      if (mine !== seq) return;
      members = m;
      assignments = a;
      want = p.readers_per_image;
      renderReaderPicks();
      renderProgress(p);
      renderAssignments();
    } catch (err) {
      if (mine !== seq) return;
      progressBox.replaceChildren(errorBox(err, load));
      assignmentsBox.replaceChildren();
    }
  }

  container.append(
    el("div", { class: "two-col" }, settings, distribute),
    el("section", { class: "section stack" }, el("div", { class: "row" }, el("h2", { class: "spacer" }, "Progress"), el("button", { type: "button", class: "btn btn-small", testid: "study-refresh", onclick: () => load() }, "Refresh")), totals, progressBox),
    el("section", { class: "section stack" }, el("h2", {}, "Assignments"), filters, assignmentsBox),
  );
  const reload = () => load();
  const onShown = (ev) => ev.detail === "study" && load();
  bus.addEventListener("images-changed", reload);
  bus.addEventListener("tab-shown", onShown);
  load();
  return () => {
    bus.removeEventListener("images-changed", reload);
    bus.removeEventListener("tab-shown", onShown);
  };
}

function stat(value, label, testid) {
  return el("div", { class: "stat", testid }, el("strong", {}, String(value)), el("span", {}, label));
}
