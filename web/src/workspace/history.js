// Undo / redo for everything the annotator changes: mask edits (stored as sparse diffs of
// the drawing bitmap, so a stroke on a 512×512×300 volume costs bytes, not megabytes)
// and edits of boxes, points, classes and notes (stored as before/after snapshots).

const MAX_ENTRIES = 200;

/**
 * The voxels where `current` differs from `previous` (same length, Uint8Array), as
 * {idx, before, after}; `previous` is updated to `current` at those voxels. Compares
 * 4 bytes at a time where both arrays are word-aligned.
 */
export function diffBitmaps(previous, current) {
  if (previous.length !== current.length) {
    throw new Error(`bitmap sizes differ: ${previous.length} vs ${current.length}`);
  }
  const idx = [];
  const n = current.length;
  const aligned = n % 4 === 0 && previous.byteOffset % 4 === 0 && current.byteOffset % 4 === 0;
  if (aligned) {
    const a = new Uint32Array(previous.buffer, previous.byteOffset, n / 4);
    const b = new Uint32Array(current.buffer, current.byteOffset, n / 4);
    for (let w = 0; w < a.length; w++) {
      if (a[w] === b[w]) continue;
      const base = w * 4;
      for (let k = base; k < base + 4; k++) if (previous[k] !== current[k]) idx.push(k);
    }
  } else {
    for (let k = 0; k < n; k++) if (previous[k] !== current[k]) idx.push(k);
  }
  const index = Uint32Array.from(idx);
  const before = new Uint8Array(index.length);
  const after = new Uint8Array(index.length);
  for (let i = 0; i < index.length; i++) {
    before[i] = previous[index[i]];
    after[i] = current[index[i]];
    previous[index[i]] = after[i];
  }
  return { idx: index, before, after };
}

/** Write `values` at `idx` into each of the given bitmaps. */
export function applyDiff(bitmaps, idx, values) {
  for (const bmp of bitmaps) for (let i = 0; i < idx.length; i++) bmp[idx[i]] = values[i];
}

export class History extends EventTarget {
  /**
   * @param {object} io  getBitmap() → the live drawing bitmap (or null);
   *                     onMaskRestored() after undo/redo changed the bitmap;
   *                     applyContent(snapshot) to put a content snapshot back.
   */
  constructor(io) {
    super();
    this.io = io;
    this.undoStack = [];
    this.redoStack = [];
    this.shadow = null; // copy of the bitmap as of the last recorded state
  }

  /** Forget everything (after loading a revision or a draft). */
  reset() {
    this.undoStack = [];
    this.redoStack = [];
    const bmp = this.io.getBitmap();
    this.shadow = bmp ? bmp.slice() : null;
    this.#changed();
  }

  /** Record the mask change since the last recorded state (after a stroke or a fill). */
  recordMask(label = "Mask edit") {
    const bmp = this.io.getBitmap();
    if (!bmp) return false;
    if (!this.shadow || this.shadow.length !== bmp.length) this.shadow = new Uint8Array(bmp.length);
    const diff = diffBitmaps(this.shadow, bmp);
    if (diff.idx.length === 0) return false;
    this.#push({ type: "mask", label, ...diff });
    return true;
  }

  /** Record a content edit given snapshots before and after it. */
  recordContent(before, after, label = "Edit") {
    if (JSON.stringify(before) === JSON.stringify(after)) return false;
    this.#push({ type: "content", label, before, after });
    return true;
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  undo() {
    const entry = this.undoStack.pop();
    if (!entry) return null;
    this.#apply(entry, "before");
    this.redoStack.push(entry);
    this.#changed();
    return entry;
  }

  redo() {
    const entry = this.redoStack.pop();
    if (!entry) return null;
    this.#apply(entry, "after");
    this.undoStack.push(entry);
    this.#changed();
    return entry;
  }

  #apply(entry, side) {
    if (entry.type === "mask") {
      const bmp = this.io.getBitmap();
      if (!bmp) return;
      applyDiff([bmp, this.shadow], entry.idx, entry[side]);
      this.io.onMaskRestored();
    } else {
      this.io.applyContent(structuredClone(entry[side]));
    }
  }

  #push(entry) {
    this.undoStack.push(entry);
    if (this.undoStack.length > MAX_ENTRIES) this.undoStack.shift();
    this.redoStack = [];
    this.#changed();
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}
