// The "Model proposals" panel: what a pre-annotation job's model proposed on this image,
// to accept or reject. Classification: the class probabilities as sorted bars, the model
// and its uncertainty, and a toggle for the saliency map (where the evidence for the
// class lies). Detection: the boxes with their scores (also drawn on the image).
// Segmentation (masks shown and accepted through the AI bar): confidence, uncertainty
// and a toggle for the uncertainty map. The maps are drawn by heat_overlay.js.
import { ApiError, fetchMask } from "../api.js";
import { section } from "./layout.js";
import { acceptProposals, rejectProposals } from "./proposals_api.js";
import { HeatOverlay, HEAT_GRADIENT } from "./heat_overlay.js";
import { h, button, toast } from "./ui.js";

const pct = (x) => (typeof x === "number" ? `${Math.round(x * 100)}%` : "?");
/** "cls-v1" (a default name names its version), else "name v2". */
function modelOf(p) {
  const name = p.info?.model_name || p.engine.replace(/^model:/, "");
  const version = p.version || "";
  return name.endsWith(`-${version}`) ? name : `${name} ${version}`.trim();
}

/** The task of a stored proposal: "cls", "det" or "seg" (masks, every other engine). */
export function proposalTask(p) {
  const task = p.info?.task;
  return task === "cls" || task === "det" ? task : "seg";
}

export class ModelProposals {
  /**
   * @param {object} ws  image, r, viewer, persistence, content, history, historyPanel,
   *                     ai (seg proposals), labelByName(name), isHidden(name)
   */
  constructor(ws) {
    this.ws = ws;
    this.items = []; // pending cls and det proposals (server rows)
    this.shown = null; // {kind: "saliency"|"uncertainty", id}
    this.busy = false;
    this.overlay = new HeatOverlay(ws);
    this.section = section("Model proposals", "model-proposals-panel");
    this.section.el.hidden = true;
    const side = ws.r.sections.labels.el.parentElement;
    side.prepend(this.section.el);
    ws.ai.proposals.addEventListener("change", () => this.render());
  }

  /** Take the pending classification and detection proposals of this image. */
  set(rows) {
    const known = new Set(this.items.map((p) => p.id));
    for (const row of rows) if (!known.has(row.id)) this.items.push(row);
    this.#boxes();
    this.render();
  }

  /** Segmentation proposals of a model, pending in the AI tools. */
  #segProposals() {
    return this.ws.ai.proposals.pending.filter((p) => p.engine?.startsWith("model:"));
  }

  #boxes() {
    const boxes = this.items
      .filter((p) => proposalTask(p) === "det")
      .map((p) => ({ label: p.label, score: p.info.confidence, ...p.info.box }));
    this.overlay.setBoxes(boxes);
  }

  render() {
    const body = this.section.body;
    const cls = this.items.filter((p) => proposalTask(p) === "cls");
    const det = this.items.filter((p) => proposalTask(p) === "det");
    const seg = this.#segProposals();
    if (this.shown?.kind === "uncertainty" && !seg.some((p) => p.id === this.shown.id))
      this.#hide();
    this.section.el.hidden = !(cls.length || det.length || seg.length);
    body.replaceChildren(
      ...cls.map((p) => this.#classCard(p)),
      ...(det.length ? [this.#boxCard(det)] : []),
      ...seg.map((p) => this.#segCard(p)),
    );
  }

  #head(p, what) {
    return h(
      "div",
      { class: "ws-mp-head" },
      h("span", { class: "ws-mp-what" }, what),
      h("span", { class: "ws-muted", dataset: { testid: "proposal-model" } }, modelOf(p)),
    );
  }

  #toggle(p, kind, testid, title) {
    const on = this.shown?.kind === kind && this.shown.id === p.id;
    const label = kind === "saliency" ? "Saliency map" : "Uncertainty map";
    const b = button(on ? `Hide ${label.toLowerCase()}` : `Show ${label.toLowerCase()}`, {
      testid,
      title,
      cls: `ws-btn ws-small${on ? " ws-on" : ""}`,
      onclick: () => this.toggleMap(p, kind),
    });
    b.setAttribute("aria-pressed", String(on));
    return b;
  }

  #legend(kind) {
    const [lo, hi] = kind === "saliency" ? ["no evidence", "strongest"] : ["sure", "unsure"];
    return h(
      "div",
      { class: "ws-mp-legend", dataset: { testid: `${kind}-legend` } },
      h("span", {}, lo),
      h("span", { class: "ws-mp-ramp", style: { background: HEAT_GRADIENT } }),
      h("span", {}, hi),
    );
  }

  #classCard(p) {
    const probs = Object.entries(p.info.probabilities || {}).sort((a, b) => b[1] - a[1]);
    const method = p.info.saliency_method === "occlusion" ? "occlusion" : "Grad-CAM";
    const bars = probs.map(([name, value]) =>
      h(
        "div",
        {
          class: `ws-mp-bar${name === p.label ? " ws-mp-top" : ""}`,
          dataset: { testid: "class-probability", label: name, value: String(value) },
        },
        h("span", { class: "ws-mp-name", title: name }, name),
        h(
          "span",
          { class: "ws-mp-track" },
          h("span", {
            class: "ws-mp-fill",
            style: {
              width: `${Math.max(0.5, value * 100).toFixed(1)}%`,
              background: this.ws.labelByName(name)?.color || "var(--ws-accent)",
            },
          }),
        ),
        h("span", { class: "ws-mp-value" }, pct(value)),
      ),
    );
    const shown = this.shown?.kind === "saliency" && this.shown.id === p.id;
    return h(
      "div",
      { class: "ws-mp-card", dataset: { testid: "class-proposal", proposalId: String(p.id) } },
      this.#head(p, "Classification"),
      h(
        "div",
        { class: "ws-mp-verdict" },
        "Proposed class ",
        h("strong", { dataset: { testid: "proposed-class" } }, p.label),
      ),
      h("div", { class: "ws-mp-bars" }, bars),
      h(
        "div",
        { class: "ws-muted ws-mp-facts" },
        `confidence ${pct(p.info.confidence)} · uncertainty ${pct(p.info.uncertainty)}`,
      ),
      h(
        "div",
        { class: "ws-mp-actions" },
        this.#toggle(p, "saliency", "toggle-saliency", `Overlay the ${method} saliency map`),
        this.#decide(p, [p]),
      ),
      shown ? this.#legend("saliency") : null,
    );
  }

  #boxCard(rows) {
    const list = rows
      .slice()
      .sort((a, b) => b.info.confidence - a.info.confidence)
      .map((p) =>
        h(
          "li",
          { dataset: { testid: "box-proposal", proposalId: String(p.id) } },
          h("span", {}, p.label),
          h("span", { class: "ws-mp-value" }, pct(p.info.confidence)),
          button("✕", {
            testid: "reject-box",
            title: `Reject this ${p.label} box`,
            cls: "ws-btn ws-small ws-icon-btn",
            onclick: () => this.reject([p]),
          }),
        ),
      );
    return h(
      "div",
      { class: "ws-mp-card", dataset: { testid: "detection-proposal" } },
      this.#head(rows[0], `Detection · ${rows.length} box${rows.length > 1 ? "es" : ""}`),
      h("ul", { class: "ws-mp-boxes" }, list),
      h(
        "div",
        { class: "ws-muted ws-mp-facts" },
        `image uncertainty ${pct(rows[0].info.uncertainty)}`,
      ),
      h("div", { class: "ws-mp-actions" }, this.#decide(rows[0], rows, "all")),
    );
  }

  #segCard(p) {
    const shown = this.shown?.kind === "uncertainty" && this.shown.id === p.id;
    return h(
      "div",
      { class: "ws-mp-card", dataset: { testid: "seg-proposal", proposalId: String(p.id) } },
      this.#head(p, `Mask · ${p.label}`),
      h(
        "div",
        { class: "ws-muted ws-mp-facts" },
        `confidence ${pct(p.info?.confidence)} · uncertainty ${pct(p.info?.uncertainty)}` +
          " · accept or reject it in the bar under the image",
      ),
      h(
        "div",
        { class: "ws-mp-actions" },
        this.#toggle(p, "uncertainty", "toggle-uncertainty", "Overlay the model's uncertainty"),
      ),
      shown ? this.#legend("uncertainty") : null,
    );
  }

  #decide(p, rows, suffix = "") {
    const names = suffix ? ` ${suffix}` : "";
    return h(
      "span",
      { class: "ws-mp-decide" },
      button(`Accept${names}`, {
        testid: "accept-proposal",
        title: "Add to my annotation (an engine revision)",
        cls: "ws-btn ws-small ws-primary",
        disabled: this.busy,
        onclick: () => this.accept(rows),
      }),
      button(`Reject${names}`, {
        testid: "reject-proposal",
        title: "Drop the proposal",
        cls: "ws-btn ws-small",
        disabled: this.busy,
        onclick: () => this.reject(rows),
      }),
    );
  }

  // ---- maps ------------------------------------------------------------------------------

  async toggleMap(p, kind) {
    if (this.shown?.kind === kind && this.shown.id === p.id) {
      this.#hide();
      this.render();
      return;
    }
    try {
      const map = await fetchMask(`/proposals/${p.id}/${kind}`);
      this.shown = { kind, id: p.id };
      this.overlay.setHeat(`${kind}-${p.id}`, map, { smooth: kind === "saliency" });
    } catch (err) {
      toast(`Cannot show the ${kind} map: ${err.message}`, "error");
    }
    this.render();
  }

  #hide() {
    this.shown = null;
    this.overlay.setHeat("", null);
  }

  // ---- decisions -------------------------------------------------------------------------

  async accept(rows) {
    if (this.busy || !rows.length) return;
    const { ws } = this;
    const p = ws.persistence;
    this.busy = true;
    this.render();
    try {
      if (p.dirty) {
        const saved = await p.save("");
        if (saved.conflict) {
          const why = "This annotation was saved elsewhere meanwhile: Save to resolve it first.";
          toast(why, "error");
          return;
        }
      }
      // classes: the model's classes exclude each other, so the accepted one replaces them
      const mode = proposalTask(rows[0]) === "cls" ? "replace" : "add";
      const ids = rows.map((r) => r.id);
      const result = await acceptProposals(ws.image.id, ids, p.annotation?.version ?? null, mode);
      const content = result.annotation.head?.content || { classes: [], boxes: [] };
      ws.content.edit(`Accepted ${modelOf(rows[0])}`, (c) => {
        c.classes = [...content.classes];
        c.boxes = content.boxes.map((b) => ({ label: b.label, start: b.start, end: b.end }));
      });
      p.setAnnotation(result.annotation);
      p.markClean();
      p.dispatchEvent(new CustomEvent("saved", { detail: { annotation: result.annotation } }));
      this.#drop(result.accepted);
      ws.historyPanel.refresh();
      toast(`Accepted ${rows.length > 1 ? `${rows.length} proposals` : rows[0].label}.`, "success");
    } catch (err) {
      const stale = err instanceof ApiError && err.status === 409;
      const why = stale ? `Not accepted: ${err.message}. Reload and try again.` : null;
      toast(why || `Accept failed: ${err.message}`, "error", 8000);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async reject(rows) {
    if (!rows.length) return;
    const ids = rows.map((r) => r.id);
    this.#drop(ids);
    this.render();
    try {
      await rejectProposals(this.ws.image.id, ids);
    } catch (err) {
      if (!(err instanceof ApiError && [404, 409].includes(err.status)))
        toast(`Could not reject on the server: ${err.message}`, "warn");
    }
  }

  #drop(ids) {
    const gone = new Set(ids);
    this.items = this.items.filter((p) => !gone.has(p.id));
    if (this.shown && gone.has(this.shown.id)) this.#hide();
    this.#boxes();
  }
}
