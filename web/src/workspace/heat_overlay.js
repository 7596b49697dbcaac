// Model proposals drawn over the viewer on a canvas of their own, below the annotation
// overlay: a heat map (a classification proposal's saliency, or a segmentation
// proposal's uncertainty; uint8 0..255 on the image's grid) on the slice shown, and a
// detection model's boxes with their scores.
import { viewAxis, VIEW_OF_SLICE_TYPE } from "./geometry.js";
import { CanvasLayer } from "./canvas_layer.js";
import { inPlaneAxes } from "./voxel_grid.js";
import { h } from "./ui.js";

// A perceptually ordered ramp (dark violet → red → yellow), as [value 0..1, r, g, b].
const RAMP = [
  [0.0, 30, 10, 90],
  [0.25, 120, 28, 130],
  [0.5, 215, 50, 80],
  [0.75, 250, 140, 30],
  [1.0, 252, 240, 110],
];
const MIN_SHOWN = 0.12; // below this value (of 1): transparent
const MAX_ALPHA = 0.5;

/** RGB of the ramp at t in 0..1. */
export function heatColor(t) {
  const x = Math.min(Math.max(t, 0), 1);
  let k = 1;
  while (k < RAMP.length - 1 && RAMP[k][0] < x) k++;
  const [a, b] = [RAMP[k - 1], RAMP[k]];
  const f = (x - a[0]) / (b[0] - a[0] || 1);
  return [1, 2, 3].map((i) => Math.round(a[i] + f * (b[i] - a[i])));
}

/** A CSS gradient of the ramp (for legends). */
export const HEAT_GRADIENT = `linear-gradient(90deg, ${RAMP.map(
  ([t, r, g, b]) => `rgb(${r}, ${g}, ${b}) ${Math.round(t * 100)}%`,
).join(", ")})`;

/** One slice of a full-grid uint8 map as an offscreen image (null if all zero). */
function heatSlice(map, axis, index) {
  const [u, v] = inPlaneAxes(axis);
  const [nu, nv] = [map.shape[u], map.shape[v]];
  if (index < 0 || index >= map.shape[axis]) return null;
  const strides = [map.shape[1] * map.shape[2], map.shape[2], 1];
  let peak = 0;
  const base = index * strides[axis];
  const at = (i, j) => map.data[base + i * strides[u] + j * strides[v]];
  for (let i = 0; i < nu; i++) for (let j = 0; j < nv; j++) peak = Math.max(peak, at(i, j));
  if (!peak) return null;
  const canvas = new OffscreenCanvas(nv, nu);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(nv, nu);
  const lut = new Uint8ClampedArray(256 * 4);
  for (let k = 0; k < 256; k++) {
    const t = k / 255;
    const [r, g, b] = heatColor(t);
    const a = t < MIN_SHOWN ? 0 : Math.round(255 * MAX_ALPHA * (0.25 + 0.75 * t));
    lut.set([r, g, b, a], 4 * k);
  }
  for (let i = 0; i < nu; i++)
    for (let j = 0; j < nv; j++) {
      const k = at(i, j);
      img.data.set(lut.subarray(4 * k, 4 * k + 4), 4 * (i * nv + j));
    }
  ctx.putImageData(img, 0, 0);
  return { canvas, u, v };
}

export class HeatOverlay extends CanvasLayer {
  /** @param {object} ws  r (stage, overlay), viewer, labelByName(name), isHidden(name) */
  constructor(ws) {
    const canvas = h("canvas", {
      class: "ws-overlay ws-heat-overlay",
      "aria-hidden": "true",
      dataset: { testid: "heat-overlay" },
    });
    ws.r.stage.insertBefore(canvas, ws.r.overlay); // under boxes, masks and proposals
    super(canvas, ws);
    this.heat = null; // {key, shape, data}
    this.boxes = []; // [{label, score, start, end}]
    this.cache = new Map(); // `${axis}:${index}` → heatSlice
  }

  /** Show a uint8 map {shape, data} (null: none); `key` names it for the cache;
   * `smooth`: interpolate between voxels (a coarse saliency map), else show voxels. */
  setHeat(key, map, { smooth = false } = {}) {
    this.heat = map ? { key, smooth, shape: map.shape.slice(0, 3), data: map.data } : null;
    this.cache.clear();
    this.canvas.dataset.heat = map ? key : "";
    this.schedule();
  }

  setBoxes(boxes) {
    this.boxes = boxes;
    this.schedule();
  }

  paint(ctx, dpr) {
    const { viewer } = this.ws;
    const here = viewer.fracToVoxel(viewer.nv.scene.crosshairPos).vox;
    for (const tile of viewer.tiles()) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(...tile.rect);
      ctx.clip();
      const axis = viewAxis(viewer.affine, VIEW_OF_SLICE_TYPE[tile.axCorSag]);
      const index = Math.round(here[axis]);
      if (this.heat) this.#heat(ctx, tile, axis, index);
      if (axis === 0 && index === 0) for (const box of this.boxes) this.#box(ctx, tile, box, dpr);
      ctx.restore();
    }
  }

  #heat(ctx, tile, axis, index) {
    const key = `${axis}:${index}`;
    if (!this.cache.has(key)) this.cache.set(key, heatSlice(this.heat, axis, index));
    const slice = this.cache.get(key);
    if (!slice) return;
    const { viewer } = this.ws;
    const corner = (i, j) => {
      const vox = [0, 0, 0];
      vox[axis] = index;
      vox[slice.u] = i - 0.5;
      vox[slice.v] = j - 0.5;
      return tile.project(viewer.voxelToFrac(vox));
    };
    const o = corner(0, 0);
    const di = corner(1, 0);
    const dj = corner(0, 1);
    ctx.save();
    ctx.imageSmoothingEnabled = this.heat.smooth;
    ctx.setTransform(dj.x - o.x, dj.y - o.y, di.x - o.x, di.y - o.y, o.x, o.y);
    ctx.drawImage(slice.canvas, 0, 0);
    ctx.restore();
  }

  #box(ctx, tile, box, dpr) {
    if (this.ws.isHidden(box.label)) return;
    const { viewer } = this.ws;
    const a = tile.project(viewer.voxelToFrac([0, box.start[1], box.start[2]]));
    const b = tile.project(viewer.voxelToFrac([0, box.end[1], box.end[2]]));
    const [x, y] = [Math.min(a.x, b.x), Math.min(a.y, b.y)];
    const [w, hgt] = [Math.abs(b.x - a.x), Math.abs(b.y - a.y)];
    const color = this.ws.labelByName(box.label)?.color || "#ffe119";
    ctx.save();
    ctx.fillStyle = "rgba(255, 255, 255, 0.06)";
    ctx.fillRect(x, y, w, hgt);
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.6)";
    ctx.strokeRect(x, y, w, hgt);
    ctx.lineWidth = 1.5 * dpr;
    ctx.strokeStyle = color;
    ctx.setLineDash([4 * dpr, 3 * dpr]);
    ctx.strokeRect(x, y, w, hgt);
    ctx.setLineDash([]);
    const text = `${box.label} ${Math.round(box.score * 100)}%`;
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    const tw = ctx.measureText(text).width;
    const ty = y > 16 * dpr ? y - 2 * dpr : y + hgt + 15 * dpr;
    ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
    ctx.fillRect(x - 1 * dpr, ty - 13 * dpr, tw + 6 * dpr, 14 * dpr);
    ctx.fillStyle = color;
    ctx.fillText(text, x + 2 * dpr, ty);
    ctx.restore();
  }
}
