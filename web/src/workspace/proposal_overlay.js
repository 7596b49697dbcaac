// Pending proposals and the prompts that made them, drawn on the 2D overlay over each
// slice tile: the proposal hatched and translucent in its label's colour with a solid
// outline (the committed drawing is NiiVue's opaque fill), the prompt box dashed,
// clicks as + / − markers and scribble strokes in green / magenta.
import { viewAxis, VIEW_OF_SLICE_TYPE } from "./geometry.js";
import { inPlaneAxes } from "./voxel_grid.js";

const FILL_ALPHA = 0.3;
const HATCH_SPACING = 7; // device px between hatch lines (times dpr)
const FOREGROUND = "#3ddc84";
const BACKGROUND = "#ff4fd8";

/** Parse "#rrggbb" → "rgba(r, g, b, a)". */
function rgba(hex, alpha) {
  const s = (hex || "#ffe119").replace("#", "");
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(s.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/**
 * One slice of a proposal, prepared for drawing (cached by the caller): the crop's
 * in-plane extent, an offscreen image of it, horizontal runs (for the hatch clip) and
 * boundary edges (for the outline), in pixel-corner units of the crop.
 */
function sliceShape(proposal, axis, index, color) {
  const [u, v] = inPlaneAxes(axis);
  const [nu, nv] = [proposal.shape[u], proposal.shape[v]];
  const k = index - proposal.origin[axis];
  const strides = [proposal.shape[1] * proposal.shape[2], proposal.shape[2], 1];
  const at = (i, j) => {
    if (i < 0 || j < 0 || i >= nu || j >= nv) return 0;
    return proposal.data[k * strides[axis] + i * strides[u] + j * strides[v]];
  };
  const canvas = new OffscreenCanvas(Math.max(nv, 1), Math.max(nu, 1));
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  const s = color.replace("#", "");
  const rgb = [0, 2, 4].map((i) => parseInt(s.slice(i, i + 2), 16));
  const runs = [];
  const edges = [];
  let any = false;
  for (let i = 0; i < nu; i++) {
    let start = -1;
    for (let j = 0; j <= nv; j++) {
      const on = j < nv && at(i, j);
      if (on) {
        any = true;
        const o = 4 * (i * nv + j);
        img.data.set([rgb[0], rgb[1], rgb[2], 255], o);
        if (!at(i - 1, j)) edges.push([i, j, i, j + 1]);
        if (!at(i + 1, j)) edges.push([i + 1, j, i + 1, j + 1]);
        if (!at(i, j - 1)) edges.push([i, j, i + 1, j]);
        if (!at(i, j + 1)) edges.push([i, j + 1, i + 1, j + 1]);
        if (start < 0) start = j;
      } else if (start >= 0) {
        runs.push([i, start, j]);
        start = -1;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  return any ? { canvas, runs, edges, u, v } : null;
}

export class ProposalOverlay {
  /**
   * @param {object} ws  viewer, labelByName(name), proposals (pending list), ai (prompts)
   */
  constructor(ws) {
    this.ws = ws;
    this.cache = new Map(); // `${id}:${axis}:${index}` → sliceShape or null
  }

  /** Forget cached slices of proposals that are gone. */
  prune(pending) {
    const ids = new Set(pending.map((p) => String(p.id)));
    for (const key of this.cache.keys()) if (!ids.has(key.split(":")[0])) this.cache.delete(key);
  }

  /** The tile's slice: {axis, index} in stored voxels (index rounded). */
  #slice(tile) {
    const { viewer } = this.ws;
    const axis = viewAxis(viewer.affine, VIEW_OF_SLICE_TYPE[tile.axCorSag]);
    const here = viewer.fracToVoxel(viewer.nv.scene.crosshairPos).vox;
    return { axis, index: Math.round(here[axis]) };
  }

  /** Draw pending proposals and prompts on one tile (ctx is clipped to the tile). */
  draw(ctx, tile, dpr, pending, prompts) {
    const { axis, index } = this.#slice(tile);
    for (const prop of pending) this.#proposal(ctx, tile, dpr, prop, axis, index);
    if (prompts && prompts.axis === axis && prompts.index === index)
      this.#prompts(ctx, tile, dpr, prompts);
  }

  #proposal(ctx, tile, dpr, prop, axis, index) {
    const label = this.ws.labelByName(prop.label);
    if (this.ws.isHidden(prop.label)) return;
    const color = label?.color || "#ffe119";
    const key = `${prop.id}:${axis}:${index}`;
    if (!this.cache.has(key)) {
      const inside =
        index >= prop.origin[axis] && index < prop.origin[axis] + prop.shape[axis];
      this.cache.set(key, inside ? sliceShape(prop, axis, index, color) : null);
    }
    const shape = this.cache.get(key);
    if (!shape) return;
    const { viewer } = this.ws;
    // Screen position of crop pixel corner (i, j): an affine map (project is linear).
    const corner = (i, j) => {
      const vox = [0, 0, 0];
      vox[axis] = index;
      vox[shape.u] = prop.origin[shape.u] + i - 0.5;
      vox[shape.v] = prop.origin[shape.v] + j - 0.5;
      return tile.project(viewer.voxelToFrac(vox));
    };
    const o = corner(0, 0);
    const di = corner(1, 0);
    const dj = corner(0, 1);
    const [ix, iy, jx, jy] = [di.x - o.x, di.y - o.y, dj.x - o.x, dj.y - o.y];
    const map = (i, j) => [o.x + j * jx + i * ix, o.y + j * jy + i * iy];
    ctx.save();
    // Fill: the crop as an image, nearest-neighbour, under the affine map.
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = FILL_ALPHA;
    ctx.setTransform(jx, jy, ix, iy, o.x, o.y);
    ctx.drawImage(shape.canvas, 0, 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalAlpha = 1;
    // Hatch: diagonal lines clipped to the proposal.
    const region = new Path2D();
    for (const [i, j0, j1] of shape.runs) {
      const a = map(i, j0);
      const b = map(i, j1);
      const c = map(i + 1, j1);
      const d = map(i + 1, j0);
      region.moveTo(...a);
      region.lineTo(...b);
      region.lineTo(...c);
      region.lineTo(...d);
      region.closePath();
    }
    ctx.save();
    ctx.clip(region);
    const [nh, nw] = [shape.canvas.height, shape.canvas.width];
    const xs = [map(0, 0), map(nh, nw), map(0, nw), map(nh, 0)];
    const x0 = Math.min(...xs.map((p) => p[0]));
    const x1 = Math.max(...xs.map((p) => p[0]));
    const y0 = Math.min(...xs.map((p) => p[1]));
    const y1 = Math.max(...xs.map((p) => p[1]));
    ctx.strokeStyle = rgba(color, 0.85);
    ctx.lineWidth = dpr;
    ctx.beginPath();
    const step = HATCH_SPACING * dpr;
    for (let s = x0 - (y1 - y0); s < x1; s += step) {
      ctx.moveTo(s, y1);
      ctx.lineTo(s + (y1 - y0), y0);
    }
    ctx.stroke();
    ctx.restore();
    // Outline along voxel edges.
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    for (const [i0, j0, i1, j1] of shape.edges) {
      ctx.moveTo(...map(i0, j0));
      ctx.lineTo(...map(i1, j1));
    }
    ctx.stroke();
    ctx.restore();
  }

  #prompts(ctx, tile, dpr, prompts) {
    const { viewer } = this.ws;
    const at = (vox) => tile.project(viewer.voxelToFrac(vox));
    ctx.save();
    if (prompts.box) {
      const [a, b] = prompts.box;
      const p = at(a);
      const q = at(b);
      ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
      ctx.lineWidth = 1.5 * dpr;
      ctx.setLineDash([5 * dpr, 4 * dpr]);
      const [x, y] = [Math.min(p.x, q.x), Math.min(p.y, q.y)];
      ctx.strokeRect(x, y, Math.abs(q.x - p.x), Math.abs(q.y - p.y));
      ctx.setLineDash([]);
    }
    for (const stroke of prompts.strokes) {
      if (!stroke.points.length) continue;
      const unit = [0, 0, 0];
      unit[inPlaneAxes(prompts.axis)[0]] = 1;
      const p0 = at([0, 0, 0]);
      const p1 = at(unit);
      const scale = Math.hypot(p1.x - p0.x, p1.y - p0.y) || dpr; // px per voxel
      ctx.strokeStyle = rgba(stroke.kind === "background" ? BACKGROUND : FOREGROUND, 0.8);
      ctx.lineWidth = Math.max(2 * dpr, (2 * prompts.radius + 1) * scale * 0.6);
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.beginPath();
      stroke.points.forEach((vox, i) => {
        const p = at(vox);
        if (i === 0) ctx.moveTo(p.x, p.y);
        else ctx.lineTo(p.x, p.y);
      });
      if (stroke.points.length === 1) {
        const p = at(stroke.points[0]);
        ctx.lineTo(p.x + 0.1, p.y);
      }
      ctx.stroke();
    }
    const marker = (vox, positive) => {
      const p = at(vox);
      const r = 6 * dpr;
      ctx.fillStyle = positive ? FOREGROUND : BACKGROUND;
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 1.5 * dpr;
      ctx.beginPath();
      ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(p.x - r * 0.55, p.y);
      ctx.lineTo(p.x + r * 0.55, p.y);
      if (positive) {
        ctx.moveTo(p.x, p.y - r * 0.55);
        ctx.lineTo(p.x, p.y + r * 0.55);
      }
      ctx.stroke();
    };
    prompts.positive.forEach((v) => marker(v, true));
    prompts.negative.forEach((v) => marker(v, false));
    ctx.restore();
  }
}
