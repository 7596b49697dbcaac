// Where things are on screen: NiiVue's 2D tiles, and a projection from its texture
// fractions to canvas pixels for drawing overlays (boxes, points, crosshair, letters).
import { SLICE_TYPE } from "./geometry.js";

/**
 * The 2D slice tiles NiiVue drew last, each with `rect` ([left, top, width, height] in
 * device pixels), `slice` (its position along the normal, in NiiVue's mm), `project(frac)`
 * → {x, y, depth} and `cross` (the crosshair, projected).
 */
export function screenTiles(nv) {
  if (!nv?.volumes?.length) return [];
  const here = nv.frac2mm(nv.scene.crosshairPos);
  return nv.screenSlices
    .filter((s) => s.axCorSag <= 2 && s.fovMM && s.leftTopMM)
    .map((s) => {
      const a = s.axCorSag;
      const inPlane = a === 0 ? [0, 1] : a === 1 ? [0, 2] : [1, 2];
      const normal = 2 - a;
      let [left, top, width, height] = s.leftTopWidthHeight;
      const mirror = width < 0; // radiological convention: drawn mirrored
      if (mirror) {
        left += width;
        width = -width;
      }
      const project = (frac) => {
        const mm = nv.frac2mm(frac);
        let fx = (mm[inPlane[0]] - s.leftTopMM[0]) / s.fovMM[0];
        const fy = (mm[inPlane[1]] - s.leftTopMM[1]) / s.fovMM[1];
        if (mirror) fx = 1 - fx;
        return { x: left + fx * width, y: top + (1 - fy) * height, depth: mm[normal] };
      };
      const cross = project(nv.scene.crosshairPos);
      return { axCorSag: a, rect: [left, top, width, height], slice: here[normal], project, cross };
    });
}

/** Where the volume's extent lies in a view: [left, top, width, height] in CSS px
 * relative to the canvas (the image itself, not the whole tile), or null. */
export function imageRect(nv, view) {
  const dpr = nv.uiData.dpr || 1;
  const tile = screenTiles(nv).find((x) => x.axCorSag === SLICE_TYPE[view]);
  if (!tile) return null;
  const a = tile.project([0, 0, 0]);
  const b = tile.project([1, 1, 1]);
  const left = Math.min(a.x, b.x);
  const top = Math.min(a.y, b.y);
  return [left / dpr, top / dpr, Math.abs(b.x - a.x) / dpr, Math.abs(b.y - a.y) / dpr];
}
