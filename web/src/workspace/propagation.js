// 3D propagation with the AI model: from the current slice, one slice at a time in both
// directions, each request carrying the neighbouring slice's mask as it is on screen
// (drawing + pending proposal), until the engine says the structure has ended, the
// volume ends, or the user stops. Each slice's answer is a pending proposal. Slices that
// already show the label (done before, or drawn) are kept and walked through, so after a
// stop and a correction (AI click, brush) another run continues where work is missing.
import { encodePlane } from "./proposals_api.js";
import { SLICE_TYPE } from "./geometry.js";
import { toast } from "./ui.js";

export class Propagation extends EventTarget {
  /**
   * @param {object} ws  image, viewer, activeLabel(kind)
   * @param {object} ai  the AiTools: request(), workingPlane(), currentSlice(), proposals
   */
  constructor(ws, ai) {
    super();
    this.ws = ws;
    this.ai = ai;
    this.running = false;
    this.stopped = false;
  }

  /** Start (or, when running, stop). */
  toggle() {
    if (this.running) this.stop();
    else this.start();
  }

  stop() {
    if (!this.running) return;
    this.stopped = true;
    this.ai.status.say("stopping after this slice…");
  }

  /** The slice number the status bar shows (1-based, along the view's RAS axis). */
  #shown(axis, index) {
    const { viewer } = this.ws;
    const vox = viewer.fracToVoxel(viewer.nv.scene.crosshairPos).vox;
    vox[axis] = index;
    const ras = viewer.nv.frac2vox(viewer.voxelToFrac(vox));
    return ras[2 - SLICE_TYPE[viewer.sliderView()]] + 1;
  }

  #follow(axis, index) {
    const { viewer } = this.ws;
    const vox = viewer.fracToVoxel(viewer.nv.scene.crosshairPos).vox;
    vox[axis] = index;
    viewer.goTo(vox);
  }

  async start() {
    const { ws, ai } = this;
    if (this.running) return;
    if (ws.image.shape[0] === 1) {
      toast("Propagation needs a volume: this image has one slice.", "info");
      return;
    }
    const label = ws.activeLabel("mask");
    if (!label) {
      toast("This project has no mask label: add one on the project's Labels page.", "warn");
      return;
    }
    await ai.loadEngines();
    const { axis, index: start } = ai.currentSlice();
    if (!ai.workingPlane(axis, start, label.name).some((v) => v)) {
      toast(
        `Outline "${label.name}" on this slice first (AI box, brush…): ` +
          "propagation continues it to the next slices.",
        "info",
        6000,
      );
      return;
    }
    this.running = true;
    this.stopped = false;
    this.#changed();
    const count = ws.image.shape[axis];
    const ends = [];
    let done = 0;
    let kept = 0;
    try {
      for (const dir of [1, -1]) {
        let k = start;
        while (!this.stopped) {
          const next = k + dir;
          if (next < 0 || next >= count) {
            ends.push("end of the volume");
            break;
          }
          if (ai.workingPlane(axis, next, label.name).some((v) => v)) {
            kept++; // done before (or drawn): keep it, continue beyond it
            k = next;
            continue;
          }
          const mask = ai.workingPlane(axis, k, label.name);
          const up = this.#shown(axis, next) > this.#shown(axis, k);
          const body = {
            engine: "litemedsam",
            label: label.name,
            axis,
            index: next,
            box: null,
            positive: [],
            negative: [],
            foreground: [],
            background: [],
            previous: { plane: await encodePlane(mask) },
            // from_index: the slice the mask comes from, for the intensity stop check
            params: { propagate: true, from_index: k },
          };
          this.#follow(axis, next);
          const progress = `slice ${this.#shown(axis, next)} ${up ? "↑" : "↓"}, ${done} done`;
          const prop = await ai.request(body, { quiet: true, progress, add: false });
          if (prop.info?.stop || !prop.voxels) {
            ai.discard(prop);
            ends.push(prop.info?.reason || "the structure ended");
            break;
          }
          ai.proposals.add(prop);
          done++;
          k = next;
        }
      }
    } catch (err) {
      toast(`Propagation stopped: ${err.message}`, "error", 8000);
      ends.push("error");
    } finally {
      const how = this.stopped ? "stopped" : `done (${[...new Set(ends)].join("; ")})`;
      if (!this.stopped) this.#follow(axis, start); // stopped: stay to correct this slice
      this.running = false;
      this.stopped = false;
      const also = kept ? `, ${kept} kept` : "";
      ai.status.say(`propagation ${how}: ${done} slice${done === 1 ? "" : "s"}${also}`);
      this.#changed();
    }
  }

  #changed() {
    this.dispatchEvent(new CustomEvent("change", { detail: { running: this.running } }));
  }
}
