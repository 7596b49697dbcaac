// The image viewer: NiiVue on a WebGL2 canvas, in radiological convention (patient's left
// on the screen's right in axial and coronal views, nose left in sagittal views), with
// the conversions between the screen, NiiVue's RAS mm and our voxel (plane, row, column).
import {
  apply4,
  axialStandIn,
  displayLayout,
  invert4,
  lpsToRas,
  rasToLps,
  SLICE_TYPE,
  VIEW_OF_SLICE_TYPE,
} from "./geometry.js";
import { niftiSform, planRasOrder, reorderedSform, toRasOrder, writeSform } from "./ras.js";
import { gunzipBytes } from "../api.js";
import { patchInstance } from "./niivue_patches.js";
import { DRAG_MODE, fetchWithProgress, isSoftwareRenderer, niivue } from "./loading.js";
import { imageRect, screenTiles } from "./screen.js";

// Above this many voxels a volume first opens in NiiVue's single-slice mode (only the
// shown axial slice is processed, on the CPU): with software WebGL (no GPU, e.g. virtual
// desktops) processing a whole CT on the "GPU" takes seconds per window change. Other
// views switch the full 3D mode on when asked for.
const LIGHT_VOXELS = { software: 1e6, gpu: 2.5e8 };

export class Viewer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} image  GET /api/images/{id} (shape, affine, channels, ...)
   * @param {object} hooks  afterDraw(), onDrawingChanged(action), onDragRelease(p),
   *                        onMeasurement(m), onMouseUp()
   */
  constructor(canvas, image, hooks = {}) {
    this.canvas = canvas;
    this.image = image;
    this.hooks = hooks;
    // A 2D image that is not an axial slice (a radiograph, a sagittal MR slice) is shown
    // to NiiVue as one (see axialStandIn): it looks the same, and NiiVue's fast
    // single-slice mode only shows axial slices. Voxel indices are unchanged; masks are
    // given the image's own geometry on the way in and out, and the overlay draws the
    // real orientation letters.
    const native = image.context?.native_view || "axial";
    this.flat = image.shape[0] === 1 && native !== "axial";
    this.affine = this.flat ? axialStandIn(image.affine, native) : image.affine;
    this.inverse = invert4(this.affine);
    this.edgeLabels =
      this.flat && image.geometry_known ? displayLayout(image.affine, native).labels : null;
    this.maskSform = null; // the drawing's real sform, when it differs from NiiVue's
    this.view = "axial";
    this.nv = null;
    this.light = false; // single-slice mode (see LIGHT_VOXELS)
    this.lightEligible = false;
  }

  async init() {
    const { Niivue, NVImage, cmapper, SHOW_RENDER, MULTIPLANAR_TYPE } = await niivue();
    this.NVImage = NVImage;
    this.cmapper = cmapper;
    const nv = new Niivue({
      backColor: [0.06, 0.07, 0.08, 1],
      // The 2D crosshair is drawn 1 px thin by our overlay (NiiVue's is a voxel wide).
      crosshairWidth: 0,
      fontColor: [0.85, 0.9, 0.95, 1],
      selectionBoxColor: [1, 0.88, 0.1, 0.9],
      rulerColor: [1, 0.85, 0.2, 1],
      measureLineColor: [1, 0.85, 0.2, 1],
      measureTextColor: [1, 0.95, 0.6, 1],
      isRadiologicalConvention: true,
      sagittalNoseLeft: true,
      // Orientation letters only where the image's patient geometry is known.
      isOrientationTextVisible: Boolean(this.image.geometry_known) && !this.flat,
      showAllOrientationMarkers: true,
      multiplanarShowRender: SHOW_RENDER.NEVER,
      multiplanarLayout: MULTIPLANAR_TYPE.GRID,
      multiplanarPadPixels: 4,
      isColorbar: false,
      show3Dcrosshair: false,
      isNearestInterpolation: true,
      dragAndDropEnabled: false,
      loadingText: "",
      logLevel: "error",
      // NiiVue's own hot keys would clash with ours (V cycles views, C clip planes...).
      viewModeHotKey: "NoKey",
      clipPlaneHotKey: "NoKey",
      cycleClipPlaneHotKey: "NoKey",
      penSize: 3,
      maxDrawUndoBitmaps: 4,
      drawingEnabled: false,
      dragMode: DRAG_MODE.windowing,
    });
    await nv.attachToCanvas(this.canvas);
    nv.onDrawingChanged = (action) => this.hooks.onDrawingChanged?.(action);
    nv.onDragRelease = (p) => this.hooks.onDragRelease?.(p);
    nv.onMeasurementCompleted = (m) => this.hooks.onMeasurement?.(m);
    nv.onMouseUp = () => this.hooks.onMouseUp?.();
    // Repaint our 2D overlay (boxes, points, notes) after every NiiVue frame.
    const drawScene = nv.drawScene.bind(nv);
    nv.drawScene = () => {
      const out = drawScene();
      this.hooks.afterDraw?.();
      return out;
    };
    this.max3D = nv.uiData.max3D;
    this.software = isSoftwareRenderer(nv.gl);
    patchInstance(nv, this);
    this.nv = nv;
    return this;
  }

  /** Load the image (a NIfTI ArrayBuffer) as the background volume. */
  async open(buffer, window = null) {
    buffer = this.#prepare(buffer);
    const dims = [1, 2, 3].map((i) => new DataView(buffer).getInt16(40 + 2 * i, true));
    const voxels = dims[0] * dims[1] * dims[2];
    this.voxels = voxels;
    // localStorage "medlabel.lightVoxels" overrides the threshold (tests, tuning).
    const threshold =
      Number(localStorage.getItem("medlabel.lightVoxels")) ||
      LIGHT_VOXELS[this.software ? "software" : "gpu"];
    // 2D images have one view only: the single-slice mode costs them nothing.
    this.lightEligible = this.image.channels === 1 && (dims[2] === 1 || voxels > threshold);
    this.light = this.lightEligible && this.view === "axial";
    this.nv.uiData.max3D = this.light ? 1 : this.max3D;
    await this.#setBackground(buffer, window);
    // Start on voxel centres (NiiVue starts at the volume's centre, which lies between
    // two slices when a dimension is even).
    const nv = this.nv;
    nv.scene.crosshairPos = nv.vox2frac(nv.frac2vox(nv.scene.crosshairPos));
    nv.setSliceType(SLICE_TYPE[this.view]);
  }

  /** Where the image lies on screen in a view (see screen.js). */
  imageRect(view) {
    return imageRect(this.nv, view);
  }

  /** The volume as NiiVue gets it: axial stand-in geometry for flat images, voxels in
   * RAS order (see ras.js). */
  #prepare(buffer) {
    const head = new DataView(buffer);
    if (this.flat) writeSform(head, niftiSform(this.affine));
    const plan = planRasOrder(head);
    if (this.flat) {
      const real = niftiSform(this.image.affine);
      this.maskSform = plan ? reorderedSform(real, plan) : real;
    }
    return toRasOrder(buffer, plan);
  }

  /** Parse and show a NIfTI buffer; `window` ({center, width}) is applied before the
   * volume is first processed on the GPU (each later change re-processes it). */
  async #setBackground(buffer, window = null) {
    const options = { url: "image.nii", name: "image.nii", buffer };
    if (window)
      Object.assign(options, {
        cal_min: window.center - window.width / 2,
        cal_max: window.center + window.width / 2,
      });
    const volume = await this.NVImage.loadFromUrl(options);
    this.nv.volumes = [];
    this.nv.addVolume(volume);
  }

  /** Swap the displayed background (e.g. a filtered version) keeping drawing, slice,
   * zoom/pan and, if asked, the window. */
  async replaceBackground(buffer, { keepWindow = true } = {}) {
    const nv = this.nv;
    const saved = nv.drawBitmap ? nv.drawBitmap.slice() : null;
    const crosshair = [...nv.scene.crosshairPos];
    const pan = [...nv.scene.pan2Dxyzmm];
    const win = this.getWindow();
    await this.#setBackground(this.#prepare(buffer), keepWindow ? win : null);
    nv.scene.crosshairPos = crosshair;
    nv.setPan2Dxyzmm(pan);
    if (saved) {
      nv.createEmptyDrawing();
      nv.drawBitmap.set(saved);
      nv.drawAddUndoBitmap();
      nv.refreshDrawing(false);
    }
    nv.setSliceType(SLICE_TYPE[this.view]);
  }

  get volume() {
    return this.nv?.volumes?.[0] || null;
  }

  // ---- views and slices -------------------------------------------------------------

  /** Switch between single-slice mode (axial only, cheap) and the full 3D mode (every
   * view; processes the whole volume on the GPU, which takes seconds without one). */
  #setLight(light) {
    if (light === this.light) return;
    const nv = this.nv;
    this.light = light;
    nv.uiData.max3D = light ? 1 : this.max3D;
    const saved = nv.drawBitmap ? nv.drawBitmap.slice() : null;
    nv.updateGLVolume();
    if (saved) {
      nv.createEmptyDrawing(); // a drawing texture of the new kind (2D or 3D)
      nv.drawBitmap.set(saved);
      nv.drawAddUndoBitmap();
      nv.refreshDrawing(false);
    }
  }

  /** Showing `view` first needs the slow switch to the full 3D mode. */
  needs3D(view) {
    return this.light && view !== "axial";
  }

  setView(view) {
    if (this.flat) view = "axial"; // the stand-in's only view
    // Large volumes go back to single-slice mode for the axial view (fast windowing).
    this.#setLight(this.lightEligible && view === "axial");
    this.view = view;
    this.nv.setSliceType(SLICE_TYPE[view]);
  }

  /** Redraw after the crosshair moved; in single-slice mode a new slice must be made. */
  #moved(zChanged = true) {
    if (this.light && zChanged) {
      this.nv.updateGLVolume();
      this.nv.refreshDrawing(false);
    }
    this.nv.drawScene();
  }

  /** The view whose slice index the slider shows (the native one in multiplanar). */
  sliderView() {
    return this.view === "multiplanar" ? this.image.context?.native_view || "axial" : this.view;
  }

  /** {index, count} of the current slice of `view` on NiiVue's RAS grid (0-based). */
  sliceInfo(view = this.sliderView()) {
    const vol = this.volume;
    if (!vol) return { index: 0, count: 1 };
    const k = 2 - SLICE_TYPE[view];
    const count = vol.dimsRAS[k + 1];
    const vox = this.nv.frac2vox(this.nv.scene.crosshairPos);
    return { index: Math.min(Math.max(Math.round(vox[k]), 0), count - 1), count };
  }

  setSlice(index, view = this.sliderView()) {
    const { count } = this.sliceInfo(view);
    const k = 2 - SLICE_TYPE[view];
    const i = Math.min(Math.max(Math.round(index), 0), count - 1);
    const vox = [...this.nv.frac2vox(this.nv.scene.crosshairPos)];
    vox[k] = i;
    const frac = this.nv.vox2frac(vox);
    const changed = this.nv.scene.crosshairPos[k] !== frac[k];
    this.nv.scene.crosshairPos[k] = frac[k];
    this.#moved(changed && k === 2);
  }

  stepSlice(delta, view = this.sliderView()) {
    this.setSlice(this.sliceInfo(view).index + delta, view);
  }

  zoomBy(factor) {
    const pan = [...this.nv.scene.pan2Dxyzmm];
    pan[3] = Math.min(Math.max(pan[3] * factor, 0.2), 40);
    this.nv.setPan2Dxyzmm(pan);
  }

  get zoom() {
    return this.nv.scene.pan2Dxyzmm[3];
  }

  resetView() {
    this.nv.setPan2Dxyzmm([0, 0, 0, 1]);
  }

  // ---- window / level -----------------------------------------------------------------

  getWindow() {
    const v = this.volume;
    if (!v) return null;
    return { center: (v.cal_min + v.cal_max) / 2, width: v.cal_max - v.cal_min };
  }

  setWindow(center, width) {
    const v = this.volume;
    if (!v) return;
    v.cal_min = center - width / 2;
    v.cal_max = center + width / 2;
    this.nv.refreshLayers(v, 0); // re-processes the volume on the GPU (as NiiVue's drag does)
    this.nv.drawScene();
  }

  /** NiiVue's robust range (2nd..98th percentile) as the window. */
  autoWindow() {
    const v = this.volume;
    if (!v) return;
    this.setWindow((v.robust_min + v.robust_max) / 2, Math.max(v.robust_max - v.robust_min, 1e-6));
  }

  // ---- coordinates ----------------------------------------------------------------------

  /** CSS px relative to the canvas → NiiVue texture fraction and tile (or null). */
  canvasToFrac(x, y) {
    const nv = this.nv;
    const dpr = nv.uiData.dpr || 1;
    const tile = nv.tileIndex(x * dpr, y * dpr);
    if (tile < 0) return null;
    const frac = nv.canvasPos2frac([x * dpr, y * dpr]);
    if (!frac || frac[0] < 0) return null;
    return { frac, tile, axCorSag: nv.screenSlices[tile].axCorSag };
  }

  /** NiiVue texture fraction → voxel (plane, row, column), continuous, and LPS mm. */
  fracToVoxel(frac) {
    const ras = this.nv.frac2mm(frac, 0, true);
    const vox = apply4(this.inverse, rasToLps([ras[0], ras[1], ras[2]]));
    return { vox, lps: apply4(this.image.affine, vox) };
  }

  /** Voxel (plane, row, column) → NiiVue texture fraction. */
  voxelToFrac(vox) {
    const ras = lpsToRas(apply4(this.affine, vox));
    return this.nv.mm2frac([ras[0], ras[1], ras[2]], 0, true);
  }

  /** A point under the mouse: {vox, lps, frac, view} or null outside any 2D slice. */
  pick(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const hit = this.canvasToFrac(clientX - rect.left, clientY - rect.top);
    if (!hit || hit.axCorSag > 2) return null;
    return {
      ...this.fracToVoxel(hit.frac),
      frac: hit.frac,
      view: VIEW_OF_SLICE_TYPE[hit.axCorSag],
    };
  }

  /** The 2D tiles on screen, with a projection to canvas pixels (see screen.js). */
  tiles() {
    return screenTiles(this.nv);
  }

  /** Move the crosshair to a voxel (plane, row, column). */
  goTo(vox) {
    const frac = this.voxelToFrac(vox);
    this.nv.scene.crosshairPos = [0, 1, 2].map((i) => Math.min(Math.max(frac[i], 0), 1));
    this.#moved();
  }

  /** Intensity at a voxel (plane, row, column) of the displayed volume, or null. */
  valueAt(vox) {
    const v = this.volume;
    if (!v || this.image.channels > 1) return null;
    const inside = vox.every((x, i) => Math.round(x) >= 0 && Math.round(x) < this.image.shape[i]);
    if (!inside) return null;
    // The displayed volume is in RAS order (see ras.js): index it through NiiVue's voxel.
    const [x, y, z] = this.nv.frac2vox(this.voxelToFrac(vox.map(Math.round)));
    const [nx, ny] = [v.hdr.dims[1], v.hdr.dims[2]];
    return v.img[x + nx * (y + ny * z)] * (v.hdr.scl_slope || 1) + (v.hdr.scl_inter || 0);
  }

  // ---- drawing ---------------------------------------------------------------------------

  ensureDrawing() {
    if (!this.nv.drawBitmap) this.nv.createEmptyDrawing();
    return this.nv.drawBitmap;
  }

  /** The drawing as NIfTI bytes on the image's own grid (or null if none). */
  async drawingNifti() {
    if (!this.nv.drawBitmap) return null;
    const bytes = await this.nv.saveImage({ filename: "", isSaveDrawing: true, volumeByIndex: 0 });
    if (this.maskSform)
      writeSform(new DataView(bytes.buffer, bytes.byteOffset, 352), this.maskSform);
    return bytes;
  }

  hasDrawing() {
    const bmp = this.nv.drawBitmap;
    if (!bmp) return false;
    const words = bmp.length % 4 === 0 && bmp.byteOffset % 4 === 0;
    const view = words ? new Uint32Array(bmp.buffer, bmp.byteOffset, bmp.length / 4) : bmp;
    for (let i = 0; i < view.length; i++) if (view[i] !== 0) return true;
    return false;
  }

  /** Load a stored mask (a .nii.gz on the image grid) as the drawing; false if none. */
  async loadDrawing(url) {
    let buffer = await fetchWithProgress(url);
    if (!buffer.byteLength) return false;
    if (this.flat) {
      // On the image's grid with its real geometry: give it the stand-in's, like the image.
      const bytes = new Uint8Array(buffer);
      buffer = (bytes[0] === 0x1f && bytes[1] === 0x8b ? await gunzipBytes(bytes) : bytes).buffer;
      writeSform(new DataView(buffer), niftiSform(this.affine));
    }
    const mask = await this.NVImage.loadFromUrl({ url: "mask.nii", name: "mask.nii", buffer });
    if (!this.nv.loadDrawing(mask))
      throw new Error("the stored mask does not fit this image's grid");
    return true;
  }

  refreshDrawing() {
    this.nv.drawAddUndoBitmap();
    this.nv.refreshDrawing(true);
  }

  /** Colours of mask labels (value → "#rrggbb"); hidden values are transparent. */
  /** The drawing's colours: a colormap {R, G, B, A, I, labels} indexed by mask value.
   * Only the small colormap texture changes (NiiVue's setDrawColormap would process the
   * whole volume on the GPU again). */
  setDrawColormap(cmap) {
    this.nv.drawLut = this.cmapper.makeDrawLut(cmap);
    if (this.volume) this.nv.refreshColormaps();
    this.nv.drawScene();
  }

  destroy() {
    const nv = this.nv;
    if (!nv) return;
    this.nv = null;
    try {
      nv.cleanup();
      nv.gl?.getExtension("WEBGL_lose_context")?.loseContext();
    } catch (err) {
      console.warn("viewer cleanup:", err);
    }
  }
}
