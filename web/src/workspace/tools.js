// Annotation tools: what the left mouse button does in the viewer. The right button
// always adjusts window/level and the middle button pans; Ctrl+wheel zooms.
import { DRAG_MODE } from "./loading.js";
import { boxFromDrag, viewAxis, VIEW_OF_SLICE_TYPE } from "./geometry.js";

// kind: the label kind the tool draws with (null: no label needed).
export const TOOLS = [
  {
    id: "navigate",
    name: "Navigate",
    key: "v",
    kind: null,
    icon: "navigate",
    hint: "Click to move the crosshair",
  },
  {
    id: "brush",
    name: "Brush",
    key: "b",
    kind: "mask",
    icon: "brush",
    hint: "Paint the active mask label",
  },
  {
    id: "eraser",
    name: "Eraser",
    key: "e",
    kind: "mask",
    icon: "eraser",
    hint: "Erase mask labels",
  },
  {
    id: "polygon",
    name: "Lasso fill",
    key: "l",
    kind: "mask",
    icon: "polygon",
    hint: "Draw an outline; it is filled on release",
  },
  {
    id: "fill",
    name: "Flood fill",
    key: "f",
    kind: "mask",
    icon: "fill",
    hint: "Fill the connected region within the intensity range",
  },
  { id: "box", name: "Bounding box", key: "r", kind: "box", icon: "box", hint: "Drag a box" },
  {
    id: "point",
    name: "Point / landmark",
    key: "p",
    kind: "point",
    icon: "point",
    hint: "Click to place a landmark",
  },
  {
    id: "ai-box",
    name: "AI box",
    key: "a",
    shift: true,
    kind: "mask",
    icon: "aiBox",
    hint: "Drag a box around a structure: the AI proposes its outline",
  },
  {
    id: "ai-click",
    name: "AI click",
    key: "c",
    shift: true,
    kind: "mask",
    icon: "aiClick",
    hint: "Click inside the structure (Shift or right click: outside) to refine the proposal",
  },
  {
    id: "scribble",
    name: "Scribble",
    key: "s",
    shift: true,
    kind: "mask",
    icon: "scribble",
    hint: "Paint on the structure (Shift or right button: around it) for the Tools panel's tools",
  },
  {
    id: "ruler",
    name: "Ruler",
    key: "m",
    kind: null,
    icon: "ruler",
    hint: "Drag to measure a distance in mm",
  },
  {
    id: "pan",
    name: "Pan",
    key: "h",
    kind: null,
    icon: "pan",
    hint: "Drag to pan; Ctrl+wheel zooms",
  },
  {
    id: "contrast",
    name: "Window / level",
    key: "w",
    kind: null,
    icon: "contrast",
    hint: "Drag: left/right = width, up/down = level",
  },
];

/** A tool's shortcut as shown to people: "B", "Shift+A". */
export function keyLabel(tool) {
  return `${tool.shift ? "Shift+" : ""}${tool.key.toUpperCase()}`;
}

const LEFT_BUTTON = {
  navigate: DRAG_MODE.crosshair,
  brush: DRAG_MODE.crosshair,
  eraser: DRAG_MODE.crosshair,
  polygon: DRAG_MODE.crosshair,
  fill: DRAG_MODE.callbackOnly,
  box: DRAG_MODE.roiSelection,
  point: DRAG_MODE.callbackOnly,
  "ai-box": DRAG_MODE.roiSelection,
  "ai-click": DRAG_MODE.none, // clicks and strokes: see ai_input.js
  scribble: DRAG_MODE.none,
  ruler: DRAG_MODE.measurement,
  pan: DRAG_MODE.pan,
  contrast: DRAG_MODE.windowing,
};

export class Tools extends EventTarget {
  /**
   * @param {object} ws  the workspace: viewer, content, history, image, activeLabel(kind),
   *                     fillOptions(), maskChanged(label)
   */
  constructor(ws) {
    super();
    this.ws = ws;
    this.tool = "navigate";
    this.brushSize = 3;
  }

  get current() {
    return TOOLS.find((t) => t.id === this.tool);
  }

  select(id) {
    const tool = TOOLS.find((t) => t.id === id);
    if (!tool) return;
    this.tool = id;
    this.apply();
    this.dispatchEvent(new CustomEvent("change", { detail: { tool: id } }));
    if (tool.kind && tool.id !== "eraser" && !this.ws.activeLabel(tool.kind))
      this.#needLabel(tool.kind);
  }

  /** Configure NiiVue for the current tool and label. */
  apply() {
    const nv = this.ws.viewer.nv;
    if (!nv) return;
    // The AI click and scribble tools use the right button (and Shift) for negatives.
    const prompting = this.tool === "ai-click" || this.tool === "scribble";
    nv.setMouseEventConfig({
      leftButton: prompting
        ? { primary: DRAG_MODE.none, withShift: DRAG_MODE.none }
        : { primary: LEFT_BUTTON[this.tool] },
      rightButton: prompting ? DRAG_MODE.none : DRAG_MODE.windowing,
      centerButton: DRAG_MODE.pan,
    });
    const drawing = ["brush", "eraser", "polygon"].includes(this.tool);
    const label = this.ws.activeLabel("mask");
    const value = this.tool === "eraser" ? 0 : (label?.value ?? 0);
    if (drawing && this.tool !== "eraser" && !(value > 0 && value < 256)) {
      // No mask label, or a value the browser's 8-bit drawing cannot hold.
      nv.setDrawingEnabled(false);
      if (value > 255)
        this.dispatchEvent(
          new CustomEvent("needlabel", { detail: { kind: "mask (value ≤ 255)" } }),
        );
      return;
    }
    nv.opts.penSize = this.brushSize;
    nv.setPenValue(value, this.tool === "polygon");
    nv.setDrawingEnabled(drawing);
  }

  setBrushSize(size) {
    this.brushSize = Math.min(Math.max(Math.round(size), 1), 50);
    if (this.ws.viewer.nv) this.ws.viewer.nv.opts.penSize = this.brushSize;
    this.dispatchEvent(new CustomEvent("brush", { detail: { size: this.brushSize } }));
  }

  /** NiiVue finished a stroke / lasso (drawing changed on its own). */
  onDrawingChanged(action) {
    if (action === "draw") {
      const name = this.current?.name || "Mask edit";
      this.ws.maskChanged(name);
    }
  }

  /** NiiVue reports the end of a drag (box), or a click in callback mode (point, fill). */
  onDragRelease(p) {
    if (p.axCorSag < 0 || p.axCorSag > 2) return;
    if (this.tool === "ai-box") this.#aiBox(p);
    else if (this.tool === "box") this.#box(p);
    else if (this.tool === "point") this.#point(p);
    else if (this.tool === "fill") this.#fill(p);
  }

  #box(p) {
    const { viewer, content, image } = this.ws;
    const label = this.ws.activeLabel("box");
    // Forget the finished selection so the mouse wheel scrolls slices again.
    viewer.nv.uiData.dragStart = [0, 0];
    viewer.nv.uiData.dragEnd = [0, 0];
    viewer.nv.drawScene();
    if (!label) return this.#needLabel("box");
    const a = viewer.fracToVoxel(p.fracStart).vox;
    const b = viewer.fracToVoxel(p.fracEnd).vox;
    const view = VIEW_OF_SLICE_TYPE[p.axCorSag];
    const box = boxFromDrag(a, b, viewAxis(viewer.affine, view), image.shape);
    if (box) content.addBox(label.name, box.start, box.end);
  }

  #aiBox(p) {
    const nv = this.ws.viewer.nv;
    nv.uiData.dragStart = [0, 0]; // as for boxes: the wheel scrolls slices again
    nv.uiData.dragEnd = [0, 0];
    nv.drawScene();
    this.ws.ai.onBoxDrag(p);
  }

  #point(p) {
    const { viewer, content, image } = this.ws;
    const label = this.ws.activeLabel("point");
    if (!label) return this.#needLabel("point");
    const vox = viewer.fracToVoxel(p.fracEnd).vox;
    const axis = viewAxis(viewer.affine, VIEW_OF_SLICE_TYPE[p.axCorSag]);
    vox[axis] = Math.round(vox[axis]); // on the slice shown, not between slices
    const inside = vox.every((v, i) => v >= -0.5 && v <= image.shape[i] - 0.5);
    if (inside)
      content.addPoint(
        label.name,
        vox.map((v) => Math.round(v * 100) / 100),
      );
  }

  #fill(p) {
    const { viewer } = this.ws;
    const label = this.ws.activeLabel("mask");
    if (!label) return this.#needLabel("mask");
    const nv = viewer.nv;
    const opts = this.ws.fillOptions();
    const seedValue = viewer.valueAt(viewer.fracToVoxel(p.fracEnd).vox);
    if (seedValue !== null && !(seedValue >= opts.min && seedValue <= opts.max)) {
      this.dispatchEvent(new CustomEvent("hint", { detail: { seedValue, ...opts } }));
      return;
    }
    const bitmap = viewer.ensureDrawing();
    // Fill into a scratch bitmap so the region always gets the active label (NiiVue
    // would otherwise grow the label already under the seed), then merge it.
    const scratch = new Uint8Array(bitmap.length);
    const seed = nv.frac2vox(p.fracEnd);
    const previous = nv.drawPenAxCorSag;
    nv.drawPenAxCorSag = p.axCorSag; // constrains a 2D fill to this slice
    nv.opts.penValue = label.value;
    try {
      nv.drawFloodFill(
        [seed[0], seed[1], seed[2]],
        label.value,
        1, // grow by intensity within [min, max]
        opts.min,
        opts.max,
        6,
        Number.POSITIVE_INFINITY,
        opts.is2D,
        scratch,
      );
    } finally {
      nv.drawPenAxCorSag = previous;
    }
    const live = nv.drawBitmap;
    for (let i = 0; i < scratch.length; i++) if (scratch[i]) live[i] = label.value;
    viewer.refreshDrawing();
    this.ws.maskChanged("Flood fill");
  }

  #needLabel(kind) {
    this.dispatchEvent(new CustomEvent("needlabel", { detail: { kind } }));
  }
}
