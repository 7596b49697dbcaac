// Workarounds for NiiVue 0.69, in one place so they can be checked (and dropped) when
// NiiVue is upgraded. Each says what goes wrong without it.

const FAST_STATS_VOXELS = 4e6;
const SAMPLE_VOXELS = 2e6;
const MINMAX_STRIDE = 5;

/**
 * NVImage.calMinMax (run on every load) copies the inner half of the volume voxel by
 * voxel and makes several passes over it: about 1 s for a 512×512×300 CT, most of the
 * time to open it. For large scalar volumes this estimates the same quantities from
 * strided samples: the range from every 5th voxel, the 2nd..98th percentiles (the
 * "auto" window) from about 2 million voxels of the same central region.
 */
export function installFastIntensityRange(NVImage) {
  const proto = NVImage.prototype;
  if (proto.calMinMax.medlabelFast) return;
  const original = proto.calMinMax;
  const fast = function (vol = Number.POSITIVE_INFINITY, isBorder = true) {
    const dims = this.hdr?.dims;
    const n = dims ? dims[1] * dims[2] * dims[3] : 0;
    const eligible =
      n >= FAST_STATS_VOXELS &&
      this.img &&
      this.img.length === n && // one frame, one scalar per voxel
      !(this.img instanceof Float64Array) &&
      this.hdr.intent_code !== 1002 && // label maps use their full range
      !this.colormapLabel;
    return eligible ? fastRange(this) : original.call(this, vol, isBorder);
  };
  fast.medlabelFast = true;
  proto.calMinMax = fast;
}

function fastRange(image) {
  const { img, hdr } = image;
  const [nx, ny, nz] = [hdr.dims[1], hdr.dims[2], hdr.dims[3]];
  const slope = hdr.scl_slope || 1;
  const inter = hdr.scl_inter || 0;
  const scaled = (raw) => raw * slope + inter;
  // The full range from every MINMAX_STRIDE-th voxel: it bounds window dragging only,
  // and a full pass costs about as much as everything else in opening the volume.
  let mn = Infinity;
  let mx = -Infinity;
  for (let i = 0; i < img.length; i += MINMAX_STRIDE) {
    const v = img[i];
    if (v < mn) mn = v; // NaN fails both tests
    if (v > mx) mx = v;
  }
  const set = (lo, hi) => {
    image.cal_min = lo;
    image.cal_max = hi;
    image.robust_min = lo;
    image.robust_max = hi;
    image.global_min = scaled(mn);
    image.global_max = scaled(mx);
    return [lo, hi, scaled(mn), scaled(mx)];
  };
  if (!(mx > mn)) return set(scaled(mn), scaled(mx));
  // Histogram of the central region (a quarter of each side trimmed, as NiiVue does).
  const b = [nx, ny, nz].map((d) => Math.floor(0.25 * d));
  const inner = (nx - 2 * b[0]) * (ny - 2 * b[1]) * (nz - 2 * b[2]);
  const step = Math.max(1, Math.ceil(inner / SAMPLE_VOXELS));
  const bins = 1001;
  const scl = (bins - 1) / (mx - mn);
  const hist = new Float64Array(bins);
  let count = 0;
  let zeros = 0;
  for (let z = b[2]; z < nz - b[2]; z++) {
    for (let y = b[1]; y < ny - b[1]; y++) {
      const row = (z * ny + y) * nx;
      for (let x = b[0] + ((y + z) % step); x < nx - b[0]; x += step) {
        const v = img[row + x];
        if (v !== v) continue; // NaN
        if (v === 0) zeros++;
        hist[Math.round((v - mn) * scl)]++;
        count++;
      }
    }
  }
  let ignoreZeros = image.ignoreZeroVoxels;
  if (!ignoreZeros && count > 0 && zeros / count > 0.6) ignoreZeros = true; // NiiVue's rule
  if (ignoreZeros && zeros > 0) {
    hist[Math.round((0 - mn) * scl)] -= zeros;
    count -= zeros;
  }
  const target = Math.round(count * (image.percentileFrac ?? 0.02));
  if (target < 1) return set(scaled(mn), scaled(mx));
  let lo = 0;
  for (let acc = 0; acc < target; lo++) acc += hist[lo];
  lo = Math.max(lo - 1, 0);
  let hi = bins;
  for (let acc = 0; acc < target;) acc += hist[--hi];
  if (hi <= lo) [lo, hi] = [0, bins - 1];
  let pct2 = scaled(lo / scl + mn);
  const pct98 = scaled(hi / scl + mn);
  if (ignoreZeros) pct2 = Math.min(pct2, 0);
  const range = set(pct2, pct98);
  const { cal_min: cmin, cal_max: cmax } = hdr;
  if (image.trustCalMinMax && Number.isFinite(cmin) && Number.isFinite(cmax) && cmax > cmin) {
    image.cal_min = cmin; // a window given on loading wins; robust_* stay the data's
    image.cal_max = cmax;
    return [cmin, cmax, range[2], range[3]];
  }
  return range;
}

/** Per-viewer workarounds: see each comment. `viewer.light` is the single-slice mode. */
export function patchInstance(nv, viewer) {
  // Each time the volume is (re)processed — on loading and on every window change —
  // NiiVue also computes a gradient volume for lit 3D rendering (a blur and a Sobel
  // pass over every voxel), which the workspace never shows. Without a GPU that is most
  // of the cost (4 of 7.7 s for a 1955×1841 radiograph). Run those passes on one pixel.
  const skip = {
    uniforms: new Proxy({}, { get: () => null }), // gl.uniform*(null, ...) does nothing
    use(gl) {
      gl.useProgram(nv.passThroughShader.program);
      gl.viewport(0, 0, 1, 1);
    },
  };
  nv.blurShader = skip;
  nv.gradientPrePassShader = skip;
  nv.sobelFirstOrderShader = skip;
  nv.sobelSecondOrderShader = skip;
  // Every pen movement re-uploads the whole drawing to the GPU and scans it for a
  // non-zero voxel (78 MB for a 512×512×300 CT: about a second per mouse move without
  // a GPU). Upload only what can have changed: the shown slice in single-slice mode,
  // the stroke's slice for axial strokes, else everything; no scan (we never smooth).
  const refreshDrawing = nv.refreshDrawing.bind(nv);
  nv.refreshDrawing = (isForceRedraw = true, useClickToSegmentBitmap = false) => {
    const bmp = nv.drawBitmap;
    const dims = nv.back?.dims;
    const plain =
      !useClickToSegmentBitmap && !nv.opts.clickToSegment && !(nv.opts.smoothDrawing > 0);
    if (!plain || !bmp || !dims || !nv.drawTexture || bmp.length !== dims[1] * dims[2] * dims[3]) {
      return refreshDrawing(isForceRedraw, useClickToSegmentBitmap);
    }
    const gl = nv.gl;
    const plane = dims[1] * dims[2];
    const z = Math.min(Math.max(nv.frac2vox(nv.scene.crosshairPos)[2], 0), dims[3] - 1);
    const slice = bmp.subarray(z * plane, (z + 1) * plane);
    gl.activeTexture(gl.TEXTURE7);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    if (nv.opts.is2DSliceShader) {
      gl.bindTexture(gl.TEXTURE_2D, nv.drawTexture);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, dims[1], dims[2], gl.RED, gl.UNSIGNED_BYTE, slice);
    } else if (nv.drawPenAxCorSag === 0) {
      gl.bindTexture(gl.TEXTURE_3D, nv.drawTexture);
      gl.texSubImage3D(
        gl.TEXTURE_3D,
        0,
        0,
        0,
        z,
        dims[1],
        dims[2],
        1,
        gl.RED,
        gl.UNSIGNED_BYTE,
        slice,
      );
    } else {
      gl.bindTexture(gl.TEXTURE_3D, nv.drawTexture);
      gl.texSubImage3D(
        gl.TEXTURE_3D,
        0,
        0,
        0,
        0,
        dims[1],
        dims[2],
        dims[3],
        gl.RED,
        gl.UNSIGNED_BYTE,
        bmp,
      );
    }
    if (isForceRedraw) nv.drawScene();
  };
  // The pen line leaves out its first end, the point just reached, so a stroke never
  // paints where the mouse was released: paint that point as well.
  const drawPenLine = nv.drawPenLine.bind(nv);
  nv.drawPenLine = (ptA, ptB, value) => {
    drawPenLine(ptA, ptB, value);
    nv.drawPt(ptA[0], ptA[1], ptA[2], value);
  };
  // The single-slice mode makes a new texture for each slice but does not keep it, so
  // the old, deleted one would be drawn: keep the new one. It is also always smoothed
  // (linear filtering); use the viewer's interpolation setting.
  const refreshLayers = nv.refreshLayers.bind(nv);
  nv.refreshLayers = (item, layer) => {
    refreshLayers(item, layer);
    nv.gl.viewport(0, 0, nv.gl.canvas.width, nv.gl.canvas.height);
    if (nv.opts.is2DSliceShader && layer === 0 && viewer.light) {
      const gl = nv.gl;
      gl.activeTexture(gl.TEXTURE0);
      nv.volumeTexture = gl.getParameter(gl.TEXTURE_BINDING_2D);
      const filter = nv.opts.isNearestInterpolation ? gl.NEAREST : gl.LINEAR;
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, filter);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, filter);
    }
  };
}
