// Saving: revisions (explicit save), drafts (autosave), conflicts, submit, history.
// The server is the truth: `annotation.version` from the last load or save is sent as
// `base_version`, and a 409 is shown to the user, never overwritten.
import { api, ApiError, gzipBytes, toBase64 } from "../api.js";
import { toServer } from "./annotation.js";

const AUTOSAVE_DELAY_MS = 4000;

export class Persistence extends EventTarget {
  /**
   * @param {object} ws  image, me, viewer, content (ContentModel)
   */
  constructor(ws) {
    super();
    this.ws = ws;
    this.annotation = null; // AnnotationOut of the annotation being edited
    this.baseVersion = null;
    this.dirty = false; // changed since the last load/save
    this.maskDirty = false; // the mask changed since the last load/save
    this.draftSaved = true; // the current changes are in the server's draft
    this.draftAt = null;
    this.timer = null;
    this.busy = null; // the save or autosave in flight
  }

  get imageId() {
    return this.ws.image.id;
  }

  /** Everything the workspace needs on opening: my annotation (or null), the others on
   * this image, and my draft (or null). */
  async loadInitial() {
    const [annotations, draft] = await Promise.all([
      api.get(`/images/${this.imageId}/annotations`),
      api.get(`/images/${this.imageId}/draft`),
    ]);
    const mine = annotations.find((a) => a.owner_id === this.ws.me.id) || null;
    return { mine, annotations, draft };
  }

  /** Make `annotation` (AnnotationOut or null for a new one) the one being edited. */
  setAnnotation(annotation) {
    this.annotation = annotation;
    this.baseVersion = annotation ? annotation.version : null;
    this.#emit("annotation");
  }

  markClean() {
    clearTimeout(this.timer);
    this.dirty = false;
    this.maskDirty = false;
    this.draftSaved = true;
    this.#emit("status");
  }

  /** Something changed: remember it and schedule an autosave of the draft. */
  changed({ mask = false } = {}) {
    this.dirty = true;
    if (mask) this.maskDirty = true;
    this.draftSaved = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.saveDraft().catch(() => {}), this.#autosaveDelay());
    this.#emit("status");
  }

  /** Wait longer on large images: every draft carries the whole mask (compressed). */
  #autosaveDelay() {
    const voxels = this.ws.image.shape.reduce((a, b) => a * b, 1);
    return Math.max(AUTOSAVE_DELAY_MS, Math.min(voxels / 5e3, 30_000));
  }

  /** The mask as a request payload: NIfTI (gzip, base64) on the image grid, or null
   * when nothing is painted. */
  async maskPayload() {
    const viewer = this.ws.viewer;
    if (!viewer.hasDrawing()) return null;
    const nifti = await viewer.drawingNifti();
    return { encoding: "nifti", data: toBase64(await gzipBytes(nifti)) };
  }

  async #body(message, { forDraft = false } = {}) {
    const body = { content: toServer(this.ws.content.content), message };
    if (forDraft || this.maskDirty || !this.annotation) body.mask = await this.maskPayload();
    return body;
  }

  /** Autosave: PUT the draft (not a revision). */
  async saveDraft() {
    clearTimeout(this.timer);
    if (!this.dirty || this.draftSaved) return;
    await this.#exclusive(async () => {
      const body = await this.#body("", { forDraft: true });
      body.annotation_id = this.annotation?.id ?? null;
      body.base_version = this.baseVersion;
      try {
        const draft = await api.put(`/images/${this.imageId}/draft`, body);
        this.draftSaved = true;
        this.draftAt = draft.updated_at;
        this.#emit("status");
      } catch (err) {
        this.#emit("error", { error: err, what: "autosave" });
        throw err;
      }
    });
  }

  async discardDraft() {
    await api.del(`/images/${this.imageId}/draft`);
    this.draftAt = null;
    this.#emit("status");
  }

  /**
   * Save a revision. Returns the AnnotationOut, or throws ApiError; a 409 is returned
   * as {conflict: details} for the caller to resolve with the user.
   */
  async save(message = "") {
    clearTimeout(this.timer);
    return this.#exclusive(async () => {
      const body = await this.#body(message);
      let saved;
      try {
        if (this.annotation) {
          body.base_version = this.baseVersion;
          saved = await api.put(`/annotations/${this.annotation.id}`, body);
        } else {
          saved = await api.post(`/images/${this.imageId}/annotations`, body);
        }
      } catch (err) {
        if (err instanceof ApiError && err.status === 409)
          return { conflict: await this.#conflictDetails(err) };
        throw err;
      }
      this.setAnnotation(saved);
      this.markClean();
      this.draftAt = null;
      this.#emit("saved", { annotation: saved });
      return { annotation: saved };
    });
  }

  async #conflictDetails(err) {
    const details = { ...(err.details || {}), message: err.message };
    if (!details.current_version && details.annotation_id) {
      // A second "create": an annotation of mine exists (made in another tab).
      const current = await api.get(`/annotations/${details.annotation_id}`);
      details.current_version = current.version;
      details.saved_at = current.head?.created_at;
    }
    return details;
  }

  /** Submit for review (saving first if there are unsaved changes). */
  async submit() {
    if (this.dirty || !this.annotation) {
      const result = await this.save("");
      if (result.conflict) return result;
    }
    const updated = await api.post(`/annotations/${this.annotation.id}/submit`, {
      base_version: this.baseVersion,
    });
    this.setAnnotation(updated);
    this.#emit("saved", { annotation: updated });
    return { annotation: updated };
  }

  async revisions() {
    if (!this.annotation) return [];
    return api.get(`/annotations/${this.annotation.id}/revisions`);
  }

  async restore(revisionId) {
    const updated = await api.post(`/annotations/${this.annotation.id}/restore`, {
      revision_id: revisionId,
      base_version: this.baseVersion,
    });
    this.setAnnotation(updated);
    this.markClean();
    this.#emit("saved", { annotation: updated });
    return updated;
  }

  /** Reload an annotation's current state from the server. */
  async reload(annotationId) {
    const fresh = await api.get(`/annotations/${annotationId}`);
    this.setAnnotation(fresh);
    return fresh;
  }

  /** Keep the local edits as my draft on the server (now, not debounced). */
  async flush() {
    if (this.dirty && !this.draftSaved) await this.saveDraft();
  }

  async #exclusive(fn) {
    while (this.busy) await this.busy.catch(() => {});
    this.busy = fn();
    this.#emit("status");
    try {
      return await this.busy;
    } finally {
      this.busy = null;
      this.#emit("status");
    }
  }

  stop() {
    clearTimeout(this.timer);
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
