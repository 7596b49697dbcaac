// Reorder a NIfTI-1 volume so its voxel axes run along RAS (i → right, j → anterior,
// k → superior), by permuting and flipping axes only (no resampling): the sform is
// changed to match, so every voxel keeps its position in mm. NiiVue then needs no
// reorientation of its own, and its fast single-slice path (which assumes RAS order)
// shows large volumes correctly.

const OFF = {
  dim: 40,
  datatype: 70,
  bitpix: 72,
  pixdim: 76,
  voxOffset: 108,
  qformCode: 252,
  sformCode: 254,
  srow: 280,
};

/** The 3×4 sform (voxel i, j, k → RAS mm) of a little-endian NIfTI-1 header. */
export function readSform(view) {
  return [0, 1, 2].map((r) =>
    [0, 1, 2, 3].map((c) => view.getFloat32(OFF.srow + 16 * r + 4 * c, true)),
  );
}

/**
 * For each RAS axis, the file axis running closest to it and whether it runs backwards.
 * @param {number[][]} sform  3×4
 * @returns {{axis: number[], flip: boolean[]}}
 */
export function rasLayout(sform) {
  const norms = [0, 1, 2].map((c) => Math.hypot(sform[0][c], sform[1][c], sform[2][c]) || 1);
  const perms = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ];
  let axis = perms[0];
  let best = -1;
  for (const p of perms) {
    const score = p.reduce((s, c, r) => s + Math.abs(sform[r][c]) / norms[c], 0);
    if (score > best + 1e-9) [axis, best] = [p, score];
  }
  return { axis, flip: axis.map((c, r) => sform[r][c] < 0) };
}

/**
 * How to reorder a NIfTI file to RAS, from its header (a DataView of at least 352
 * bytes): null when nothing needs doing (already RAS, no sform, not little-endian
 * NIfTI-1, 4D). `writeHeader(out)` writes the new header into an output buffer.
 */
export function planRasOrder(view) {
  if (view.getInt32(0, true) !== 348 || view.getInt16(OFF.sformCode, true) <= 0) return null;
  const dims = [1, 2, 3].map((i) => Math.max(1, view.getInt16(OFF.dim + 2 * i, true)));
  const frames = [4, 5, 6, 7].reduce(
    (n, i) => n * Math.max(1, view.getInt16(OFF.dim + 2 * i, true)),
    1,
  );
  if (view.getInt16(OFF.dim, true) > 3 && frames > 1) return null; // 4D: leave to NiiVue
  const sform = readSform(view);
  const { axis, flip } = rasLayout(sform);
  if (axis.every((c, r) => c === r) && !flip.some(Boolean)) return null;
  // RAS axis r is file axis axis[r], possibly reversed.
  const fileStride = [1, dims[0], dims[0] * dims[1]];
  const newDims = axis.map((c) => dims[c]);
  const srcStride = axis.map((c, r) => (flip[r] ? -fileStride[c] : fileStride[c]));
  let srcStart = 0;
  axis.forEach((c, r) => {
    if (flip[r]) srcStart += (dims[c] - 1) * fileStride[c];
  });
  const offset = Math.round(view.getFloat32(OFF.voxOffset, true));
  const pix = [1, 2, 3].map((i) => view.getFloat32(OFF.pixdim + 4 * i, true));
  const plan = { offset, axis, flip, newDims, srcStride, srcStart, fileStride, dims };
  const writeHeader = (out) => {
    new Uint8Array(out).set(new Uint8Array(view.buffer, view.byteOffset, offset));
    const head = new DataView(out);
    writeSform(head, reorderedSform(sform, plan));
    newDims.forEach((n, r) => head.setInt16(OFF.dim + 2 * (r + 1), n, true));
    axis.forEach((c, r) => head.setFloat32(OFF.pixdim + 4 * (r + 1), pix[c], true));
  };
  return {
    ...plan,
    bpv: view.getInt16(OFF.bitpix, true) / 8,
    Kind: SCALAR_TYPES[view.getInt16(OFF.datatype, true)],
    writeHeader,
  };
}

/** The sform of the reordered grid, given the file grid's sform and the plan. */
export function reorderedSform(sform, { axis, flip, dims }) {
  return [0, 1, 2].map((row) => {
    const out = axis.map((c, r) => sform[row][c] * (flip[r] ? -1 : 1));
    let t = sform[row][3];
    axis.forEach((c, r) => {
      if (flip[r]) t += sform[row][c] * (dims[c] - 1);
    });
    return [...out, t];
  });
}

/** Write a 3×4 sform (voxel → RAS mm) into a NIfTI-1 header, as the only transform. */
export function writeSform(view, sform) {
  for (let row = 0; row < 3; row++) {
    for (let c = 0; c < 4; c++) view.setFloat32(OFF.srow + 16 * row + 4 * c, sform[row][c], true);
  }
  view.setInt16(OFF.sformCode, 1, true);
  view.setInt16(OFF.qformCode, 0, true);
}

/** NIfTI's sform (file i, j, k = our column, row, plane → RAS) from our voxel → LPS affine. */
export function niftiSform(affine) {
  const ras = (v) => [-v[0], -v[1], v[2]];
  const column = (j) => ras([affine[0][j], affine[1][j], affine[2][j]]);
  const cols = [column(2), column(1), column(0), ras([affine[0][3], affine[1][3], affine[2][3]])];
  return [0, 1, 2].map((row) => cols.map((col) => col[row]));
}

/**
 * The NIfTI bytes reordered to RAS (a new ArrayBuffer), or the input when it already is.
 * Little-endian NIfTI-1 with a valid sform (as medlabel's volume endpoint writes).
 */
export function toRasOrder(buffer, plan = planRasOrder(new DataView(buffer))) {
  if (!plan) return buffer;
  if (plan.axis.every((c, r) => c === r) && plan.Kind?.BYTES_PER_ELEMENT === plan.bpv) {
    flipInPlace(buffer, plan);
    return buffer;
  }
  const out = new ArrayBuffer(buffer.byteLength);
  plan.writeHeader(out);
  const { offset, newDims, srcStride, srcStart, bpv, Kind } = plan;
  copyVoxels(
    new Uint8Array(buffer, offset),
    new Uint8Array(out, offset),
    newDims,
    srcStride,
    srcStart,
    bpv,
    Kind,
  );
  return out;
}

// Axes in file order, only some reversed (e.g. an axial CT: columns run to the patient's
// left, rows to the back): reverse runs of voxels in place with the native
// TypedArray.reverse, about as fast as copying memory, and no second buffer.
function flipInPlace(buffer, plan) {
  const { offset, dims, flip, Kind } = plan;
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  const data = new Kind(buffer, offset, plane * nz);
  plan.writeHeader(buffer);
  if (flip[0] && flip[1] && flip[2]) {
    data.reverse();
    return;
  }
  for (let z = 0; z < nz; z++) {
    const slice = data.subarray(z * plane, (z + 1) * plane);
    if (flip[1]) slice.reverse(); // reverses rows and, within them, x
    if (flip[0] !== flip[1])
      for (let y = 0; y < ny; y++) slice.subarray(y * nx, (y + 1) * nx).reverse();
  }
  if (flip[2]) {
    const tmp = new Kind(plane);
    for (let z = 0; z < nz >> 1; z++) {
      const a = data.subarray(z * plane, (z + 1) * plane);
      const b = data.subarray((nz - 1 - z) * plane, (nz - z) * plane);
      tmp.set(a);
      a.set(b);
      b.set(tmp);
    }
  }
}

// NIfTI datatype codes of scalar types, as typed arrays.
const SCALAR_TYPES = {
  2: Uint8Array,
  4: Int16Array,
  8: Int32Array,
  16: Float32Array,
  64: Float64Array,
  256: Int8Array,
  512: Uint16Array,
  768: Uint32Array,
};

// Copy voxels in the new order; strides are in voxels. For scalar types the inner loop
// is one load and one store per voxel.
function copyVoxels(srcBytes, dstBytes, [nx, ny, nz], [sx, sy, sz], start, bpv, Kind) {
  const aligned = Kind && Kind.BYTES_PER_ELEMENT === bpv && srcBytes.byteOffset % bpv === 0;
  if (aligned) {
    const src = new Kind(srcBytes.buffer, srcBytes.byteOffset, nx * ny * nz);
    const dst = new Kind(dstBytes.buffer, dstBytes.byteOffset, nx * ny * nz);
    let o = 0;
    for (let z = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        let i = start + y * sy + z * sz;
        for (let x = 0; x < nx; x++, i += sx) dst[o++] = src[i];
      }
    }
    return;
  }
  let o = 0; // any voxel size (e.g. RGB24), byte by byte
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      let i = start + y * sy + z * sz;
      for (let x = 0; x < nx; x++, i += sx) {
        for (let b = 0; b < bpv; b++) dstBytes[o++] = srcBytes[i * bpv + b];
      }
    }
  }
}
