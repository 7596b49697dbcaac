// Pure geometry of the stored image grid: voxel indices (plane, row, column) with voxel
// centres at integers, an affine mapping them to patient coordinates in LPS mm (DICOM),
// and the RAS mm that NiiVue works in (x and y negated).

export const VIEWS = ["axial", "coronal", "sagittal"];

// NiiVue's SLICE_TYPE numbers for our views (multiplanar = 3).
export const SLICE_TYPE = { axial: 0, coronal: 1, sagittal: 2, multiplanar: 3 };
export const VIEW_OF_SLICE_TYPE = ["axial", "coronal", "sagittal"];

// The patient axis (0 = x L/R, 1 = y A/P, 2 = z S/I) normal to each view.
const NORMAL_AXIS = { sagittal: 0, coronal: 1, axial: 2 };

/** 4x4 matrix (nested arrays) times the point (x, y, z, 1); returns [x, y, z]. */
export function apply4(m, v) {
  return [0, 1, 2].map((i) => m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2] + m[i][3]);
}

/** Inverse of a 4x4 affine (nested arrays), by Gauss-Jordan elimination. */
export function invert4(m) {
  const a = m.map((row, i) => [...row.map(Number), ...[0, 1, 2, 3].map((j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < 4; c++) {
    let pivot = c;
    for (let r = c + 1; r < 4; r++) if (Math.abs(a[r][c]) > Math.abs(a[pivot][c])) pivot = r;
    if (Math.abs(a[pivot][c]) < 1e-12) throw new Error("the image affine is not invertible");
    [a[c], a[pivot]] = [a[pivot], a[c]];
    const p = a[c][c];
    for (let j = 0; j < 8; j++) a[c][j] /= p;
    for (let r = 0; r < 4; r++) {
      if (r === c) continue;
      const f = a[r][c];
      if (f !== 0) for (let j = 0; j < 8; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(4));
}

/** RAS mm (NiiVue) <-> LPS mm (DICOM, our affine): negate x and y. */
export const rasToLps = (p) => [-p[0], -p[1], p[2]];
export const lpsToRas = rasToLps;

/** Voxel size along (plane, row, column) in mm: the norms of the affine's columns. */
export function spacingOf(affine) {
  return [0, 1, 2].map((j) => Math.hypot(affine[0][j], affine[1][j], affine[2][j]));
}

/** For each array axis (plane, row, column), the patient axis it runs closest to
 * (a permutation; the same rule as medlabel.imaging.orientation.patient_axes). */
export function patientAxes(affine) {
  const sp = spacingOf(affine);
  const d = [0, 1, 2].map((i) => [0, 1, 2].map((j) => Math.abs(affine[i][j]) / (sp[j] || 1)));
  const perms = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ];
  let best = perms[0];
  let bestScore = -1;
  for (const p of perms) {
    const score = d[p[0]][0] + d[p[1]][1] + d[p[2]][2];
    if (score > bestScore + 1e-12) [best, bestScore] = [p, score];
  }
  return best;
}

/** The array axis (0 plane, 1 row, 2 column) that a view slices through. */
export function viewAxis(affine, view) {
  return patientAxes(affine).indexOf(NORMAL_AXIS[view]);
}

/** Round to 4 decimals (what the server stores) and clamp into the image's voxel range. */
export function clampVoxel(v, shape) {
  return v.map((x, i) => Math.round(Math.min(Math.max(x, -0.5), shape[i] - 0.5) * 1e4) / 1e4);
}

/**
 * A box on one slice from two dragged corners (voxel coordinates, continuous).
 * In-plane axes span the dragged rectangle; the sliced axis spans the one slice
 * (index ± 0.5). Returns null for a degenerate (zero-area) box.
 */
export function boxFromDrag(a, b, slicedAxis, shape) {
  const start = [0, 0, 0];
  const end = [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    if (i === slicedAxis) {
      const k = Math.round((a[i] + b[i]) / 2);
      start[i] = k - 0.5;
      end[i] = k + 0.5;
    } else {
      start[i] = Math.min(a[i], b[i]);
      end[i] = Math.max(a[i], b[i]);
    }
  }
  const s = clampVoxel(start, shape);
  const e = clampVoxel(end, shape);
  if (s.some((x, i) => e[i] - x < 1e-3)) return null;
  return { start: s, end: e };
}

/** The 8 corners of a voxel-space box. */
export function boxCorners(start, end) {
  const out = [];
  for (const p of [start[0], end[0]])
    for (const r of [start[1], end[1]]) for (const c of [start[2], end[2]]) out.push([p, r, c]);
  return out;
}

/** "12.3" style formatting of a number with at most `digits` decimals. */
export function fmt(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const text = Number(x).toFixed(digits);
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

// How the server shows each view (medlabel.imaging.orientation): the patient axis normal
// to the screen, and the (patient axis, direction) that points down and right.
const VIEW_LAYOUT = {
  axial: [2, [1, 1], [0, 1]], // down = posterior, right = patient left
  coronal: [1, [2, -1], [0, 1]], // down = inferior, right = patient left
  sagittal: [0, [2, -1], [1, 1]], // down = inferior, right = posterior
};
const LETTER = { "0,1": "L", "0,-1": "R", "1,1": "P", "1,-1": "A", "2,1": "S", "2,-1": "I" };
const OPPOSITE = { L: "R", R: "L", P: "A", A: "P", S: "I", I: "S" };

/**
 * Which array axis runs down and right on screen in `view` (and whether backwards), and
 * the orientation letters at the edges — as the server renders slices.
 */
export function displayLayout(affine, view) {
  const axes = patientAxes(affine);
  const [, [downPa, downSign], [rightPa, rightSign]] = VIEW_LAYOUT[view];
  const rowAxis = axes.indexOf(downPa);
  const colAxis = axes.indexOf(rightPa);
  const bottom = LETTER[`${downPa},${downSign}`];
  const right = LETTER[`${rightPa},${rightSign}`];
  return {
    down: { axis: rowAxis, flip: Math.sign(affine[downPa][rowAxis]) !== downSign },
    right: { axis: colAxis, flip: Math.sign(affine[rightPa][colAxis]) !== rightSign },
    labels: { top: OPPOSITE[bottom], bottom, left: OPPOSITE[right], right },
  };
}

/**
 * An axial stand-in for the affine of a 2D image shown in `view`: in the axial view it
 * looks exactly like the image in its own view (same axes down and right, same voxel
 * size), so a viewer can treat every 2D image as an axial slice.
 */
export function axialStandIn(affine, view) {
  const { down, right } = displayLayout(affine, view);
  const sp = spacingOf(affine);
  const plane = [0, 1, 2].find((a) => a !== down.axis && a !== right.axis);
  const out = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 1],
  ];
  out[0][right.axis] = right.flip ? -sp[right.axis] : sp[right.axis]; // +x: screen right
  out[1][down.axis] = down.flip ? -sp[down.axis] : sp[down.axis]; // +y: screen down
  out[2][plane] = sp[plane] || 1;
  return out;
}
