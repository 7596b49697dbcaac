// The drawing bitmap (NiiVue's, in RAS voxel order, see ras.js) seen through stored voxel
// indices (plane, row, column): read a slice of a label, paint a proposal into it.
// The two grids differ by a permutation and flips of the axes only, so the bitmap index
// of (p, r, c) is linear: offset + p*stride[0] + r*stride[1] + c*stride[2].

/**
 * The bitmap index of stored voxels.
 * @param {object} viewer  the workspace viewer (voxelToFrac, nv, image)
 * @returns {{shape: number[], offset: number, stride: number[], index: Function}}
 */
export function voxelGrid(viewer) {
  const nv = viewer.nv;
  const dims = nv.back?.dims || nv.volumes[0].hdr.dims;
  const [nx, ny] = [dims[1], dims[2]];
  const flat = (vox) => {
    const [x, y, z] = nv.frac2vox(viewer.voxelToFrac(vox));
    return x + nx * (y + ny * z);
  };
  const offset = flat([0, 0, 0]);
  const stride = [0, 1, 2].map((a) => {
    const v = [0, 0, 0];
    v[a] = 1;
    return flat(v) - offset;
  });
  const shape = viewer.image.shape.slice(0, 3);
  return {
    shape,
    offset,
    stride,
    index: (p, r, c) => offset + p * stride[0] + r * stride[1] + c * stride[2],
  };
}

/** The two array axes of a slice across `axis`, in order. */
export function inPlaneAxes(axis) {
  return [0, 1, 2].filter((a) => a !== axis);
}

/**
 * One slice of a label in the drawing: a Uint8Array (1 where the bitmap holds `value`)
 * over the two remaining axes in order, C order.
 * @param {Uint8Array|null} bitmap
 * @param {object} grid  voxelGrid()
 * @param {number} axis, index  the slice
 * @param {number} value  the label's value
 */
export function labelPlane(bitmap, grid, axis, index, value) {
  const [u, v] = inPlaneAxes(axis);
  const [nu, nv] = [grid.shape[u], grid.shape[v]];
  const out = new Uint8Array(nu * nv);
  if (!bitmap) return out;
  const base = grid.offset + index * grid.stride[axis];
  const [su, sv] = [grid.stride[u], grid.stride[v]];
  for (let i = 0; i < nu; i++) {
    let k = base + i * su;
    for (let j = 0; j < nv; j++, k += sv) if (bitmap[k] === value) out[i * nv + j] = 1;
  }
  return out;
}

/**
 * Visit the voxels a proposal marks: fn(bitmapIndex, p, r, c).
 * @param {object} proposal  {origin, shape, data (Uint8Array, C order)}
 * @param {object} grid  voxelGrid()
 */
export function forEachProposalVoxel(proposal, grid, fn) {
  const [o0, o1, o2] = proposal.origin;
  const [n0, n1, n2] = proposal.shape;
  const data = proposal.data;
  let m = 0;
  for (let p = 0; p < n0; p++) {
    for (let r = 0; r < n1; r++) {
      for (let c = 0; c < n2; c++, m++) {
        if (data[m]) fn(grid.index(o0 + p, o1 + r, o2 + c), o0 + p, o1 + r, o2 + c);
      }
    }
  }
}

/**
 * Paint a proposal into the bitmap with the label's `value` ("add"). With mode
 * "replace", the label's other voxels within the proposal's box are cleared first.
 * Returns the number of voxels written.
 */
export function paintProposal(bitmap, grid, proposal, value, mode = "add") {
  if (mode === "replace") {
    const [o0, o1, o2] = proposal.origin;
    const [n0, n1, n2] = proposal.shape;
    for (let p = o0; p < o0 + n0; p++)
      for (let r = o1; r < o1 + n1; r++)
        for (let c = o2; c < o2 + n2; c++) {
          const k = grid.index(p, r, c);
          if (bitmap[k] === value) bitmap[k] = 0;
        }
  }
  let n = 0;
  forEachProposalVoxel(proposal, grid, (k) => {
    bitmap[k] = value;
    n++;
  });
  return n;
}

/**
 * A proposal's slice across `axis` at `index`, as a Uint8Array over the two remaining
 * axes of the whole image (C order), or null if the proposal does not reach that slice.
 */
export function proposalPlane(proposal, shape, axis, index) {
  const lo = proposal.origin[axis];
  if (index < lo || index >= lo + proposal.shape[axis]) return null;
  const [u, v] = inPlaneAxes(axis);
  const out = new Uint8Array(shape[u] * shape[v]);
  const [n0, n1, n2] = proposal.shape;
  const [o0, o1, o2] = proposal.origin;
  const data = proposal.data;
  let m = 0;
  for (let p = 0; p < n0; p++)
    for (let r = 0; r < n1; r++)
      for (let c = 0; c < n2; c++, m++) {
        if (!data[m]) continue;
        const vox = [o0 + p, o1 + r, o2 + c];
        if (vox[axis] !== index) continue;
        out[vox[u] * shape[v] + vox[v]] = 1;
      }
  return out;
}
