// Loading NiiVue and image volumes, and NiiVue's constants the workspace uses.
import { installFastIntensityRange } from "./niivue_patches.js";

// NiiVue (3 MB) is imported when the viewer starts, so the workspace can fetch the
// volume and show the preview slice while the browser still parses NiiVue.
let niivueModule = null;

/** The NiiVue module (imported once, with our fix of its intensity statistics). */
export function niivue() {
  niivueModule ??= import("/vendor/niivue.js").then((m) => {
    installFastIntensityRange(m.NVImage);
    return m;
  });
  return niivueModule;
}

/** Start loading NiiVue now (it is needed soon). */
export function preloadViewer() {
  niivue().catch(() => {}); // a failure is reported when the viewer starts
}

// NiiVue's DRAG_MODE values (its enum, stable across 0.6x).
export const DRAG_MODE = {
  none: 0,
  contrast: 1,
  measurement: 2,
  pan: 3,
  slicer3D: 4,
  callbackOnly: 5,
  roiSelection: 6,
  angle: 7,
  crosshair: 8,
  windowing: 9,
};

/** Fetch a URL into an ArrayBuffer, reporting progress (0..1) when the size is known. */
export async function fetchWithProgress(url, onProgress, signal) {
  const response = await fetch(url, { credentials: "same-origin", signal });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message || message;
    } catch (_) {
      /* not JSON */
    }
    throw new Error(message);
  }
  const total = Number(response.headers.get("Content-Length")) || 0;
  if (!total || !response.body) return response.arrayBuffer();
  const out = new Uint8Array(total);
  const reader = response.body.getReader();
  let offset = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    out.set(value, offset);
    offset += value.length;
    onProgress?.(offset / total);
  }
  return out.buffer;
}

/** True for software WebGL (SwiftShader, llvmpipe...): no GPU to process volumes. */
export function isSoftwareRenderer(gl) {
  try {
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const name = info
      ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL)
      : gl.getParameter(gl.RENDERER);
    return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(String(name));
  } catch (_) {
    return false;
  }
}
