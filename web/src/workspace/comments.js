// Review comments of the annotation being viewed: the list (numbered; pinned ones are
// drawn on the image, and clicking one goes to its slice), resolving them, and the
// composer: a comment, optionally pinned to a point clicked on the image (the pin tool).
// Positions are voxels (plane, row, column) of the stored image, like boxes and points.
import { api } from "../api.js";
import { fmt, viewAxis } from "./geometry.js";
import { h, button, toast, formatTime } from "./ui.js";

const KIND_NAMES = { reject: "returned", approve: "approved", comment: "comment" };
const KIND_STATES = { reject: "rejected", approve: "approved" };
const coords = (v) => `(${v.map((x) => fmt(x, 1)).join(", ")})`;

/** The comment being written: its text, and where on the image it is pinned (if it is). */
export class Composer extends EventTarget {
  /**
   * @param {object} ws  viewer, image, tools, r (canvas, stage)
   */
  constructor(ws) {
    super();
    this.ws = ws;
    this.location = null; // {position: [plane, row, column]} or null (the whole image)
    this.armed = false; // the next click on the image places the pin
    this.text = h("textarea", {
      class: "ws-note-input",
      rows: 3,
      placeholder: "Comment for the reader… (Pin places it on the image)",
      "aria-label": "Review comment",
      dataset: { testid: "review-comment" },
      oninput: () => this.#changed(),
    });
    this.pinButton = button("Pin to image", {
      testid: "comment-pin",
      title: "Then click the point on the image the comment is about (Esc cancels)",
      cls: "ws-btn ws-small",
      onclick: () => this.arm(!this.armed),
    });
    this.pinButton.setAttribute("aria-pressed", "false");
    this.where = h("span", {
      class: "ws-muted ws-comment-where",
      dataset: { testid: "comment-location" },
    });
    this.unpin = button("×", {
      title: "Remove the pin (the comment is about the whole image)",
      cls: "ws-icon-btn ws-small",
      onclick: () => this.setLocation(null),
    });
    this.actions = h("div", { class: "ws-row ws-composer-actions" });
    this.el = h(
      "div",
      { class: "ws-composer" },
      this.text,
      h("div", { class: "ws-row" }, this.pinButton, this.where, this.unpin),
      this.actions,
    );
    this.#render();
  }

  get value() {
    return this.text.value.trim();
  }

  /** The comment as the API takes it ({text, location?}), or null when nothing is written. */
  comment() {
    const text = this.value;
    if (!text) return null;
    return this.location ? { text, location: this.location } : { text };
  }

  clear() {
    this.text.value = "";
    this.arm(false);
    this.setLocation(null);
  }

  /** Arm (or disarm) the pin tool; returns true if it was armed (for Esc). */
  arm(on) {
    const was = this.armed;
    this.armed = on;
    if (on && !["navigate", "pan", "contrast"].includes(this.ws.tools.tool))
      this.ws.tools.select("navigate"); // a click must not paint
    this.ws.r.stage.classList.toggle("ws-pinning", on);
    this.#render();
    return was;
  }

  setLocation(location) {
    this.location = location;
    this.#render();
    this.#changed();
  }

  /** A click on the image while armed: pin the comment to that voxel, on the slice shown. */
  place(hit) {
    const { viewer, image } = this.ws;
    const axis = viewAxis(viewer.affine, hit.view);
    const vox = hit.vox.map((v, i) => {
      const x = i === axis ? Math.round(v) : Math.round(v * 100) / 100;
      return Math.min(Math.max(x, -0.5), image.shape[i] - 0.5);
    });
    this.arm(false);
    this.setLocation({ position: vox });
    this.text.focus();
  }

  #render() {
    this.pinButton.classList.toggle("ws-on", this.armed);
    this.pinButton.setAttribute("aria-pressed", String(this.armed));
    this.where.textContent = this.armed
      ? "Click the image…"
      : this.location
        ? `Pinned at ${coords(this.location.position)}`
        : "Whole image";
    this.unpin.hidden = !this.location || this.armed;
  }

  #changed() {
    this.dispatchEvent(new CustomEvent("change"));
  }
}

/** Clicks on the viewer while the pin tool is armed; returns a function removing the listener. */
export function installPinInput(ws, composer) {
  const canvas = ws.r.canvas;
  const down = (e) => {
    if (!composer.armed || e.button !== 0) return;
    const hit = ws.viewer.pick(e.clientX, e.clientY);
    if (hit) composer.place(hit);
  };
  canvas.addEventListener("pointerdown", down, true);
  return () => canvas.removeEventListener("pointerdown", down, true);
}

/** The comments of the annotation being viewed (oldest first). */
export class CommentsPanel extends EventTarget {
  /**
   * @param {object} ws  me, persistence, goTo(vox), reviewer (bool)
   * @param {{el: HTMLElement, body: HTMLElement}} section
   * @param {Composer} composer  shown here for the annotation's author
   */
  constructor(ws, section, composer) {
    super();
    this.ws = ws;
    this.section = section;
    this.composer = composer;
    this.comments = [];
    this.annotationId = null;
    this.authorView = false; // a reader's view: the section shows once there are comments
    this.list = h("ol", { class: "ws-list ws-comments", dataset: { testid: "comment-list" } });
    this.hint = h("p", { class: "ws-hint" });
    this.composerSlot = h("div");
    this.addButton = button("Comment", {
      testid: "comment-add",
      title: "Add the comment (without a review decision)",
      cls: "ws-btn ws-small",
      onclick: () => this.add(),
    });
    section.body.replaceChildren(this.hint, this.list, this.composerSlot);
  }

  /** Comments drawn on the image: {n, position, resolved}. */
  pins() {
    return this.comments
      .map((c, i) => ({ n: i + 1, position: c.location?.position, resolved: !!c.resolved_at }))
      .filter((p) => p.position);
  }

  get open() {
    return this.comments.filter((c) => !c.resolved_at).length;
  }

  /** Load the comments of an annotation (or none). */
  async load(annotation) {
    const id = annotation?.id ?? null;
    this.annotationId = id;
    if (id === null) {
      this.comments = [];
    } else {
      try {
        const comments = await api.get(`/annotations/${id}/comments`);
        if (this.annotationId !== id) return; // another annotation was opened meanwhile
        this.comments = comments;
      } catch (err) {
        this.comments = [];
        toast(`Could not load the review comments: ${err.message}`, "warn");
      }
    }
    this.render();
    this.dispatchEvent(new CustomEvent("change"));
  }

  /** The composer is the author's here (a reviewer's is in the review panel). */
  showComposer(on) {
    this.authorView = true;
    if (on) {
      this.composer.text.placeholder = "Reply to the reviewer… (Pin places it on the image)";
      this.composer.actions.replaceChildren(this.addButton);
      this.composerSlot.replaceChildren(this.composer.el);
    } else {
      this.composerSlot.replaceChildren();
    }
  }

  async add() {
    const comment = this.composer.comment();
    const ann = this.ws.persistence.annotation;
    if (!comment) return this.composer.text.focus();
    if (!ann) return toast("Save the annotation first: comments belong to a saved annotation.");
    try {
      await api.post(`/annotations/${ann.id}/comments`, comment);
      this.composer.clear();
      await this.load(ann);
    } catch (err) {
      toast(`Comment failed: ${err.message}`, "error");
    }
  }

  async resolve(comment) {
    try {
      await api.post(`/comments/${comment.id}/resolve`, {});
      await this.load(this.ws.persistence.annotation);
    } catch (err) {
      toast(`Could not resolve the comment: ${err.message}`, "error");
    }
  }

  render() {
    const ann = this.ws.persistence.annotation;
    const mine = ann && ann.owner_id === this.ws.me.id;
    const n = this.comments.length;
    const open = this.open;
    this.section.el.querySelector("summary").textContent =
      `Review comments${n ? ` (${open} open)` : ""}`;
    // Readers see the section once their work has been commented on.
    this.section.el.hidden = Boolean(this.authorView) && !n;
    if (!ann) this.hint.textContent = "Comments belong to a saved annotation.";
    else if (!n) this.hint.textContent = "No review comments on this annotation.";
    else if (ann.state === "rejected" && mine)
      this.hint.textContent =
        "A reviewer returned this annotation: fix what the comments say, save, resolve them and submit it again.";
    else this.hint.textContent = "Click a comment to go to where it is pinned.";
    this.list.replaceChildren(...this.comments.map((c, i) => this.#item(c, i + 1, mine)));
  }

  #item(c, n, mine) {
    const position = c.location?.position;
    const resolved = !!c.resolved_at;
    const canResolve = !resolved && (mine || this.ws.reviewer);
    return h(
      "li",
      {
        class: `ws-item ws-comment${resolved ? " ws-resolved" : ""}`,
        dataset: {
          testid: "comment-item",
          commentId: c.id,
          kind: c.kind,
          resolved: String(resolved),
          pinned: String(!!position),
        },
      },
      h(
        "span",
        {
          class: `ws-pin-badge${position ? "" : " ws-unpinned"}`,
          title: position ? `Pinned at ${coords(position)}` : "About the whole image",
        },
        String(n),
      ),
      h(
        "div",
        {
          class: "ws-item-text",
          title: position ? "Go there" : "",
          onclick: () => position && this.ws.goTo(position),
        },
        h(
          "div",
          { class: "ws-comment-head" },
          h("strong", {}, c.author || "someone"),
          c.kind !== "comment"
            ? h(
                "span",
                { class: "ws-badge", dataset: { state: KIND_STATES[c.kind] } },
                KIND_NAMES[c.kind],
              )
            : null,
          h("span", { class: "ws-muted" }, formatTime(c.created_at)),
        ),
        h("div", { class: "ws-comment-text" }, c.text),
        resolved ? h("div", { class: "ws-muted" }, `resolved ${formatTime(c.resolved_at)}`) : null,
      ),
      canResolve
        ? button("Resolve", {
            testid: "comment-resolve",
            title: "Mark as dealt with",
            cls: "ws-btn ws-small",
            onclick: () => this.resolve(c),
          })
        : null,
    );
  }
}
