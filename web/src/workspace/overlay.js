// Boxes, points and positioned notes drawn on a 2D canvas over the viewer, on every
// slice tile they intersect (boxes) or lie on (points, notes; within half a voxel), and
// the AI tools' pending proposals (see proposal_overlay.js).
import { CanvasLayer } from "./canvas_layer.js";
import { boxCorners } from "./geometry.js";

// ws: viewer, content, labelByName(name), isHidden(name), selection
export class Overlay extends CanvasLayer {
  paint(ctx, dpr) {
    const { viewer } = this.ws;
    const content = this.ws.content.content;
    const sel = this.ws.selection || {};
    for (const tile of viewer.tiles()) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(...tile.rect);
      ctx.clip();
      this.#crosshair(tile, dpr);
      if (viewer.edgeLabels) this.#edgeLabels(tile, viewer.edgeLabels, dpr);
      content.boxes.forEach((b, i) =>
        this.#box(tile, b, sel.kind === "boxes" && sel.index === i, dpr),
      );
      content.points.forEach((p, i) =>
        this.#point(tile, p, sel.kind === "points" && sel.index === i, dpr),
      );
      content.notes.forEach((n, i) =>
        this.#note(tile, n, sel.kind === "notes" && sel.index === i, dpr),
      );
      this.ws.ai?.drawOverlay(ctx, tile, dpr); // pending proposals and their prompts
      ctx.restore();
    }
  }

  #crosshair(tile, dpr) {
    const { x, y } = tile.cross;
    const a = tile.project([0, 0, 0]);
    const b = tile.project([1, 1, 1]);
    const [left, top] = [Math.min(a.x, b.x), Math.min(a.y, b.y)];
    const [width, height] = [Math.abs(b.x - a.x), Math.abs(b.y - a.y)];
    const gap = 6 * dpr;
    const ctx = this.ctx;
    ctx.strokeStyle = "rgba(80, 190, 255, 0.55)";
    ctx.lineWidth = dpr;
    ctx.beginPath();
    const px = Math.round(x) + 0.5;
    const py = Math.round(y) + 0.5;
    ctx.moveTo(left, py);
    ctx.lineTo(px - gap, py);
    ctx.moveTo(px + gap, py);
    ctx.lineTo(left + width, py);
    ctx.moveTo(px, top);
    ctx.lineTo(px, py - gap);
    ctx.moveTo(px, py + gap);
    ctx.lineTo(px, top + height);
    ctx.stroke();
  }

  /** Orientation letters at the image's edges (for images NiiVue sees as a stand-in). */
  #edgeLabels(tile, labels, dpr) {
    const a = tile.project([0, 0, 0]);
    const b = tile.project([1, 1, 1]);
    const [left, right] = [Math.min(a.x, b.x), Math.max(a.x, b.x)];
    const [top, bottom] = [Math.min(a.y, b.y), Math.max(a.y, b.y)];
    const [cx, cy] = [(left + right) / 2, (top + bottom) / 2];
    const ctx = this.ctx;
    ctx.font = `${14 * dpr}px system-ui, sans-serif`;
    ctx.fillStyle = "rgba(230, 236, 242, 0.9)";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillText(labels.top, cx, Math.max(top, tile.rect[1]) + 4 * dpr);
    ctx.textBaseline = "bottom";
    ctx.fillText(labels.bottom, cx, Math.min(bottom, tile.rect[1] + tile.rect[3]) - 4 * dpr);
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.fillText(labels.left, Math.max(left, tile.rect[0]) + 4 * dpr, cy);
    ctx.textAlign = "right";
    ctx.fillText(labels.right, Math.min(right, tile.rect[0] + tile.rect[2]) - 4 * dpr, cy);
    ctx.textAlign = "left";
  }

  #color(name) {
    return this.ws.labelByName(name)?.color || "#ffe119";
  }

  /** Half the voxel size along the tile's normal, in mm (a point "lies on" the slice). */
  #halfThickness(tile, vox) {
    const { viewer } = this.ws;
    const a = tile.project(viewer.voxelToFrac(vox)).depth;
    let best = Infinity;
    for (let axis = 0; axis < 3; axis++) {
      const v = [...vox];
      v[axis] += 1;
      const d = Math.abs(tile.project(viewer.voxelToFrac(v)).depth - a);
      if (d > 1e-6) best = Math.min(best, d);
    }
    return Number.isFinite(best) ? best / 2 : 0.5;
  }

  #box(tile, box, selected, dpr) {
    if (this.ws.isHidden(box.label)) return;
    const { viewer } = this.ws;
    const pts = boxCorners(box.start, box.end).map((v) => tile.project(viewer.voxelToFrac(v)));
    const depths = pts.map((p) => p.depth);
    const eps = 1e-3;
    if (tile.slice < Math.min(...depths) - eps || tile.slice > Math.max(...depths) + eps) return;
    const xs = pts.map((p) => p.x);
    const ys = pts.map((p) => p.y);
    const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
    const [w, hgt] = [Math.max(...xs) - x0, Math.max(...ys) - y0];
    const ctx = this.ctx;
    const color = this.#color(box.label);
    ctx.lineWidth = (selected ? 3 : 1.5) * dpr;
    ctx.strokeStyle = color;
    ctx.setLineDash(selected ? [] : [6 * dpr, 3 * dpr]);
    ctx.strokeRect(x0, y0, w, hgt);
    ctx.setLineDash([]);
    this.#tag(box.label, x0, y0 - 3 * dpr, color, dpr);
  }

  #point(tile, point, selected, dpr) {
    if (this.ws.isHidden(point.label)) return;
    const { viewer } = this.ws;
    const p = tile.project(viewer.voxelToFrac(point.position));
    if (Math.abs(p.depth - tile.slice) > this.#halfThickness(tile, point.position) + 1e-3) return;
    const ctx = this.ctx;
    const color = this.#color(point.label);
    const r = (selected ? 7 : 5) * dpr;
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = color;
    ctx.beginPath();
    ctx.arc(p.x, p.y, r, 0, 2 * Math.PI);
    ctx.moveTo(p.x - r - 4 * dpr, p.y);
    ctx.lineTo(p.x + r + 4 * dpr, p.y);
    ctx.moveTo(p.x, p.y - r - 4 * dpr);
    ctx.lineTo(p.x, p.y + r + 4 * dpr);
    ctx.stroke();
    this.#tag(point.label, p.x + r + 3 * dpr, p.y - r, color, dpr);
  }

  #note(tile, note, selected, dpr) {
    if (!note.position || (note.label && this.ws.isHidden(note.label))) return;
    const { viewer } = this.ws;
    const p = tile.project(viewer.voxelToFrac(note.position));
    if (Math.abs(p.depth - tile.slice) > this.#halfThickness(tile, note.position) + 1e-3) return;
    const ctx = this.ctx;
    const s = (selected ? 9 : 7) * dpr;
    ctx.fillStyle = selected ? "#fff3a0" : "#f5f5dc";
    ctx.strokeStyle = "#333";
    ctx.lineWidth = 1 * dpr;
    ctx.beginPath();
    ctx.rect(p.x - s / 2, p.y - s / 2, s, s);
    ctx.fill();
    ctx.stroke();
    const text = note.text.length > 28 ? `${note.text.slice(0, 27)}…` : note.text;
    this.#tag(text, p.x + s, p.y - s / 2, "#f5f5dc", dpr);
  }

  #tag(text, x, y, color, dpr) {
    const ctx = this.ctx;
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    const w = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(0,0,0,0.55)";
    ctx.fillRect(x - 2 * dpr, y - 13 * dpr, w + 4 * dpr, 14 * dpr);
    ctx.fillStyle = color;
    ctx.fillText(text, x, y);
  }
}
