// Consensus and adjudication (reviewers): how well the image's readers agree (Dice and
// HD95 per pair of readers and label, and each reader against the consensus), where they
// disagree (an overlay in its own colour, toggled here), and building the consensus
// (STAPLE or majority vote) as the image's consensus annotation, which the reviewer then
// edits with the normal tools, saves (a human revision on top of the computed one) and
// approves: the approved consensus is the image's reference.
import { api, fetchMask } from "../api.js";
import { fmt } from "./geometry.js";
import { DISAGREEMENT_COLOR } from "./review_overlay.js";
import { h, button, choose, toast } from "./ui.js";

const FINISHED = ["submitted", "approved"];
const METHODS = [
  ["staple", "STAPLE"],
  ["majority", "Majority vote"],
];

export class ConsensusPanel {
  /**
   * @param {object} review  ws, overlay (ReviewOverlay), annotations, consensus(), open(ann)
   * @param {{el: HTMLElement, body: HTMLElement}} section
   */
  constructor(review, section) {
    this.review = review;
    this.ws = review.ws;
    this.section = section;
    this.agreement = null;
    this.disagreeing = null; // voxels where the readers differ (null: not loaded)
    this.last = null; // the last build's answer
    this.busy = false;
    this.userChoice = null; // the toggle's state once the reviewer used it
    this.method = h(
      "select",
      {
        class: "ws-select",
        "aria-label": "Consensus method",
        dataset: { testid: "consensus-method" },
      },
      METHODS.map(([value, label]) => h("option", { value }, label)),
    );
    this.buildButton = button("Build consensus", {
      testid: "consensus-build",
      title: "Combine the submitted and approved readings into the consensus annotation",
      cls: "ws-btn ws-primary ws-small",
      onclick: () => this.build(),
    });
    this.status = h("p", { class: "ws-hint", dataset: { testid: "consensus-status" } });
    this.toggleButton = button(
      [
        h("span", { class: "ws-swatch", style: { background: DISAGREEMENT_COLOR } }),
        h("span", {}, "Disagreement"),
      ],
      {
        testid: "disagreement-toggle",
        title: "Show where the readers' masks differ",
        cls: "ws-btn ws-small ws-toggle",
        onclick: () => this.toggle(),
      },
    );
    this.toggleText = h("span", { class: "ws-muted", dataset: { testid: "disagreement-text" } });
    this.table = h("div", { dataset: { testid: "agreement-table" } });
    section.body.replaceChildren(
      h("div", { class: "ws-row" }, this.method, this.buildButton),
      this.status,
      h("div", { class: "ws-row" }, this.toggleButton, this.toggleText),
      this.table,
    );
    this.render();
  }

  finished() {
    return this.review.annotations.filter((a) => a.kind === "reader" && FINISHED.includes(a.state));
  }

  /** Reload agreement and disagreement (after opening the image, a decision, a build). */
  async refresh() {
    const imageId = this.ws.image.id;
    const seq = (this.seq = (this.seq || 0) + 1); // only the latest answer is shown
    if (this.finished().length < 2) {
      this.agreement = null;
      this.disagreeing = null;
      this.review.overlay.setDisagreement(null);
      this.render();
      return;
    }
    const [agreement, mask] = await Promise.all([
      api.get(`/images/${imageId}/agreement`).catch((err) => {
        toast(`Agreement: ${err.message}`, "warn");
        return null;
      }),
      fetchMask(`/images/${imageId}/disagreement`).catch((err) => {
        toast(`Disagreement: ${err.message}`, "warn");
        return null;
      }),
    ]);
    if (seq !== this.seq) return;
    this.agreement = agreement;
    this.disagreeing = mask ? countNonZero(mask.data) : null;
    this.review.overlay.setDisagreement(mask);
    this.render();
  }

  /** The disagreement is shown over the consensus (where it is adjudicated), not over a
   * single reading, unless the reviewer chose otherwise with the toggle. */
  annotationShown(ann) {
    const overlay = this.review.overlay;
    overlay.showDisagreement = this.userChoice ?? ann?.kind === "consensus";
    overlay.schedule();
  }

  toggle() {
    const overlay = this.review.overlay;
    overlay.showDisagreement = !overlay.showDisagreement;
    this.userChoice = overlay.showDisagreement;
    overlay.schedule();
    this.render();
  }

  async build() {
    if (this.busy) return;
    const ws = this.ws;
    const existing = this.review.consensus();
    if (existing?.head?.source === "human") {
      const ok = await choose({
        title: "Compute the consensus again?",
        message: [
          "The consensus has been adjudicated by hand. Computing it again makes a new computed version on top; the adjudicated one stays in its history.",
        ],
        testid: "consensus-dialog",
        choices: [
          { value: "go", label: "Compute again", primary: true },
          { value: "cancel", label: "Cancel" },
        ],
      });
      if (ok !== "go") return;
    }
    if (!(await this.review.mayLeave())) return;
    this.busy = true;
    this.render();
    try {
      const body = { method: this.method.value };
      if (existing) body.base_version = existing.version;
      const out = await api.post(`/images/${ws.image.id}/consensus`, body);
      this.last = out;
      this.review.upsert(out.annotation);
      this.userChoice = null;
      await this.review.open(out.annotation, { confirm: false }); // shows the disagreement
      await this.refresh();
      toast(
        `Consensus of ${out.readers.length} readings (${this.#methodName(this.method.value)}): ` +
          `${out.disagreement_voxels} voxels disputed. Adjudicate, save and approve it.`,
        "success",
        8000,
      );
    } catch (err) {
      toast(`Consensus failed: ${err.message}`, "error");
    } finally {
      this.busy = false;
      this.render();
    }
  }

  #methodName(value) {
    return (METHODS.find(([v]) => v === value) || [value, value])[1];
  }

  render() {
    const finished = this.finished();
    const existing = this.review.consensus();
    this.buildButton.disabled = this.busy || finished.length < 2;
    this.buildButton.textContent = this.busy
      ? "Building…"
      : existing
        ? "Rebuild consensus"
        : "Build consensus";
    this.method.disabled = this.busy;
    const names = finished.map((a) => a.owner || `#${a.id}`).join(", ");
    const parts = [];
    if (finished.length < 2)
      parts.push(`Needs two submitted or approved readings (${finished.length} so far).`);
    else parts.push(`From ${finished.length} readings: ${names}.`);
    if (existing) {
      const how = existing.head?.engine_name
        ? `computed (${existing.head.engine_name})`
        : "adjudicated by hand";
      parts.push(`Consensus: version ${existing.version}, ${existing.state}, ${how}.`);
    }
    this.status.textContent = parts.join(" ");
    const overlay = this.review.overlay;
    const has = this.disagreeing !== null;
    this.toggleButton.disabled = !has;
    this.toggleButton.classList.toggle("ws-on", has && overlay.showDisagreement);
    this.toggleButton.setAttribute("aria-pressed", String(has && overlay.showDisagreement));
    this.toggleText.textContent = has
      ? this.disagreeing
        ? `${this.disagreeing.toLocaleString()} voxels differ`
        : "the readers agree everywhere"
      : "";
    this.table.replaceChildren(this.#table());
    // Which consensus revision the table compares against (tests wait for it).
    this.table.dataset.consensusRevision = this.agreement?.consensus?.revision_id ?? "";
  }

  #table() {
    const a = this.agreement;
    if (!a) return h("p", { class: "ws-muted" }, "Agreement appears once two readings are in.");
    // Labels neither side marked say nothing: leave them out.
    const marked = (r) => (r.metrics.volume_a_mm3 ?? 1) > 0 || (r.metrics.volume_b_mm3 ?? 1) > 0;
    const rows = [...a.masks, ...a.against_consensus].filter(marked);
    if (!rows.length) return h("p", { class: "ws-muted" }, "No mask labels marked by the readers.");
    const num = (x, digits) => (x === null || x === undefined ? "–" : fmt(x, digits));
    return h(
      "table",
      { class: "ws-table ws-agreement" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Label"),
          h("th", {}, "Readers"),
          h("th", { title: "Dice similarity coefficient (1 = identical)" }, "Dice"),
          h("th", { title: "95th percentile Hausdorff distance, mm" }, "HD95 mm"),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((r) =>
          h(
            "tr",
            {
              dataset: {
                testid: "agreement-row",
                label: r.label,
                readers: `${r.reader_a}|${r.reader_b}`,
              },
            },
            h("td", {}, r.label),
            h("td", {}, `${r.reader_a} vs ${r.reader_b}`),
            h("td", { class: "ws-num-text" }, num(r.metrics.dice, 3)),
            h("td", { class: "ws-num-text" }, num(r.metrics.hd95, 1)),
          ),
        ),
      ),
    );
  }
}

function countNonZero(data) {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i]) n++;
  return n;
}
