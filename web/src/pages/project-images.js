// The project's images: filters (status, modality, name), sorting, pagination, and a
// table or grid with lazy-loaded thumbnails. Clicking an image opens #/images/{id}.
// Filter state is kept per project in sessionStorage, so "back" from the workspace
// returns to the same view.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { field, input, select } from "../components/form.js";
import { formatDate, formatShape } from "../components/format.js";
import { STATUSES, statusBadge } from "../components/status.js";

const MODALITIES = [
  ["CT", "CT"], ["MR", "MR"], ["CR", "CR (computed radiography)"], ["DX", "DX (digital X-ray)"],
  ["MG", "MG (mammography)"], ["US", "US (ultrasound)"], ["XA", "XA (angiography)"],
  ["RF", "RF (fluoroscopy)"], ["NM", "NM (nuclear medicine)"], ["PT", "PT (PET)"],
  ["ES", "ES (endoscopy)"], ["OP", "OP (ophthalmic photo)"], ["XC", "XC (photograph)"],
  ["SM", "SM (microscopy)"], ["OT", "OT (other)"],
];
const SORTS = [
  { value: "id", label: "Oldest first" },
  { value: "-id", label: "Newest first" },
  { value: "name", label: "Name A–Z" },
  { value: "-name", label: "Name Z–A" },
  { value: "status", label: "Status" },
];
const DEFAULTS = { status: "", modality: "", q: "", sort: "id", view: "table", limit: 50, offset: 0 };

function thumb(image) {
  const img = el("img", {
    src: `/api/images/${image.id}/thumbnail.png`,
    alt: `Thumbnail of ${image.name}`,
    loading: "lazy",
    decoding: "async",
    testid: "thumbnail",
  });
  img.addEventListener("error", () => img.replaceWith(el("span", { class: "small muted" }, "no preview")));
  return el("div", { class: "thumb" }, img);
}

function sortHeader(label, key, state, onSort) {
  const active = state.sort.replace("-", "") === key;
  const desc = state.sort.startsWith("-");
  const th = el("th", { class: "sortable", "aria-sort": active ? (desc ? "descending" : "ascending") : "none" });
  th.append(el("button", { type: "button", onclick: () => onSort(key) }, label));
  return th;
}

function tableView(items, state, onSort, open) {
  const head = el(
    "tr",
    {},
    el("th", { class: "thumb-cell" }, el("span", { class: "sr-only" }, "Thumbnail")),
    sortHeader("Name", "name", state, onSort),
    el("th", {}, "Modality"),
    el("th", { title: "planes × rows × columns" }, "Dimensions"),
    sortHeader("Status", "status", state, onSort),
    sortHeader("Added", "created", state, onSort),
  );
  const rows = items.map((im) =>
    el(
      "tr",
      { class: "clickable", testid: "image-row", dataset: { imageId: im.id, status: im.status }, onclick: () => open(im) },
      el("td", { class: "thumb-cell" }, thumb(im)),
      el("td", {}, el("a", { class: "image-name", href: `#/images/${im.id}`, onclick: (e) => e.stopPropagation() }, im.name)),
      el("td", {}, im.modality),
      el("td", { class: "mono" }, formatShape(im)),
      el("td", {}, statusBadge(im.status)),
      el("td", { class: "small muted" }, formatDate(im.created_at)),
    ),
  );
  return el("div", { class: "table-wrap" }, el("table", { class: "table" }, el("thead", {}, head), el("tbody", {}, rows)));
}

function gridView(items) {
  return el(
    "div",
    { class: "image-grid" },
    items.map((im) =>
      el(
        "a",
        { class: "image-tile", href: `#/images/${im.id}`, testid: "image-row", dataset: { imageId: im.id, status: im.status }, title: im.name },
        thumb(im),
        el(
          "div",
          { class: "tile-body" },
          el("span", { class: "tile-name" }, im.name),
          el("div", { class: "row small muted" }, `${im.modality} · ${formatShape(im)}`, el("span", { class: "spacer" }), statusBadge(im.status)),
        ),
      ),
    ),
  );
}

export function mountImages(container, env) {
  const { project, ctx, bus } = env;
  const key = `medlabel:images:${project.id}`;
  let state = { ...DEFAULTS, ...JSON.parse(sessionStorage.getItem(key) || "{}") };
  let request = 0;
  let searchTimer = null;

  const status = select([{ value: "", label: "All statuses" }, ...STATUSES], { value: state.status, testid: "filter-status", "aria-label": "Status" });
  const modality = select([{ value: "", label: "All modalities" }, ...MODALITIES.map(([value, label]) => ({ value, label }))], { value: state.modality, testid: "filter-modality", "aria-label": "Modality" });
  const search = input({ type: "search", placeholder: "Name contains…", value: state.q, testid: "filter-q", "aria-label": "Search by name" });
  const sort = select(SORTS, { value: state.sort, testid: "sort", "aria-label": "Sort" });
  const pageSize = select([25, 50, 100, 200].map((n) => ({ value: n, label: `${n} per page` })), { value: state.limit, "aria-label": "Page size" });
  const viewButtons = ["table", "grid"].map((v) =>
    el("button", { type: "button", class: "btn", "aria-pressed": String(state.view === v), testid: `view-${v}`, onclick: () => update({ view: v }, false) }, v === "table" ? "List" : "Grid"),
  );
  const results = el("div", { "aria-live": "polite" });
  const pager = el("div", { class: "pager" });

  function update(changes, resetOffset = true) {
    state = { ...state, ...changes };
    if (resetOffset) state.offset = 0;
    sessionStorage.setItem(key, JSON.stringify(state));
    if (sort.value !== state.sort) sort.value = state.sort;
    viewButtons.forEach((b, i) => b.setAttribute("aria-pressed", String(["table", "grid"][i] === state.view)));
    load();
  }
  status.addEventListener("change", () => update({ status: status.value }));
  modality.addEventListener("change", () => update({ modality: modality.value }));
  sort.addEventListener("change", () => update({ sort: sort.value }));
  pageSize.addEventListener("change", () => update({ limit: Number(pageSize.value) }));
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => update({ q: search.value.trim() }), 250);
  });
  const clearFilters = () => {
    status.value = "";
    modality.value = "";
    search.value = "";
    update({ status: "", modality: "", q: "" });
  };

  async function load() {
    const mine = ++request;
    if (!results.firstChild) results.append(spinner("Loading images…"));
    results.setAttribute("aria-busy", "true");
    const params = new URLSearchParams({ sort: state.sort, limit: String(state.limit), offset: String(state.offset) });
    if (state.status) params.set("status", state.status);
    if (state.modality) params.set("modality", state.modality);
    if (state.q) params.set("q", state.q);
    let page;
    try {
      page = await api.get(`/projects/${project.id}/images?${params}`);
    } catch (err) {
      if (mine === request) results.replaceChildren(errorBox(err, load));
      return;
    } finally {
      if (mine === request) results.removeAttribute("aria-busy");
    }
    if (mine !== request) return;
    if (page.total > 0 && !page.items.length && state.offset > 0) {
      state.offset = Math.max(0, Math.floor((page.total - 1) / state.limit) * state.limit);
      return load();
    }
    renderPage(page);
  }

  function renderPage(page) {
    const filtered = state.status || state.modality || state.q;
    pager.replaceChildren();
    if (!page.total) {
      const action = filtered
        ? el("button", { type: "button", class: "btn", onclick: clearFilters }, "Clear filters")
        : env.isReviewer
          ? el("button", { type: "button", class: "btn btn-primary", onclick: () => env.showTab("import") }, "Import images")
          : null;
      const text = filtered ? "No images match these filters." : env.isReviewer ? "No images yet — import some." : "No images yet — a reviewer has to import some.";
      results.replaceChildren(emptyState(text, action));
      return;
    }
    const open = (im) => ctx.navigate(`#/images/${im.id}`);
    // Toggle against the current state (the header may be clicked again before re-rendering).
    const onSort = (key) => update({ sort: state.sort === key ? `-${key}` : key });
    results.replaceChildren(state.view === "grid" ? gridView(page.items) : tableView(page.items, state, onSort, open));
    const first = state.offset + 1;
    const last = state.offset + page.items.length;
    const go = (offset) => {
      state.offset = offset;
      sessionStorage.setItem(key, JSON.stringify(state));
      load();
    };
    pager.append(
      el("span", { testid: "image-range" }, `${first}–${last} of ${page.total}`),
      el("button", { type: "button", class: "btn btn-small", disabled: state.offset === 0, testid: "page-prev", onclick: () => go(Math.max(0, state.offset - state.limit)) }, "← Previous"),
      el("button", { type: "button", class: "btn btn-small", disabled: last >= page.total, testid: "page-next", onclick: () => go(state.offset + state.limit) }, "Next →"),
    );
  }

  container.append(
    el(
      "div",
      { class: "filters" },
      field("Status", status),
      field("Modality", modality),
      Object.assign(field("Name", search), { style: "flex: 1; min-width: 200px" }),
      field("Sort", sort),
      field("Show", pageSize),
      el("div", { class: "btn-group", role: "group", "aria-label": "View" }, viewButtons),
    ),
    results,
    pager,
  );
  const reload = () => load();
  bus.addEventListener("images-changed", reload);
  load();
  return () => {
    clearTimeout(searchTimer);
    bus.removeEventListener("images-changed", reload);
  };
}
