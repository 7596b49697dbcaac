// AI and classical tools of the workspace: prompts on one slice (a box, positive and
// negative clicks, foreground / background scribbles), engine runs with a live latency
// readout, and the pending proposals they produce (accepted or rejected as a whole).
// Prompts go to the "target" engine: the AI model unless a tool of the Tools panel is
// chosen. The AI runs at once on every box or click; classical tools run on "Run".
import { encodePlane, listEngines, propose, rejectProposals } from "./proposals_api.js";
import { Proposals } from "./proposals.js";
import { ProposalOverlay } from "./proposal_overlay.js";
import { AiStatus } from "./ai_status.js";
import { Propagation } from "./propagation.js";
import { missingPrompts, requestBody } from "./proposal_request.js";
import { boxFromDrag, viewAxis, VIEW_OF_SLICE_TYPE } from "./geometry.js";
import { labelPlane, proposalPlane, voxelGrid } from "./voxel_grid.js";
import { toast } from "./ui.js";

/** The promptable model the AI tools (box, click, propagation) use by default. */
export const AI_ENGINE = "litemedsam";
/** The AI box backed by the project's active segmentation model (Models tab). */
export const PROJECT_MODEL = "project-model";
/** Engines that run at once on every box or click (the AI box engines). */
export const AI_BOX_ENGINES = [AI_ENGINE, PROJECT_MODEL];

export class AiTools extends EventTarget {
  /**
   * @param {object} ws  image, viewer, tools, persistence, history, activeLabel(kind),
   *                     labelByName(name), isHidden(name), overlay, historyPanel
   * @param {HTMLElement} stage  where the AI bar goes (over the viewer)
   */
  constructor(ws, stage) {
    super();
    this.ws = ws;
    this.engines = [];
    this.target = AI_ENGINE;
    this.params = new Map(); // engine name → {param: value} from the Tools panel
    this.options = { wholeVolume: false, scribbleRadius: 1 };
    this.prompts = null; // {axis, index, label, box, positive, negative, strokes, radius}
    this.seq = 0;
    this.proposals = new Proposals(ws);
    this.overlay = new ProposalOverlay(ws);
    this.propagation = new Propagation(ws, this);
    this.status = new AiStatus({
      accept: () => this.accept(),
      reject: () => this.reject(),
      stop: () => this.propagation.stop(),
    });
    stage.append(this.status.el);
    this.proposals.addEventListener("change", () => this.#refresh());
    this.propagation.addEventListener("change", () => this.#refresh());
  }

  // ---- engines ------------------------------------------------------------------------

  /** Fetch the engine catalogue (once; errors leave the tools without engines). */
  async loadEngines() {
    if (!this.loading) {
      // Listing may have to load the model first (seconds): say so.
      const stop = this.status.running("loading model…");
      this.loading = listEngines(this.ws.image?.project_id)
        .then((list) => {
          this.engines = list;
          this.dispatchEvent(new CustomEvent("engines"));
          return list;
        })
        .catch((err) => {
          this.loading = null;
          toast(`AI tools unavailable: ${err.message}`, "warn");
          return [];
        })
        .finally(() => {
          stop();
          if (this.status.text.textContent.startsWith("loading model")) this.status.say("");
        });
    }
    return this.loading;
  }

  engine(name = this.target) {
    return this.engines.find((e) => e.name === name) || null;
  }

  /** Prompts go to `name` (the AI model or a classical tool); prompts so far are dropped. */
  setTarget(name) {
    if (name === this.target) return;
    this.target = name;
    this.prompts = null;
    this.dispatchEvent(new CustomEvent("target", { detail: { name } }));
    this.ws.overlay.schedule();
  }

  get auto() {
    return AI_BOX_ENGINES.includes(this.target);
  }

  // ---- slices and prompts ---------------------------------------------------------------

  /** {axis, index} of the slice through `vox` shown in `view` (2D images: 0, 0). */
  sliceAt(vox, view) {
    const { viewer, image } = this.ws;
    if (image.shape[0] === 1) return { axis: 0, index: 0 };
    const axis = viewAxis(viewer.affine, view);
    const index = Math.min(Math.max(Math.round(vox[axis]), 0), image.shape[axis] - 1);
    return { axis, index };
  }

  /** The slice the slider shows. */
  currentSlice() {
    const { viewer } = this.ws;
    const vox = viewer.fracToVoxel(viewer.nv.scene.crosshairPos).vox;
    return this.sliceAt(vox, viewer.sliderView());
  }

  /** The prompt set of a slice and label, new if the last prompts were elsewhere. */
  #promptsFor({ axis, index }, label, fresh = false) {
    const p = this.prompts;
    if (fresh || !p || p.axis !== axis || p.index !== index || p.label !== label) {
      this.prompts = {
        axis,
        index,
        label,
        box: null,
        positive: [],
        negative: [],
        strokes: [],
        radius: this.options.scribbleRadius,
      };
    }
    return this.prompts;
  }

  clearPrompts() {
    this.prompts = null;
    this.ws.overlay.schedule();
  }

  #label() {
    if (this.propagation.running) {
      toast("Propagation is running: stop it first (Esc).", "info");
      return null;
    }
    const label = this.ws.activeLabel("mask");
    if (!label) {
      toast("This project has no mask label: add one on the project's Labels page.", "warn");
      return null;
    }
    return label;
  }

  /** A box dragged with the AI box tool (NiiVue's drag release). */
  onBoxDrag(p) {
    const label = this.#label();
    if (!label) return;
    const { viewer, image } = this.ws;
    const view = VIEW_OF_SLICE_TYPE[p.axCorSag];
    const a = viewer.fracToVoxel(p.fracStart).vox;
    const b = viewer.fracToVoxel(p.fracEnd).vox;
    const slice = this.sliceAt(a, view);
    const shape = image.shape.slice(0, 3);
    const box = boxFromDrag(a, b, viewAxis(viewer.affine, view), shape);
    if (!box) return;
    const corner = (v) => v.map((x, i) => (i === slice.axis ? slice.index : x));
    const prompts = this.#promptsFor(slice, label.name, true);
    prompts.box = [corner(box.start), corner(box.end)];
    this.ws.overlay.schedule();
    if (this.auto) this.run();
  }

  /** A click with the AI click tool: positive, or negative (shift / right button). */
  onClick(hit, negative) {
    const label = this.#label();
    if (!label) return;
    const shape = this.ws.image.shape;
    if (!hit.vox.every((x, i) => x >= -0.5 && x <= shape[i] - 0.5)) return; // beside the image
    const slice = this.sliceAt(hit.vox, hit.view);
    const prompts = this.#promptsFor(slice, label.name);
    const vox = hit.vox.map((x, i) => (i === slice.axis ? slice.index : Math.round(x * 100) / 100));
    (negative ? prompts.negative : prompts.positive).push(vox);
    this.ws.overlay.schedule();
    if (this.auto) this.run({ refine: true });
  }

  /** Start a scribble stroke at a picked point; returns the stroke to extend. */
  beginStroke(hit, kind) {
    const label = this.#label();
    if (!label) return null;
    const slice = this.sliceAt(hit.vox, hit.view);
    const prompts = this.#promptsFor(slice, label.name);
    prompts.radius = this.options.scribbleRadius;
    const stroke = { kind, view: hit.view, points: [] };
    prompts.strokes.push(stroke);
    this.extendStroke(stroke, hit.vox);
    return stroke;
  }

  /** Add the voxels from the stroke's last point to `vox` (no gaps, no repeats). */
  extendStroke(stroke, vox) {
    const p = this.prompts;
    if (!stroke || !p) return;
    const shape = this.ws.image.shape;
    const clamp = (v) => v.map((x, i) => Math.min(Math.max(Math.round(x), 0), shape[i] - 1));
    const target = vox.map((x, i) => (i === p.axis ? p.index : x));
    const last = stroke.last || target;
    const far = Math.max(...target.map((x, i) => Math.abs(x - last[i])));
    const steps = Math.max(1, Math.ceil(2 * far)); // half-voxel steps: no gaps
    for (let s = 1; s <= steps; s++) {
      const point = clamp(last.map((x, i) => x + ((target[i] - x) * s) / steps));
      const prev = stroke.points[stroke.points.length - 1];
      if (!prev || prev.some((x, i) => x !== point[i])) stroke.points.push(point);
    }
    stroke.last = target;
    this.ws.overlay.schedule();
  }

  endStroke(stroke) {
    if (!stroke) return;
    if (this.auto && !this.scribbleHint) {
      this.scribbleHint = true;
      toast("Scribbles are for the Tools panel's tools: choose one there, then Run.", "info");
    }
    this.dispatchEvent(new CustomEvent("prompts"));
  }

  // ---- working masks -------------------------------------------------------------------

  /** What the screen shows of a label on a slice: the drawing plus any pending proposal
   * there (Uint8Array over the two remaining axes, C order). */
  workingPlane(axis, index, labelName) {
    const { viewer, image } = this.ws;
    const value = this.ws.labelByName(labelName)?.value ?? 0;
    const plane = labelPlane(viewer.nv.drawBitmap, voxelGrid(viewer), axis, index, value);
    const pending = this.proposals.onSlice(axis, index, labelName);
    const extra = pending && proposalPlane(pending, image.shape.slice(0, 3), axis, index);
    if (extra) for (let i = 0; i < plane.length; i++) plane[i] |= extra[i];
    return plane;
  }

  // ---- running ---------------------------------------------------------------------------

  /** Run the target engine on the current prompts (or on the current slice without any). */
  async run({ refine = false } = {}) {
    await this.loadEngines();
    const engine = this.engine();
    if (!engine) {
      toast(`The engine "${this.target}" is not available on this server.`, "error");
      return null;
    }
    if (engine.name === PROJECT_MODEL && !engine.available) {
      toast(engine.message || `${engine.title} is not available.`, "warn", 8000);
      return null;
    }
    const label = this.#label();
    if (!label) return null;
    // The prompts given (on their slice), else none on the slice shown.
    const p = this.prompts;
    const given = p && (p.box || p.positive.length || p.negative.length || p.strokes.length);
    const prompts =
      given && p.label === label.name
        ? p
        : this.#promptsFor(this.currentSlice(), label.name, true);
    const body = await this.#body(engine, label.name, prompts, refine);
    if (!this.#hasRequired(engine, body)) return null;
    return this.request(body, { title: engine.title }).catch(() => null); // toasted
  }

  async #body(engine, label, p, refine) {
    const body = requestBody(engine, p, {
      label,
      params: this.auto ? {} : this.params.get(engine.name),
      wholeVolume: this.options.wholeVolume && !this.auto,
    });
    const wantsPrevious = refine || engine.required?.includes("previous");
    if (engine.prompts.includes("previous") && wantsPrevious) {
      const pending = this.proposals.onSlice(p.axis, p.index, label);
      if (pending) body.previous = { proposal: pending.id };
      else {
        const plane = this.workingPlane(p.axis, p.index, label);
        if (plane.some((v) => v)) body.previous = { plane: await encodePlane(plane) };
      }
    }
    return body;
  }

  /** Whether the body carries a prompt the engine needs; if not, say what to do. */
  #hasRequired(engine, body) {
    const missing = missingPrompts(engine, body);
    if (!missing) return true;
    toast(
      AI_BOX_ENGINES.includes(engine.name)
        ? "Drag a box around the structure first (AI box, Shift+A); clicks then refine it."
        : `${engine.title} needs ${missing.join(" or ")} prompts: give them, then Run.`,
      "info",
      6000,
    );
    return false;
  }

  /**
   * Send one proposal request with the latency readout; a newer request makes an older
   * answer stale (it is rejected). Returns the proposal (shown as pending), or null.
   * @param {object} body  the request (see proposals_api.propose)
   * @param {object} opts  title (engine title), quiet (no toasts), progress (propagation:
   *                       a prefix for the status; answers are never stale), add (false:
   *                       return the proposal without showing it)
   */
  async request(body, { title = "AI", quiet = false, progress = null, add = true } = {}) {
    const engine = this.engine(body.engine);
    const seq = progress ? this.seq : ++this.seq; // propagation steps are never stale
    const verb =
      engine && engine.loaded === false
        ? "loading model…"
        : AI_BOX_ENGINES.includes(body.engine)
          ? "AI running…"
          : `${title} running…`;
    const stop = this.status.running(progress ? `${progress} · ${verb}` : verb);
    let proposal;
    try {
      proposal = await propose(this.ws.image.id, body);
    } catch (err) {
      stop();
      if (seq === this.seq) this.status.say(`${title} failed`);
      if (!quiet) toast(err.message, "error", 8000);
      throw err;
    }
    const elapsed = stop();
    if (engine) engine.loaded = true;
    if (seq !== this.seq && !progress) {
      this.discard(proposal); // a newer prompt is on its way
      return null;
    }
    Object.assign(proposal, { axis: body.axis, index: body.index });
    this.status.done(elapsed, proposal.seconds);
    this.dispatchEvent(new CustomEvent("result", { detail: { proposal } }));
    if (!add) return proposal;
    if (!proposal.voxels) {
      if (!quiet) toast(`${title} found nothing here: try another prompt or parameters.`, "info");
      this.discard(proposal);
      return proposal;
    }
    this.proposals.add(proposal);
    return proposal;
  }

  /** Tell the server a proposal that was never shown is not wanted. */
  discard(proposal) {
    rejectProposals(this.ws.image.id, [proposal.id]).catch(() => {});
  }

  // ---- decisions -----------------------------------------------------------------------------

  async accept() {
    if (this.propagation.running || !this.proposals.count) return;
    const n = this.proposals.count;
    const done = await this.proposals.accept();
    if (done) {
      this.prompts = null;
      const v = this.ws.persistence.annotation?.version;
      this.status.say(`accepted ${done} proposal${done > 1 ? "s" : ""} · version ${v}`);
    } else if (n) this.#refresh();
  }

  async reject() {
    this.propagation.stop();
    const n = await this.proposals.reject();
    this.prompts = null;
    if (n) this.status.say(`rejected ${n} proposal${n > 1 ? "s" : ""}`);
    this.ws.overlay.schedule();
  }

  /** Esc: stop propagating, else reject pending proposals, else drop prompts; false if
   * there was nothing to cancel. */
  escape() {
    if (this.propagation.running) this.propagation.stop();
    else if (this.proposals.count) this.reject();
    else if (this.prompts) this.clearPrompts();
    else return false;
    return true;
  }

  /** Enter: accept pending proposals; false if there are none. */
  enter() {
    if (!this.proposals.count) return false;
    this.accept();
    return true;
  }

  /** Draw proposals and prompts on a tile of the overlay. */
  drawOverlay(ctx, tile, dpr) {
    this.overlay.draw(ctx, tile, dpr, this.proposals.pending, this.prompts);
  }

  #refresh() {
    this.overlay.prune(this.proposals.pending);
    this.status.setPending(this.proposals.count, { propagating: this.propagation.running });
    this.dispatchEvent(new CustomEvent("change"));
    this.ws.overlay.schedule();
  }
}
