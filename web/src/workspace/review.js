// Review in the workspace. Reviewers get the queue of submitted work (oldest first), a
// selector of the image's readings (each reader's, the consensus, their own), approve /
// reject with a comment that may be pinned to the image, and the consensus panel
// (consensus.js). Everyone gets the comments of the annotation shown (comments.js), so a
// reader whose work came back sees what to fix and where. "Next" follows the queue:
// reviewers' next submission elsewhere, then the reader queue (returned work first).
import { api, ApiError } from "../api.js";
import { section } from "./layout.js";
import { Composer, CommentsPanel, installPinInput } from "./comments.js";
import { ConsensusPanel } from "./consensus.js";
import { ReviewOverlay } from "./review_overlay.js";
import * as session from "./session.js";
import { h, button, choose, toast, formatTime } from "./ui.js";

// A queue item on another image: the annotation to open once that image is loaded.
const OPEN_KEY = "medlabel:open-annotation";
const STATE_NAMES = {
  draft: "in progress",
  submitted: "submitted",
  approved: "approved",
  rejected: "returned",
};

export class Review {
  /**
   * @param {object} ws  the workspace: image, me, reviewer, r, persistence, tools,
   *                     viewer, navigate, historyPanel
   */
  constructor(ws) {
    this.ws = ws;
    this.reviewer = Boolean(ws.reviewer);
    this.annotations = []; // the image's annotations this user may see
    this.queue = []; // the project's review queue (reviewers)
    this.shownId = undefined; // the annotation whose comments are loaded
    this.busy = false;
    this.composer = new Composer(ws);
    this.overlay = new ReviewOverlay(ws, () => this.#pins());
    this.sections = {};
    if (this.reviewer) this.sections.review = section("Review", "review-panel", false);
    this.sections.comments = section("Review comments", "comments-panel", false);
    if (this.reviewer) this.sections.consensus = section("Consensus", "consensus-panel", false);
    ws.r.sections.labels.el.before(...Object.values(this.sections).map((s) => s.el));
    this.comments = new CommentsPanel(ws, this.sections.comments, this.composer);
    this.consensusPanel = this.reviewer
      ? new ConsensusPanel(this, this.sections.consensus)
      : null;
    if (this.reviewer) this.#buildReviewPanel();
    else this.comments.showComposer(false);

    this.composer.addEventListener("change", () => {
      this.#renderDecision();
      this.overlay.schedule();
    });
    this.comments.addEventListener("change", () => this.overlay.schedule());
    ws.persistence.addEventListener("annotation", () => this.#annotationChanged());
    ws.persistence.addEventListener("saved", (e) => {
      // an adjudication changes how each reader compares with the consensus
      if (e.detail.annotation?.kind !== "consensus") return;
      this.consensusPanel?.refresh().catch(() => {});
    });
    ws.tools.addEventListener("change", (e) => {
      if (this.composer.armed && e.detail.tool !== "navigate") this.composer.arm(false);
    });
  }

  /** Listen for pin clicks; returns the cleanup. */
  install() {
    return installPinInput(this.ws, this.composer);
  }

  // ---- which annotation is shown ---------------------------------------------------------

  /** The annotation to show first: one asked for from the review queue of another image,
   * else my own; a reviewer without one sees the oldest submission, else the consensus,
   * else an approved reading. */
  initial({ mine, annotations }) {
    this.annotations = [...annotations];
    let request = null;
    try {
      request = JSON.parse(sessionStorage.getItem(OPEN_KEY) || "null");
    } catch (_) {
      request = null;
    }
    if (request?.image === this.ws.image.id) {
      sessionStorage.removeItem(OPEN_KEY);
      const asked = this.annotations.find((a) => a.id === request.annotation);
      if (asked) return asked;
    }
    if (mine || !this.reviewer) return mine;
    const waiting = this.annotations
      .filter((a) => a.state === "submitted")
      .sort((a, b) => String(a.submitted_at).localeCompare(String(b.submitted_at)));
    const finished = this.annotations.filter((a) => a.state === "approved");
    return waiting[0] || this.consensus() || finished[0] || null;
  }

  /** After the first annotation is shown: the queue, agreement, and which panels open. */
  async start() {
    const ann = this.ws.persistence.annotation;
    try {
      await Promise.all([this.loadQueue(), this.consensusPanel?.refresh()]);
      if (this.reviewer) {
        const others = this.annotations.some((a) => a.owner_id !== this.ws.me.id);
        if (this.queue.length || others) this.sections.review.el.open = true;
        if (this.consensusPanel.finished().length >= 2) this.sections.consensus.el.open = true;
      }
      if (ann && this.comments.annotationId !== ann.id) await this.comments.load(ann);
    } finally {
      this.ws.r.root.dataset.review = "ready"; // panels loaded (tests wait for it)
    }
  }

  mine() {
    return (
      this.annotations.find((a) => a.owner_id === this.ws.me.id && a.kind !== "consensus") ||
      null
    );
  }

  consensus() {
    return this.annotations.find((a) => a.kind === "consensus") || null;
  }

  /** Remember the newest state of an annotation of this image. */
  upsert(ann) {
    if (!ann || ann.image_id !== this.ws.image.id) return;
    const i = this.annotations.findIndex((a) => a.id === ann.id);
    if (i >= 0) this.annotations[i] = ann;
    else this.annotations.push(ann);
  }

  /** Unsaved edits may be dropped (asks); true when it is fine to show something else. */
  async mayLeave() {
    const p = this.ws.persistence;
    if (!p.dirty) return true;
    const choice = await choose({
      title: "Discard your changes?",
      message: "The annotation shown has unsaved changes. Save them first, or discard them.",
      testid: "leave-dialog",
      choices: [
        { value: "discard", label: "Discard changes", danger: true },
        { value: "cancel", label: "Cancel", primary: true },
      ],
    });
    if (choice !== "discard") return false;
    p.markClean();
    return true;
  }

  /** Show another annotation of this image (null: a new one of mine), fresh from the server. */
  async open(annotation, { confirm = true } = {}) {
    if (confirm && !(await this.mayLeave())) return false;
    try {
      const fresh = annotation ? await api.get(`/annotations/${annotation.id}`) : null;
      this.composer.clear();
      await session.openAnnotation(this.ws, fresh);
      return true;
    } catch (err) {
      toast(`Could not open the annotation: ${err.message}`, "error");
      return false;
    } finally {
      this.render();
    }
  }

  #annotationChanged() {
    const ann = this.ws.persistence.annotation;
    if (ann) this.upsert(ann);
    const id = ann?.id ?? null;
    if (id !== this.shownId) {
      this.shownId = id;
      this.comments.load(ann).then(() => {
        if (this.comments.open) this.sections.comments.el.open = true;
      });
    }
    if (!this.reviewer) this.comments.showComposer(ann?.owner_id === this.ws.me.id);
    this.consensusPanel?.annotationShown(ann);
    this.render();
  }

  #pins() {
    const pins = this.comments.pins();
    if (this.composer.location)
      pins.push({ n: 0, position: this.composer.location.position, pending: true });
    return pins;
  }

  // ---- the review panel (reviewers) ------------------------------------------------------

  #buildReviewPanel() {
    const body = this.sections.review.body;
    this.queueList = h("ol", {
      class: "ws-list ws-review-queue",
      dataset: { testid: "review-queue" },
    });
    this.queueHint = h("p", { class: "ws-hint" });
    this.readerSelect = h("select", {
      class: "ws-select",
      "aria-label": "Reading shown",
      dataset: { testid: "reader-select" },
      onchange: () => this.#selectReader(),
    });
    this.viewing = h("p", { class: "ws-hint", dataset: { testid: "review-viewing" } });
    this.approveButton = button("Approve", {
      testid: "approve",
      title: "Approve the annotation shown: it becomes the reference",
      cls: "ws-btn ws-primary ws-small",
      onclick: () => this.decide("approve"),
    });
    this.rejectButton = button("Reject", {
      testid: "reject",
      title: "Return the annotation to its reader with the comment",
      cls: "ws-btn ws-danger ws-small",
      onclick: () => this.decide("reject"),
    });
    this.composer.actions.replaceChildren(
      this.approveButton,
      this.rejectButton,
      this.comments.addButton,
    );
    body.replaceChildren(
      h("div", { class: "ws-label-kind" }, "Waiting for review (oldest first)"),
      this.queueList,
      this.queueHint,
      h("div", { class: "ws-label-kind" }, "Reading shown"),
      this.readerSelect,
      this.viewing,
      this.composer.el,
    );
  }

  async loadQueue() {
    if (!this.reviewer) return;
    try {
      const page = await api.get(`/projects/${this.ws.image.project_id}/review-queue`);
      this.queue = page.items;
      this.queueTotal = page.total;
    } catch (err) {
      this.queue = [];
      this.queueHint.textContent = `Could not load the review queue: ${err.message}`;
      return;
    }
    this.render();
  }

  async openItem(item) {
    if (item.image_id === this.ws.image.id) {
      await this.open({ id: item.annotation_id });
      return;
    }
    await this.#leaveImage();
    sessionStorage.setItem(
      OPEN_KEY,
      JSON.stringify({ image: item.image_id, annotation: item.annotation_id }),
    );
    this.ws.navigate(`#/images/${item.image_id}`);
  }

  async #selectReader() {
    const value = this.readerSelect.value;
    const target =
      value === "mine"
        ? this.mine()
        : this.annotations.find((a) => `a:${a.id}` === value) || null;
    if (!(await this.open(target))) this.render(); // cancelled: show the current one again
  }

  /** Approve or reject the annotation shown, with the composer's comment. */
  async decide(decision) {
    const ws = this.ws;
    const p = ws.persistence;
    let ann = p.annotation;
    const comment = this.composer.comment();
    if (!ann || this.busy) return;
    if (decision === "reject" && !comment) {
      toast("Write what the reader should fix (and pin it to the image) before rejecting.", "warn");
      this.composer.text.focus();
      return;
    }
    this.busy = true;
    this.render();
    try {
      if (p.dirty) {
        if (decision === "reject") {
          toast("Save or undo your changes before returning the work.", "warn");
          return;
        }
        const saved = await p.save("");
        if (saved.conflict) {
          toast("The annotation was saved elsewhere meanwhile: reload it (Revisions).", "error");
          return;
        }
        ann = saved.annotation;
      }
      if (decision === "approve" && ann.state !== "submitted") {
        // The consensus (or a reading the reviewer corrected) is submitted on approval.
        ann = await api.post(`/annotations/${ann.id}/submit`, { base_version: ann.version });
      }
      const out = await api.post(`/annotations/${ann.id}/review`, {
        decision,
        base_version: ann.version,
        comments: comment ? [comment] : [],
      });
      p.setAnnotation(out.annotation);
      this.composer.clear();
      const who = out.annotation.kind === "consensus" ? "the consensus" : out.annotation.owner;
      toast(
        decision === "approve"
          ? `Approved ${who}: it is the reference now.`
          : `Returned to ${who} with your comment.`,
        "success",
      );
      this.sections.comments.el.open ||= decision === "reject";
      await Promise.all([
        this.comments.load(out.annotation),
        this.loadQueue(),
        this.consensusPanel?.refresh(),
        ws.historyPanel.refresh(),
      ]);
    } catch (err) {
      toast(`${decision === "approve" ? "Approve" : "Reject"} failed: ${err.message}`, "error");
      if (err instanceof ApiError && err.status === 409) {
        p.setAnnotation(await api.get(`/annotations/${ann.id}`).catch(() => ann));
      }
    } finally {
      this.busy = false;
      this.render();
    }
  }

  render() {
    this.consensusPanel?.render();
    if (!this.reviewer) return;
    const ws = this.ws;
    const ann = ws.persistence.annotation;
    // the queue
    this.queueList.replaceChildren(...this.queue.map((item) => this.#queueItem(item, ann)));
    this.queueHint.textContent = this.queue.length
      ? this.queueTotal > this.queue.length
        ? `${this.queue.length} of ${this.queueTotal} shown.`
        : ""
      : "Nothing is waiting for review.";
    // the readings of this image
    const options = [];
    const mine = this.mine();
    for (const a of this.annotations) {
      if (a === mine) continue;
      const name = a.kind === "consensus" ? "Consensus" : a.owner || `annotation #${a.id}`;
      options.push([`a:${a.id}`, `${name} · ${STATE_NAMES[a.state] || a.state}`]);
    }
    const mineText = mine ? `Mine · ${STATE_NAMES[mine.state] || mine.state}` : "Mine (new)";
    options.push(["mine", mineText]);
    const selected = !ann || ann.id === mine?.id ? "mine" : `a:${ann.id}`;
    this.readerSelect.replaceChildren(
      ...options.map(([value, label]) =>
        h("option", { value, selected: value === selected }, label),
      ),
    );
    this.readerSelect.value = selected;
    // what is shown, and the decision buttons
    let text;
    if (!ann) text = "Your own reading (not saved yet).";
    else if (ann.kind === "consensus")
      text =
        `The consensus · ${STATE_NAMES[ann.state]} · version ${ann.version}. ` +
        (ann.state === "approved"
          ? "It is the image's reference."
          : "Edit it with the tools, save, then approve it.");
    else if (ann.owner_id === ws.me.id)
      text = `Your own reading · ${STATE_NAMES[ann.state]} · version ${ann.version}.`;
    else
      text =
        `${ann.owner}'s reading · ${STATE_NAMES[ann.state]} · version ${ann.version}. ` +
        "Shown as saved; edits you save become a revision of it.";
    this.viewing.textContent = text;
    this.composer.text.placeholder = `Comment for ${
      ann?.kind === "consensus" ? "the record" : "the reader"
    }… (Pin places it on the image)`;
    this.#renderDecision();
  }

  /** Approve and reject: what may be decided about the annotation shown. */
  #renderDecision() {
    if (!this.reviewer) return;
    const ann = this.ws.persistence.annotation;
    const reviewable =
      Boolean(ann?.head) &&
      (ann.state === "submitted" || (ann.kind === "consensus" && ann.state !== "approved"));
    this.approveButton.disabled = this.busy || !reviewable;
    this.rejectButton.disabled = this.busy || ann?.state !== "submitted";
    this.rejectButton.title = this.composer.value
      ? "Return the annotation to its reader with the comment"
      : "Write a comment for the reader first (a rejection needs one)";
  }

  #queueItem(item, shown) {
    const current = shown?.id === item.annotation_id;
    return h(
      "li",
      {
        class: `ws-item ws-review-item${current ? " ws-active" : ""}`,
        dataset: {
          testid: "review-item",
          annotationId: item.annotation_id,
          imageId: item.image_id,
          reader: item.reader || "",
        },
        title: current ? "Shown now" : "Open it",
        onclick: () => this.openItem(item),
      },
      h(
        "div",
        { class: "ws-item-text" },
        h("strong", {}, item.kind === "consensus" ? "Consensus" : item.reader || "?"),
        " · ",
        item.image_name,
        item.image_id === this.ws.image.id
          ? h("span", { class: "ws-muted" }, " (this image)")
          : null,
        h(
          "div",
          { class: "ws-muted" },
          `submitted ${formatTime(item.submitted_at)}`,
          item.resubmitted ? " · resubmitted" : "",
          item.open_comments ? ` · ${item.open_comments} open comment(s)` : "",
        ),
      ),
    );
  }

  // ---- next ----------------------------------------------------------------------------------

  async #leaveImage() {
    const p = this.ws.persistence;
    await p.flush();
    if (p.dirty) toast("Your unsaved changes are kept as a draft.", "info");
  }

  /** "Next": a reviewer's next submission on another image, else the reader queue
   * (POST /queue/next: returned work first, then assigned work, then it claims an open
   * image). When the queue's first image is this one, the next one owed after it. */
  async next() {
    const ws = this.ws;
    const pid = ws.image.project_id;
    try {
      await this.#leaveImage();
      if (this.reviewer) {
        await this.loadQueue();
        const item = this.queue.find((i) => i.image_id !== ws.image.id);
        if (item) return this.openItem(item);
      }
      const item = await api.post(`/projects/${pid}/queue/next`);
      if (!item) {
        toast("Nothing left for you to read in this project.", "info");
        return;
      }
      if (item.image.id !== ws.image.id) return ws.navigate(`#/images/${item.image.id}`);
      const queue = await api.get(`/projects/${pid}/queue`);
      const ids = queue.items.map((i) => i.image.id);
      const at = ids.indexOf(ws.image.id);
      const other = [...ids.slice(at + 1), ...ids.slice(0, Math.max(at, 0))].find(
        (id) => id !== ws.image.id,
      );
      if (other) ws.navigate(`#/images/${other}`);
      else
        toast("This is the only image left in your queue: submit it to get the next one.", "info");
    } catch (err) {
      toast(`Next image: ${err.message}`, "error");
    }
  }
}
