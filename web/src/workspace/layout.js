// The workspace's DOM: top bar (save, submit, next), view controls, tool palette, the
// viewer with its overlay, a status bar with the slice slider, and the side panel.
import { h, button } from "./ui.js";
import { icon } from "./icons.js";
import { keyLabel, TOOLS } from "./tools.js";
import { renderHeader } from "../components/header.js";

const FILTER_NAMES = {
  "": "No filter",
  mean: "Smooth: mean",
  median: "Smooth: median",
  gaussian: "Smooth: Gaussian",
  equalize: "Histogram equalisation",
  clahe: "CLAHE",
  sharpen: "Sharpen",
  edges: "Edges",
};

/** A collapsible side-panel section: {el (details), body}. */
export function section(title, testid, open = true) {
  const body = h("div", { class: "ws-section-body" });
  const el = h(
    "details",
    { class: "ws-section", open, dataset: testid ? { testid } : undefined },
    h("summary", {}, title),
    body,
  );
  return { el, body };
}

export function buildLayout(root, { image, project, meta, ctx }) {
  const r = {};
  const is3D = image.shape[0] > 1;
  const isColour = image.channels > 1;

  // ---- top bar: the app's header (brand, breadcrumbs, user menu) with our actions -------
  r.state = h("span", { class: "ws-badge", dataset: { testid: "annotation-state" } }, "new");
  r.saveStatus = h(
    "span",
    { class: "ws-save-status", role: "status", dataset: { testid: "save-status" } },
    "",
  );
  r.undo = button(icon("undo"), { testid: "undo", title: "Undo (Ctrl+Z)", cls: "ws-icon-btn" });
  r.redo = button(icon("redo"), {
    testid: "redo",
    title: "Redo (Ctrl+Shift+Z)",
    cls: "ws-icon-btn",
  });
  r.save = button("Save", {
    testid: "save-annotation",
    title: "Save a revision (Ctrl+S)",
    cls: "ws-btn ws-primary",
  });
  r.submit = button("Submit for review", {
    testid: "submit-annotation",
    title: "Save and submit for review",
  });
  r.next = button("Next image →", {
    testid: "next-image",
    title: "Next image from your queue: returned work first (Alt+N)",
  });
  r.help = button(icon("help"), {
    testid: "help",
    title: "Keyboard shortcuts (?)",
    cls: "ws-icon-btn",
  });
  const actions = h(
    "div",
    { class: "ws-actions" },
    r.state,
    r.saveStatus,
    r.undo,
    r.redo,
    r.save,
    r.submit,
    r.next,
    r.help,
  );
  const topbar = renderHeader(ctx, {
    crumbs: [
      { label: project?.name || "Project", href: `#/projects/${image.project_id}` },
      { label: image.name },
    ],
  });
  topbar.classList.add("ws-topbar");
  topbar.insertBefore(actions, topbar.querySelector(".main-nav"));

  // ---- view controls --------------------------------------------------------------------
  r.viewButtons = {};
  const views = [
    ["axial", "Axial", "A"],
    ["coronal", "Coronal", "C"],
    ["sagittal", "Sagittal", "S"],
    ["multiplanar", "MPR", "X"],
  ];
  const viewGroup = h(
    "div",
    { class: "ws-segmented", role: "group", "aria-label": "View" },
    views.map(([id, name, key]) => {
      const b = button(name, {
        testid: `view-${id}`,
        title: `${name} view (${key})`,
        cls: "ws-seg",
      });
      b.disabled = !is3D && id !== (image.context?.native_view || "axial");
      r.viewButtons[id] = b;
      return b;
    }),
  );
  r.preset = h("select", {
    class: "ws-select",
    "aria-label": "Window preset",
    dataset: { testid: "window-preset" },
  });
  r.preset.append(
    h("option", { value: "default" }, "Window: default"),
    h("option", { value: "auto" }, "Window: auto"),
  );
  if (image.modality === "CT") {
    for (const name of Object.keys(meta.window_presets || {})) {
      r.preset.append(h("option", { value: name }, `CT: ${name.replace("_", " ")}`));
    }
  }
  r.preset.disabled = isColour;
  r.filter = h("select", {
    class: "ws-select",
    "aria-label": "View filter",
    dataset: { testid: "view-filter" },
  });
  for (const kind of ["", ...(meta.filters || [])])
    r.filter.append(h("option", { value: kind }, FILTER_NAMES[kind] || kind));
  r.filterParam = h("input", {
    type: "number",
    class: "ws-num",
    "aria-label": "Filter strength",
    dataset: { testid: "filter-param" },
    hidden: true,
  });
  r.labelSelect = h("select", {
    class: "ws-select ws-label-select",
    "aria-label": "Active label",
    dataset: { testid: "label-select" },
  });
  r.brushSize = h("input", {
    type: "range",
    min: 1,
    max: 30,
    value: 3,
    "aria-label": "Brush size",
    dataset: { testid: "brush-size" },
  });
  r.brushSizeText = h("span", { class: "ws-muted ws-num-text" }, "3 vox");
  r.brushGroup = h(
    "label",
    { class: "ws-inline", title: "Brush size in voxels ([ and ])" },
    "Size",
    r.brushSize,
    r.brushSizeText,
  );
  r.fillMin = h("input", {
    type: "number",
    class: "ws-num",
    step: "any",
    "aria-label": "Fill minimum",
    dataset: { testid: "fill-min" },
  });
  r.fillMax = h("input", {
    type: "number",
    class: "ws-num",
    step: "any",
    "aria-label": "Fill maximum",
    dataset: { testid: "fill-max" },
  });
  r.fill2D = h("input", {
    type: "checkbox",
    checked: true,
    "aria-label": "Fill on this slice only",
  });
  r.fillGroup = h(
    "div",
    {
      class: "ws-inline",
      hidden: true,
      title: "Flood fill: connected voxels within this intensity range",
    },
    "Fill",
    r.fillMin,
    "–",
    r.fillMax,
    h("label", { class: "ws-inline", title: "Fill on this slice only" }, r.fill2D, "2D"),
  );
  const controls = h(
    "div",
    { class: "ws-controls" },
    viewGroup,
    r.preset,
    r.filter,
    r.filterParam,
    h("span", { class: "ws-divider" }),
    r.labelSelect,
    r.brushGroup,
    r.fillGroup,
  );

  // ---- tool palette ---------------------------------------------------------------------
  r.toolButtons = {};
  const palette = h(
    "nav",
    { class: "ws-palette", "aria-label": "Tools" },
    TOOLS.map((t) => {
      const b = button(icon(t.icon, 20), {
        testid: `tool-${t.id}`,
        title: `${t.name} (${keyLabel(t)}) — ${t.hint}`,
        cls: "ws-tool",
      });
      b.setAttribute("aria-pressed", "false");
      r.toolButtons[t.id] = b;
      return b;
    }),
  );
  r.propagate = button(icon("propagate", 20), {
    testid: "tool-propagate",
    title: "Propagate (Shift+P) — the AI continues this slice's mask to the next slices",
    cls: "ws-tool ws-tool-action",
  });
  r.propagate.setAttribute("aria-pressed", "false");
  palette.append(h("span", { class: "ws-palette-gap" }), r.propagate);

  // ---- viewer -----------------------------------------------------------------------------
  r.canvas = h("canvas", {
    class: "ws-canvas",
    dataset: { testid: "viewer-canvas" },
    "aria-label": "Image viewer",
  });
  r.overlay = h("canvas", { class: "ws-overlay", "aria-hidden": "true" });
  r.preview = h("img", { class: "ws-preview", alt: "", hidden: true });
  r.progress = h(
    "div",
    { class: "ws-progress", hidden: true },
    h("div", { class: "ws-progress-bar" }),
    h("span", {}, "Loading image…"),
  );
  r.orientationNote = h(
    "div",
    { class: "ws-orientation-note", hidden: image.geometry_known },
    "Patient orientation unknown",
  );
  r.stage = h(
    "div",
    { class: "ws-stage" },
    r.canvas,
    r.overlay,
    r.preview,
    r.progress,
    r.orientationNote,
  );

  // ---- status bar ---------------------------------------------------------------------------
  r.slider = h("input", {
    type: "range",
    min: 0,
    max: 0,
    value: 0,
    class: "ws-slider",
    "aria-label": "Slice",
    dataset: { testid: "slice-slider" },
  });
  r.sliceText = h("span", { class: "ws-num-text", dataset: { testid: "slice-text" } }, "1 / 1");
  r.windowText = h("span", { class: "ws-num-text", dataset: { testid: "window-text" } }, "");
  r.cursorText = h(
    "span",
    { class: "ws-num-text ws-cursor", dataset: { testid: "cursor-text" } },
    "",
  );
  r.zoomText = h("span", { class: "ws-num-text" }, "100%");
  const facts = `${image.modality} · ${image.shape.slice(is3D ? 0 : 1).join("×")}${isColour ? " · RGB" : ""}`;
  const status = h(
    "div",
    { class: "ws-statusbar" },
    h("label", { class: "ws-inline ws-grow" }, "Slice", r.slider, r.sliceText),
    r.windowText,
    r.zoomText,
    r.cursorText,
    h(
      "span",
      {
        class: "ws-muted",
        dataset: { testid: "image-facts" },
        title: "Modality and (planes ×) rows × columns",
      },
      facts,
    ),
  );

  // ---- side panel ---------------------------------------------------------------------------
  r.sections = {
    labels: section("Labels", "labels-panel"),
    tools: section("Tools", "classical-tools", false),
    classes: section("Classification", "classes-panel"),
    notes: section("Notes", "notes-panel"),
    objects: section("Boxes, points & measurements", "objects-panel"),
    stats: section("Region statistics", "stats-panel", false),
    history: section("Revisions", "history-panel"),
    dicom: section("DICOM header", "dicom-panel", false),
  };
  r.opacity = h("input", {
    type: "range",
    min: 0,
    max: 100,
    value: 60,
    "aria-label": "Overlay opacity",
    dataset: { testid: "overlay-opacity" },
  });
  r.labelsBody = h("div");
  r.sections.labels.body.append(
    h(
      "label",
      { class: "ws-inline ws-opacity", title: "Opacity of masks, boxes and points" },
      "Overlay opacity",
      r.opacity,
    ),
    r.labelsBody,
  );
  for (const { el } of Object.values(r.sections)) {
    el.addEventListener(
      "toggle",
      () => el.open && requestAnimationFrame(() => el.scrollIntoView({ block: "nearest" })),
    );
  }
  const side = h(
    "aside",
    { class: "ws-side", "aria-label": "Annotation panels" },
    Object.values(r.sections).map((s) => s.el),
  );

  const viewerCol = h("div", { class: "ws-viewer-col" }, controls, r.stage, status);
  const main = h("div", { class: "ws-main" }, palette, viewerCol, side);
  r.root = h("div", { class: "ws-root", dataset: { testid: "workspace" } }, topbar, main);
  root.append(r.root);
  return r;
}
