// Pending proposals: engine answers shown over the image until the annotator accepts
// them (the server merges them into the annotation as an engine-sourced revision, and
// they are painted into the drawing so the screen matches the server, undoable) or
// rejects them. At most one pending proposal per slice and label.
import { ApiError } from "../api.js";
import { acceptProposals, rejectProposals } from "./proposals_api.js";
import { paintProposal, voxelGrid } from "./voxel_grid.js";
import { toast } from "./ui.js";

export class Proposals extends EventTarget {
  /**
   * @param {object} ws  image, viewer, persistence, history, labelByName(name),
   *                     historyPanel
   */
  constructor(ws) {
    super();
    this.ws = ws;
    this.pending = [];
    this.busy = false;
  }

  get count() {
    return this.pending.length;
  }

  /** The pending proposal on a slice (per-slice proposals) for a label, or null. */
  onSlice(axis, index, label) {
    return (
      this.pending.find(
        (p) => p.axis === axis && p.index === index && (!label || p.label === label),
      ) || null
    );
  }

  /** Show a new proposal; one on the same slice and label is replaced (and rejected). */
  add(proposal) {
    const old = this.pending.filter(
      (p) =>
        p.label === proposal.label &&
        p.axis === proposal.axis &&
        p.index === proposal.index &&
        p.index !== null,
    );
    this.pending = this.pending.filter((p) => !old.includes(p));
    this.pending.push(proposal);
    if (old.length) this.#tellRejected(old.map((p) => p.id));
    this.#changed();
  }

  /** Drop all pending proposals and tell the server (Esc, the Reject button). */
  async reject() {
    if (!this.pending.length) return 0;
    const ids = this.pending.map((p) => p.id);
    this.pending = [];
    this.#changed("rejected");
    await this.#tellRejected(ids);
    return ids.length;
  }

  async #tellRejected(ids) {
    try {
      await rejectProposals(this.ws.image.id, ids);
    } catch (err) {
      // The server forgets proposals on its own; nothing of the user's work is lost.
      if (!(err instanceof ApiError && [404, 409].includes(err.status)))
        toast(`Could not reject on the server: ${err.message}`, "warn");
    }
  }

  /**
   * Accept every pending proposal: unsaved edits are saved first (a human revision),
   * then the server merges the proposals into that version; the drawing gets the same
   * voxels, as one undo step. Returns the number accepted (0 if nothing happened).
   */
  async accept(mode = "add") {
    if (!this.pending.length || this.busy) return 0;
    const { ws } = this;
    const p = ws.persistence;
    this.busy = true;
    this.#changed("busy");
    try {
      if (p.dirty) {
        const saved = await p.save("");
        if (saved.conflict) {
          toast(
            "This annotation was saved elsewhere meanwhile: press Save to resolve that, " +
              "then accept again.",
            "error",
            8000,
          );
          return 0;
        }
      }
      // The server merges one label at a time: one revision per label.
      const labels = [...new Set(this.pending.map((x) => x.label))];
      const done = [];
      for (const label of labels) {
        const batch = this.pending.filter((x) => x.label === label);
        let result;
        try {
          result = await acceptProposals(
            ws.image.id,
            batch.map((x) => x.id),
            p.annotation?.version ?? null,
            mode,
          );
        } catch (err) {
          const stale = err instanceof ApiError && err.status === 409;
          toast(
            stale
              ? `Not accepted: ${err.message}. Reload the annotation (Revisions) and try again.`
              : `Accept failed: ${err.message}`,
            "error",
            8000,
          );
          break;
        }
        const accepted = new Set(result.accepted);
        const merged = batch.filter((x) => accepted.has(x.id));
        this.#paint(merged, mode);
        p.setAnnotation(result.annotation);
        p.markClean();
        p.dispatchEvent(new CustomEvent("saved", { detail: { annotation: result.annotation } }));
        this.pending = this.pending.filter((x) => !accepted.has(x.id));
        done.push(...merged);
      }
      this.#changed("accepted");
      ws.historyPanel.refresh();
      return done.length;
    } catch (err) {
      toast(`Accept failed: ${err.message}`, "error");
      return 0;
    } finally {
      this.busy = false;
      this.#changed("idle");
    }
  }

  /** Paint accepted proposals into the drawing bitmap (one undo step). */
  #paint(proposals, mode) {
    const { viewer, history } = this.ws;
    const bitmap = viewer.ensureDrawing();
    const grid = voxelGrid(viewer);
    const engines = new Set();
    for (const prop of proposals) {
      const value = this.ws.labelByName(prop.label)?.value;
      if (!value || value > 255) continue;
      paintProposal(bitmap, grid, prop, value, mode);
      engines.add(prop.engine);
    }
    viewer.refreshDrawing();
    history.recordMask(`Accepted ${[...engines].join(", ") || "proposal"}`);
  }

  #changed(reason = "change") {
    this.dispatchEvent(new CustomEvent("change", { detail: { reason } }));
  }
}
