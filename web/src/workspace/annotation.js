// The non-mask part of an annotation being edited: boxes, points, image classes and
// notes, in voxel coordinates (plane, row, column) of the stored image. Every edit goes
// through `edit()`, which records an undo step and tells listeners.

export function emptyContent() {
  return { boxes: [], points: [], classes: [], notes: [] };
}

const triple = (v) => (v ? v.map(Number) : null);

/** A server content (which carries both voxel and mm coordinates) → our model. */
export function fromServer(content) {
  const c = content || {};
  return {
    boxes: (c.boxes || []).map((b) => ({
      label: b.label,
      start: triple(b.start),
      end: triple(b.end),
    })),
    points: (c.points || []).map((p) => ({ label: p.label, position: triple(p.position) })),
    classes: [...(c.classes || [])],
    notes: (c.notes || []).map((n) => ({
      text: n.text,
      label: n.label ?? null,
      position: triple(n.position),
    })),
  };
}

/** Our model → the request body's `content` (voxel coordinates only; the server fills
 * in LPS mm from the image's affine). */
export function toServer(content) {
  const note = (n) => {
    const out = { text: n.text };
    if (n.label) out.label = n.label;
    if (n.position) out.position = n.position;
    return out;
  };
  return {
    boxes: content.boxes.map((b) => ({ label: b.label, start: b.start, end: b.end })),
    points: content.points.map((p) => ({ label: p.label, position: p.position })),
    classes: [...content.classes],
    notes: content.notes.map(note),
  };
}

export class ContentModel extends EventTarget {
  constructor(history) {
    super();
    this.history = history;
    this.content = emptyContent();
  }

  snapshot() {
    return structuredClone(this.content);
  }

  /** Replace everything without an undo step (loading a revision or draft). */
  load(content) {
    this.content = fromServer(content);
    this.#changed("load");
  }

  /** Put back a snapshot (undo/redo). */
  restore(snapshot) {
    this.content = snapshot;
    this.#changed("restore");
  }

  /** Apply `fn(content)` as one undoable edit named `label`. */
  edit(label, fn) {
    const before = this.snapshot();
    fn(this.content);
    if (this.history.recordContent(before, this.snapshot(), label)) this.#changed("edit");
  }

  addBox(label, start, end) {
    this.edit(`Box "${label}"`, (c) => c.boxes.push({ label, start, end }));
  }

  addPoint(label, position) {
    this.edit(`Point "${label}"`, (c) => c.points.push({ label, position }));
  }

  toggleClass(name) {
    this.edit(`Class "${name}"`, (c) => {
      const i = c.classes.indexOf(name);
      if (i >= 0) c.classes.splice(i, 1);
      else c.classes.push(name);
    });
  }

  addNote(text, { label = null, position = null } = {}) {
    this.edit("Note", (c) => c.notes.push({ text, label, position }));
  }

  remove(kind, index) {
    const what = { boxes: "box", points: "point", notes: "note" }[kind] || kind;
    this.edit(`Delete ${what}`, (c) => c[kind].splice(index, 1));
  }

  #changed(reason) {
    this.dispatchEvent(new CustomEvent("change", { detail: { reason } }));
  }
}
