// Wiring of the view controls: views, slice slider, window presets, view filters, brush
// size, fill range, opacity, zoom, and the status bar (slice, window, cursor readout).
import { fmt } from "./geometry.js";
import { fetchWithProgress } from "./loading.js";
import { h, toast } from "./ui.js";

// The main parameter of each view filter: [query name, default, min, max, step, title].
const FILTER_PARAMS = {
  mean: ["size", 3, 3, 15, 2, "Window size (pixels)"],
  median: ["size", 3, 3, 15, 2, "Window size (pixels)"],
  gaussian: ["sigma", 1, 0.2, 10, 0.2, "Sigma (pixels)"],
  sharpen: ["amount", 1, 0.1, 5, 0.1, "Amount"],
  clahe: ["clip_limit", 0.01, 0.001, 1, 0.005, "Clip limit"],
};
const KEEPS_WINDOW = new Set(["", "mean", "median", "gaussian", "sharpen"]);

export class Controls {
  constructor(ws, r) {
    this.ws = ws;
    this.r = r;
    this.pending = false;
    this.filterTimer = null;
    this.filterLoad = null;
  }

  wire() {
    const { ws, r } = this;
    for (const [view, b] of Object.entries(r.viewButtons))
      b.addEventListener("click", () => ws.setView(view));
    r.slider.addEventListener("input", () => ws.viewer.setSlice(Number(r.slider.value)));
    r.preset.addEventListener("change", () => this.applyPreset(r.preset.value));
    r.filter.addEventListener("change", () => this.#filterChanged());
    r.filterParam.addEventListener("change", () => this.#scheduleFilter());
    r.brushSize.addEventListener("input", () => ws.tools.setBrushSize(Number(r.brushSize.value)));
    ws.tools.addEventListener("brush", (e) => {
      r.brushSize.value = e.detail.size;
      r.brushSizeText.textContent = `${e.detail.size} vox`;
    });
    r.opacity.addEventListener("input", () => this.applyOpacity());
    // Ctrl+wheel zooms (NiiVue's plain wheel scrolls slices).
    r.stage.addEventListener(
      "wheel",
      (e) => {
        if (!e.ctrlKey && !e.metaKey) return;
        e.preventDefault();
        e.stopPropagation();
        ws.zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15);
      },
      { capture: true, passive: false },
    );
    r.canvas.addEventListener("mousemove", (e) => this.#cursor(e));
    r.canvas.addEventListener("mouseleave", () => (r.cursorText.textContent = ""));
  }

  /** The window of a preset: default (the image's own, if any), a CT preset, or null
   * for auto (NiiVue's robust intensity range). */
  presetWindow(name) {
    const img = this.ws.image;
    if (name === "default" && img.window_center !== null && img.window_width !== null) {
      return { center: img.window_center, width: img.window_width };
    }
    return this.ws.meta.window_presets?.[name] || null;
  }

  applyPreset(name) {
    const w = this.presetWindow(name);
    if (w) this.ws.viewer.setWindow(w.center, w.width);
    else this.ws.viewer.autoWindow();
    this.r.preset.value = name;
    this.update();
  }

  applyOpacity() {
    const a = Number(this.r.opacity.value) / 100;
    this.ws.viewer.nv?.setDrawOpacity(a);
    this.r.overlay.style.opacity = String(Math.max(a, 0.35));
  }

  /** Show the tool-specific controls (brush size, fill range) of the current tool. */
  toolChanged(tool) {
    const r = this.r;
    r.brushGroup.hidden = !["brush", "eraser"].includes(tool);
    r.fillGroup.hidden = tool !== "fill";
    if (tool === "fill" && (r.fillMin.value === "" || r.fillMax.value === "")) {
      const w = this.ws.viewer.getWindow();
      if (w) {
        r.fillMin.value = fmt(w.center - w.width / 2, 1);
        r.fillMax.value = fmt(w.center + w.width / 2, 1);
      }
    }
    for (const [id, b] of Object.entries(r.toolButtons)) {
      b.classList.toggle("ws-on", id === tool);
      b.setAttribute("aria-pressed", String(id === tool));
    }
    r.stage.dataset.tool = tool;
  }

  fillOptions() {
    const r = this.r;
    const min = Number(r.fillMin.value);
    const max = Number(r.fillMax.value);
    return { min: Math.min(min, max), max: Math.max(min, max), is2D: r.fill2D.checked };
  }

  // ---- view filters ----------------------------------------------------------------------

  #filterChanged() {
    const kind = this.r.filter.value;
    const param = FILTER_PARAMS[kind];
    const input = this.r.filterParam;
    input.hidden = !param;
    if (param) {
      const [, value, min, max, step, title] = param;
      Object.assign(input, { min, max, step, value, title });
      input.setAttribute("aria-label", title);
    }
    this.#scheduleFilter(0);
  }

  #scheduleFilter(delay = 400) {
    clearTimeout(this.filterTimer);
    this.filterTimer = setTimeout(() => this.#loadFilter(), delay);
  }

  async #loadFilter() {
    const { ws, r } = this;
    const kind = r.filter.value;
    const params = new URLSearchParams();
    if (kind) {
      params.set("filter", kind);
      const param = FILTER_PARAMS[kind];
      if (param && r.filterParam.value !== "") params.set(param[0], r.filterParam.value);
    }
    const url = `/api/images/${ws.image.id}/volume.nii${kind ? `?${params}` : ""}`;
    this.filterLoad?.abort();
    const abort = new AbortController();
    this.filterLoad = abort;
    r.stage.classList.add("ws-busy");
    try {
      const buffer = await fetchWithProgress(
        url,
        (f) => ws.showProgress(f, kind ? "Filtering…" : "Loading…"),
        abort.signal,
      );
      if (abort.signal.aborted || !ws.viewer.nv) return;
      await ws.viewer.replaceBackground(buffer, { keepWindow: KEEPS_WINDOW.has(kind) });
      if (!KEEPS_WINDOW.has(kind)) ws.viewer.autoWindow();
      ws.tools.apply();
      ws.labelsPanel.render();
      this.applyOpacity();
    } catch (err) {
      if (err.name !== "AbortError") toast(`View filter failed: ${err.message}`, "error");
    } finally {
      if (this.filterLoad === abort) {
        r.stage.classList.remove("ws-busy");
        ws.showProgress(null);
      }
    }
  }

  // ---- status bar ----------------------------------------------------------------------------

  /** Refresh slider, slice number, window and zoom (at most once per frame). */
  update() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.#updateNow();
    });
  }

  #updateNow() {
    const { ws, r } = this;
    if (!ws.viewer.volume) return;
    const { index, count } = ws.viewer.sliceInfo();
    r.slider.max = String(count - 1);
    r.slider.value = String(index);
    r.slider.disabled = count < 2;
    r.sliceText.textContent = `${index + 1} / ${count}`;
    const w = ws.viewer.getWindow();
    const units = ws.image.modality === "CT" ? " HU" : "";
    r.windowText.textContent =
      ws.image.channels > 1 || !w ? "" : `W ${fmt(w.width, 0)} · L ${fmt(w.center, 0)}${units}`;
    r.zoomText.textContent = `${Math.round(ws.viewer.zoom * 100)}%`;
  }

  #cursor(e) {
    const { ws, r } = this;
    if (!ws.viewer.volume) return;
    const hit = ws.viewer.pick(e.clientX, e.clientY);
    if (!hit) {
      r.cursorText.textContent = "";
      return;
    }
    const vox = hit.vox.map((v) => Math.round(v));
    const value = ws.viewer.valueAt(vox);
    const units = ws.image.modality === "CT" ? " HU" : "";
    r.cursorText.replaceChildren(
      h("span", { title: "voxel (plane, row, column)" }, `(${vox.join(", ")})`),
      value === null ? "" : ` ${fmt(value, 1)}${units}`,
      ws.image.geometry_known
        ? h(
            "span",
            { class: "ws-muted", title: "patient coordinates, LPS mm" },
            ` LPS ${hit.lps.map((x) => fmt(x, 1)).join(", ")}`,
          )
        : "",
    );
  }
}
