// The revision history of the annotation being edited (newest first), with restore.
import { h, formatTime } from "./ui.js";

export class HistoryPanel {
  /**
   * @param {object} ws  persistence, userName(id), restoreRevision(rev)
   * @param {HTMLElement} body
   */
  constructor(ws, body) {
    this.ws = ws;
    this.body = body;
    this.revisions = [];
  }

  async refresh() {
    try {
      this.revisions = await this.ws.persistence.revisions();
    } catch (err) {
      this.body.replaceChildren(h("p", { class: "ws-error" }, err.message));
      return;
    }
    this.render();
  }

  render() {
    const p = this.ws.persistence;
    const ann = p.annotation;
    const parts = [];
    if (ann) {
      parts.push(
        h(
          "p",
          { class: "ws-hint" },
          `Annotation #${ann.id} by ${ann.owner || "?"} · version ${ann.version} · ${ann.state}`,
        ),
      );
    }
    if (p.draftAt && !p.dirty) {
      parts.push(
        h(
          "div",
          { class: "ws-draft-box", dataset: { testid: "draft-info" } },
          h("span", {}, `Your draft from ${formatTime(p.draftAt)} is not shown.`),
          h(
            "button",
            {
              type: "button",
              class: "ws-btn ws-small",
              dataset: { testid: "restore-draft" },
              onclick: () => this.ws.restoreMyDraft(),
            },
            "Restore draft",
          ),
          h(
            "button",
            {
              type: "button",
              class: "ws-btn ws-small ws-danger",
              onclick: () => this.ws.discardMyDraft(),
            },
            "Discard",
          ),
        ),
      );
    } else if (p.draftAt) {
      parts.push(
        h(
          "p",
          { class: "ws-hint", dataset: { testid: "draft-autosaved" } },
          `Draft autosaved ${formatTime(p.draftAt)}`,
        ),
      );
    }
    if (!this.revisions.length) {
      parts.push(
        h("p", { class: "ws-muted" }, "Not saved yet. Each save becomes a revision here."),
      );
      this.body.replaceChildren(...parts);
      return;
    }
    const headId = ann?.head_revision_id;
    parts.push(
      h(
        "ol",
        { class: "ws-list ws-revisions" },
        this.revisions.map((rev) => {
          const isHead = rev.id === headId;
          const who =
            rev.source === "human"
              ? this.ws.userName(rev.author_id)
              : `${rev.engine_name || rev.source}${rev.engine_version ? ` ${rev.engine_version}` : ""}`;
          const what = [];
          const c = rev.content || {};
          if (rev.has_mask) what.push("mask");
          if (c.boxes?.length) what.push(`${c.boxes.length} box${c.boxes.length > 1 ? "es" : ""}`);
          if (c.points?.length)
            what.push(`${c.points.length} point${c.points.length > 1 ? "s" : ""}`);
          if (c.classes?.length) what.push(c.classes.join(", "));
          if (c.notes?.length) what.push(`${c.notes.length} note${c.notes.length > 1 ? "s" : ""}`);
          return h(
            "li",
            {
              class: `ws-item ws-revision${isHead ? " ws-active" : ""}`,
              dataset: { testid: "revision-item" },
            },
            h(
              "div",
              { class: "ws-item-text" },
              h("strong", {}, `#${rev.number}`),
              ` ${who} · ${formatTime(rev.created_at)}`,
              rev.restored_from_id ? h("span", { class: "ws-muted" }, ` (restored)`) : null,
              h("div", { class: "ws-muted" }, what.join(" · ") || "empty"),
              rev.message ? h("div", { class: "ws-rev-message" }, rev.message) : null,
            ),
            isHead
              ? h("span", { class: "ws-badge" }, "current")
              : h(
                  "button",
                  {
                    type: "button",
                    class: "ws-btn ws-small",
                    dataset: { testid: "restore-revision" },
                    onclick: () => this.ws.restoreRevision(rev),
                  },
                  "Restore",
                ),
          );
        }),
      ),
    );
    this.body.replaceChildren(...parts);
  }
}
