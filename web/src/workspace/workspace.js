// The annotation workspace (#/images/:imageId): view an image and annotate it with masks,
// boxes, points, classes and notes; save revisions, autosave drafts, submit for review.
import { api } from "../api.js";
import { buildLayout } from "./layout.js";
import { Viewer } from "./viewer.js";
import { fetchWithProgress, preloadViewer } from "./loading.js";
import { History } from "./history.js";
import { ContentModel } from "./annotation.js";
import { Tools } from "./tools.js";
import { Overlay } from "./overlay.js";
import { Persistence } from "./persistence.js";
import { Controls } from "./controls.js";
import { LabelsPanel } from "./labels_panel.js";
import { renderClasses, NotesPanel, renderObjects } from "./content_panels.js";
import { StatsPanel, DicomPanel } from "./info_panels.js";
import { HistoryPanel } from "./history_panel.js";
import { installShortcuts, helpDialog } from "./shortcuts.js";
import { AiTools } from "./ai_tools.js";
import { installAiInput } from "./ai_input.js";
import { ClassicalPanel } from "./classical_panel.js";
import { Review } from "./review.js";
import * as session from "./session.js";
import { h, toast, formatTime, choose } from "./ui.js";
import { fmt } from "./geometry.js";
import { loadPendingProposals } from "./pending_proposals.js";
import { ModelProposals } from "./model_proposals.js";

const STYLESHEET = "/workspace/workspace.css";
const STATE_NAMES = {
  draft: "in progress",
  submitted: "submitted",
  approved: "approved",
  rejected: "rejected",
};

function loadStylesheet() {
  if (document.querySelector(`link[href="${STYLESHEET}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href: STYLESHEET }));
}

/** Start the big downloads at once, before the image's facts are known: the volume,
 * the server-rendered preview slice (native view, middle) and NiiVue itself. */
function startLoading(imageId) {
  const abort = new AbortController();
  const early = { abort, onProgress: null, timings: { start: Math.round(performance.now()) } };
  early.volume = fetchWithProgress(
    `/api/images/${imageId}/volume.nii`,
    (f) => early.onProgress?.(f),
    abort.signal,
  );
  early.volume.catch(() => {}); // awaited (and reported) in start()
  early.previewUrl = `/api/images/${imageId}/slice.png`;
  const preview = new Image();
  preview.onload = () => (early.timings.preview = Math.round(performance.now()));
  preview.src = early.previewUrl;
  preloadViewer();
  return early;
}

export async function mountWorkspace(root, ctx) {
  loadStylesheet();
  const imageId = ctx.params.imageId;
  const early = startLoading(imageId);
  const loading = h("div", { class: "ws-loading" }, "Opening image…");
  root.append(loading);
  let image, labels, meta, project;
  try {
    image = await api.get(`/images/${imageId}`);
    [labels, meta, project] = await Promise.all([
      api.get(`/projects/${image.project_id}/labels`),
      api.get("/meta"),
      api.get(`/projects/${image.project_id}`).catch(() => null),
    ]);
  } catch (err) {
    early.abort.abort();
    loading.replaceChildren(
      h("p", { class: "ws-error" }, `Cannot open image ${imageId}: ${err.message}`),
      h("a", { href: "#/" }, "Back to projects"),
    );
    return { unmount() {} };
  }
  loading.remove();
  const ws = createWorkspace(root, ctx, { image, labels, meta, project }, early);
  ws.start();
  return { unmount: () => ws.unmount() };
}

function createWorkspace(root, ctx, { image, labels, meta, project }, early) {
  const r = buildLayout(root, { image, project, meta, ctx });
  document.title = `${image.name} · medlabel`;
  const abort = early.abort;
  const users = new Map([[ctx.me.id, ctx.me.username]]);
  const measurements = [];
  const cleanups = [];

  const ws = {
    image,
    labels,
    meta,
    project,
    reviewer: project?.role === "reviewer", // reviewers (and admins) review and adjudicate
    me: ctx.me,
    r,
    navigate: ctx.navigate,
    selection: null,
    saving: false,
    labelByName: (name) => labels.find((l) => l.name === name) || null,
    isHidden: (name) => ws.labelsPanel.hidden.has(name),
    activeLabel: (kind) => ws.labelsPanel.activeLabel(kind),
    fillOptions: () => ws.controls.fillOptions(),
    userName: (id) =>
      id === null || id === undefined ? "unknown" : users.get(id) || `user #${id}`,
  };

  ws.viewer = new Viewer(r.canvas, image, {
    afterDraw: () => {
      ws.overlay.schedule();
      ws.review?.overlay.schedule();
      ws.modelProposals?.overlay.schedule();
      ws.controls.update();
    },
    onDrawingChanged: (action) => ws.tools.onDrawingChanged(action),
    onDragRelease: (p) => ws.tools.onDragRelease(p),
    onMeasurement: (m) => {
      measurements.push(m);
      renderObjects(ws, r.sections.objects.body, measurements);
    },
  });
  ws.history = new History({
    getBitmap: () => ws.viewer.nv?.drawBitmap || null,
    onMaskRestored: () => {
      ws.viewer.refreshDrawing();
      ws.persistence.changed({ mask: true });
    },
    applyContent: (snapshot) => ws.content.restore(snapshot),
  });
  ws.content = new ContentModel(ws.history);
  ws.tools = new Tools(ws);
  ws.overlay = new Overlay(r.overlay, ws);
  ws.persistence = new Persistence(ws);
  ws.controls = new Controls(ws, r);
  ws.labelsPanel = new LabelsPanel(ws, r.labelsBody, r.labelSelect);
  ws.notesPanel = new NotesPanel(ws, r.sections.notes.body);
  ws.statsPanel = new StatsPanel(ws, r.sections.stats.body);
  ws.dicomPanel = new DicomPanel(ws, r.sections.dicom);
  ws.historyPanel = new HistoryPanel(ws, r.sections.history.body);
  ws.ai = new AiTools(ws, r.stage);
  ws.classicalPanel = new ClassicalPanel(ws, r.sections.tools.body);
  ws.review = new Review(ws); // review queue, readings, comments, consensus
  ws.modelProposals = new ModelProposals(ws); // pre-annotation: classes, boxes, maps
  const help = helpDialog();
  r.root.append(help);

  // ---- actions (buttons, shortcuts, panels) -----------------------------------------------
  Object.assign(ws, {
    maskChanged(label) {
      if (ws.history.recordMask(label)) ws.persistence.changed({ mask: true });
    },
    async setView(view) {
      const b = r.viewButtons[view];
      if (!b || b.disabled || !ws.viewer.volume) return;
      if (ws.viewer.needs3D(view)) {
        if (ws.viewer.software) {
          const seconds = Math.max(2, Math.round(ws.viewer.voxels / 7e6)); // measured: 11 s for 78M voxels
          const choice = await choose({
            title: "Prepare all views?",
            testid: "views-dialog",
            message: [
              "This browser draws without a graphics card (software WebGL), so large volumes open in a fast axial-only mode.",
              `Coronal, sagittal and multiplanar views need the whole volume prepared first: about ${seconds} s, during which the page does not respond, and changing the window is slow while they are shown. The axial view is fast again afterwards.`,
            ],
            choices: [
              { value: "go", label: "Prepare views", primary: true },
              { value: "cancel", label: "Stay in axial" },
            ],
          });
          if (choice !== "go") return;
        }
        // The whole volume is processed now (slow without a GPU): say so, then paint.
        ws.showProgress(1, "Preparing coronal and sagittal views…");
        r.progress.firstChild.style.width = "100%";
        await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 30)));
      }
      ws.viewer.setView(view);
      ws.showProgress(null);
      for (const [id, btn] of Object.entries(r.viewButtons))
        btn.classList.toggle("ws-on", id === view);
      ws.controls.update();
    },
    stepSlice: (delta, step = 1) => ws.viewer.stepSlice(delta * step),
    goToSlice: (i) => ws.viewer.setSlice(i === Infinity ? ws.viewer.sliceInfo().count - 1 : i),
    zoomBy: (f) => ws.viewer.zoomBy(f),
    resetView: () => ws.viewer.resetView(),
    undo: () => ws.history.undo(),
    redo: () => ws.history.redo(),
    save: () => session.save(ws),
    submit: () => session.submit(ws),
    nextImage: () => ws.review.next(),
    restoreRevision: (rev) => session.restoreRevision(ws, rev),
    async restoreMyDraft() {
      const draft = await api.get(`/images/${image.id}/draft`);
      if (draft) await session.restoreDraft(ws, draft);
      else toast("There is no draft any more.", "info");
    },
    async discardMyDraft() {
      await ws.persistence.discardDraft();
      ws.historyPanel.render();
    },
    toggleHelp: () => (help.open ? help.close() : help.showModal()),
    crosshairVoxel() {
      const { vox } = ws.viewer.fracToVoxel(ws.viewer.nv.scene.crosshairPos);
      return vox.map(
        (v, i) => Math.round(Math.min(Math.max(v, 0), image.shape[i] - 1) * 100) / 100,
      );
    },
    goTo(vox, kind, index) {
      ws.selection = kind ? { kind, index } : null;
      ws.viewer.goTo(vox);
      renderObjects(ws, r.sections.objects.body, measurements);
      ws.overlay.schedule();
    },
    clearMeasurements() {
      measurements.length = 0;
      ws.viewer.nv.clearMeasurements();
      renderObjects(ws, r.sections.objects.body, measurements);
    },
    showProgress(fraction, text = "Loading image…") {
      r.progress.hidden = fraction === null;
      if (fraction === null) return;
      r.progress.firstChild.style.width = `${Math.round(fraction * 100)}%`;
      r.progress.lastChild.textContent =
        fraction < 1 ? `${text} ${Math.round(fraction * 100)}%` : text;
    },
  });

  // ---- events ---------------------------------------------------------------------------------
  const renderContent = () => {
    renderClasses(ws, r.sections.classes.body);
    ws.notesPanel.render();
    renderObjects(ws, r.sections.objects.body, measurements);
    ws.overlay.schedule();
  };
  ws.content.addEventListener("change", (e) => {
    if (e.detail.reason !== "load") ws.persistence.changed();
    if (ws.selection) ws.selection = null;
    renderContent();
  });
  ws.history.addEventListener("change", () => {
    r.undo.disabled = !ws.history.canUndo;
    r.redo.disabled = !ws.history.canRedo;
  });
  ws.tools.addEventListener("change", (e) => {
    ws.controls.toolChanged(e.detail.tool);
    ws.labelsPanel.render();
    if (["ai-box", "ai-click", "scribble"].includes(e.detail.tool)) ws.ai.loadEngines();
    ws.classicalPanel.render();
  });
  ws.ai.propagation.addEventListener("change", (e) => {
    r.propagate.classList.toggle("ws-on", e.detail.running);
    r.propagate.setAttribute("aria-pressed", String(e.detail.running));
  });
  r.sections.tools.el.addEventListener("toggle", () => {
    if (r.sections.tools.el.open) ws.ai.loadEngines();
  });
  ws.tools.addEventListener("needlabel", (e) =>
    toast(
      `This project has no ${e.detail.kind} label: add one on the project's Labels page.`,
      "warn",
    ),
  );
  ws.tools.addEventListener("hint", (e) => {
    const d = e.detail;
    toast(
      `The clicked voxel (${fmt(d.seedValue, 1)}) is outside the fill range ${fmt(d.min, 1)} … ${fmt(d.max, 1)}.`,
      "info",
    );
  });
  const p = ws.persistence;
  const showStatus = () => {
    const ann = p.annotation;
    r.state.textContent = ann ? STATE_NAMES[ann.state] || ann.state : "new";
    r.state.title = "Review state of this annotation";
    r.state.dataset.state = ann ? ann.state : "new";
    let text;
    if (p.busy) text = "Saving…";
    else if (p.dirty && !p.draftSaved) text = "Unsaved changes";
    else if (p.dirty) text = `Draft autosaved ${formatTime(p.draftAt)}`;
    else if (ann) text = `Saved · version ${ann.version}`;
    else text = "Not saved yet";
    r.saveStatus.textContent = text;
    r.saveStatus.classList.toggle("ws-unsaved", p.dirty);
    r.submit.disabled = ann?.state === "submitted" || ann?.state === "approved";
  };
  for (const type of ["status", "annotation", "saved"]) p.addEventListener(type, showStatus);
  p.addEventListener(
    "error",
    (e) =>
      e.detail.what === "autosave" && toast(`Autosave failed: ${e.detail.error.message}`, "error"),
  );

  for (const [id, b] of Object.entries(r.toolButtons))
    b.addEventListener("click", () => ws.tools.select(id));
  r.undo.addEventListener("click", ws.undo);
  r.redo.addEventListener("click", ws.redo);
  r.save.addEventListener("click", ws.save);
  r.submit.addEventListener("click", ws.submit);
  r.next.addEventListener("click", ws.nextImage);
  r.help.addEventListener("click", ws.toggleHelp);
  r.propagate.addEventListener("click", () => ws.ai.propagation.toggle());
  const beforeUnload = (e) => {
    // Unsaved edits, or proposals not yet accepted (they are not kept in drafts).
    if ((p.dirty && !p.draftSaved) || ws.ai.proposals.count) {
      e.preventDefault();
      e.returnValue = "";
    }
  };
  window.addEventListener("beforeunload", beforeUnload);
  cleanups.push(() => window.removeEventListener("beforeunload", beforeUnload));

  // ---- loading --------------------------------------------------------------------------------
  ws.start = async () => {
    r.root.dataset.state = "loading";
    ws.controls.wire();
    cleanups.push(installShortcuts(ws));
    cleanups.push(installAiInput(ws));
    cleanups.push(ws.review.install());
    ws.labelsPanel.render();
    renderContent();
    showStatus();
    const native = image.context?.native_view || "axial";
    for (const [id, b] of Object.entries(r.viewButtons)) b.classList.toggle("ws-on", id === native);
    ws.viewer.view = ws.viewer.flat ? "axial" : native;
    // Progressive display: the server's rendered middle slice while the volume loads.
    ws.timings = early.timings;
    const mark = (name) => (ws.timings[name] = Math.round(performance.now()));
    r.preview.src = early.previewUrl;
    r.preview.hidden = false;
    early.onProgress = (f) => ws.showProgress(f);
    api
      .get(`/projects/${image.project_id}/members`)
      .then((members) => members.forEach((m) => users.set(m.user.id, m.user.username)))
      .then(() => ws.historyPanel.render())
      .catch(() => {});
    try {
      const viewerReady = ws.viewer.init().then(() => mark("viewerReady"));
      const [buffer, initial] = await Promise.all([
        early.volume,
        ws.persistence.loadInitial(),
        viewerReady,
      ]);
      mark("fetched");
      await ws.viewer.open(buffer, ws.controls.presetWindow("default"));
      ws.viewer.nv.drawScene();
      mark("firstFrame");
      ws.showProgress(null);
      r.preview.hidden = true;
      ws.controls.update();
      ws.controls.applyOpacity();
      ws.tools.select("navigate");
      ws.labelsPanel.render();
      r.root.dataset.state = "viewing";
      const first = ws.review.initial(initial);
      await session.openAnnotation(ws, first);
      mark("ready");
      r.root.dataset.state = "ready";
      ws.review.start().catch((err) => toast(`Review panels: ${err.message}`, "warn"));
      loadPendingProposals(ws).catch((err) => toast(`Pending proposals: ${err.message}`, "warn"));
      // my autosaved draft, if it is of the annotation shown (a reviewer's may be of a reading)
      const draftOf = initial.draft?.annotation_id ?? null;
      if (initial.draft && (first === initial.mine || draftOf === (first?.id ?? null)))
        await session.offerDraft(ws, initial.draft, first);
    } catch (err) {
      if (err.name === "AbortError") return;
      console.warn(err);
      r.root.dataset.state = "error";
      ws.showProgress(null);
      toast(`Could not open the image: ${err.message}`, "error");
    }
  };

  ws.unmount = async () => {
    abort.abort();
    ws.ai.propagation.stop();
    p.stop();
    try {
      await Promise.race([p.flush(), new Promise((res) => setTimeout(res, 5000))]);
    } catch (_) {
      /* the draft is best effort on leaving; the beforeunload prompt covers reloads */
    }
    cleanups.forEach((fn) => fn());
    ws.viewer.destroy();
    if (window.__medlabelWorkspace === ws) delete window.__medlabelWorkspace;
  };
  // Test and benchmark hook: read-only helpers, no state changes.
  window.__medlabelWorkspace = ws;
  return ws;
}
