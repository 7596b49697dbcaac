// The project's label schema in the workspace: which label the current tool draws with
// (the label select), and each label's colour and visibility.
import { h } from "./ui.js";
import { icon } from "./icons.js";

const KIND_TITLES = { mask: "Masks", box: "Boxes", point: "Points" };

export class LabelsPanel {
  /**
   * @param {object} ws  labels, tools, viewer, overlay
   * @param {HTMLElement} body  the panel section's body
   * @param {HTMLSelectElement} select  the toolbar's active-label select
   */
  constructor(ws, body, select) {
    this.ws = ws;
    this.body = body;
    this.select = select;
    this.hidden = new Set();
    this.active = {};
    for (const kind of ["mask", "box", "point"]) {
      this.active[kind] = ws.labels.find((l) => l.kind === kind)?.name || null;
    }
    select.addEventListener("change", () => this.setActive(this.kind(), select.value));
  }

  /** The label kind of the current tool (mask for the navigate/ruler tools too). */
  kind() {
    return this.ws.tools.current?.kind || "mask";
  }

  labelsOf(kind) {
    return this.ws.labels.filter((l) => l.kind === kind);
  }

  activeLabel(kind) {
    return this.ws.labels.find((l) => l.kind === kind && l.name === this.active[kind]) || null;
  }

  setActive(kind, name) {
    this.active[kind] = name;
    this.hidden.delete(name); // drawing with an invisible label would be confusing
    this.ws.tools.apply();
    this.render();
  }

  /** Select the n-th (1-based) label of the current tool's kind. */
  selectNth(n) {
    const kind = this.kind();
    const label = this.labelsOf(kind)[n - 1];
    if (label) this.setActive(kind, label.name);
  }

  toggleHidden(name) {
    if (this.hidden.has(name)) this.hidden.delete(name);
    else this.hidden.add(name);
    this.render();
  }

  render() {
    const kind = this.kind();
    const options = this.labelsOf(kind);
    this.select.replaceChildren(
      ...(options.length ? options : [{ name: "", disabled: true }]).map((l) =>
        h(
          "option",
          { value: l.name, selected: l.name === this.active[kind] },
          l.name ? `${l.name}${l.value ? ` (${l.value})` : ""}` : `no ${kind} labels`,
        ),
      ),
    );
    this.select.disabled = !options.length;
    this.select.title = `Label for the ${kind} tools`;

    const maskLabels = this.labelsOf("mask");
    if (this.ws.viewer.nv) this.ws.viewer.setDrawColormap(drawColormap(maskLabels, this.hidden));
    this.ws.overlay?.schedule();

    const groups = ["mask", "box", "point"].map((k) => {
      const labels = this.labelsOf(k);
      if (!labels.length) return null;
      return h(
        "div",
        { class: "ws-label-group" },
        h("div", { class: "ws-label-kind" }, KIND_TITLES[k]),
        labels.map((l) => this.#row(l, k)),
      );
    });
    const any = groups.some(Boolean);
    this.body.replaceChildren(
      ...(any
        ? groups.filter(Boolean)
        : [h("p", { class: "ws-muted" }, "This project has no mask, box or point labels yet.")]),
    );
  }

  #row(label, kind) {
    const hidden = this.hidden.has(label.name);
    const active = this.active[kind] === label.name && kind === this.kind();
    const eye = h(
      "button",
      {
        type: "button",
        class: "ws-icon-btn ws-eye",
        title: hidden ? `Show ${label.name}` : `Hide ${label.name}`,
        "aria-label": hidden ? `Show ${label.name}` : `Hide ${label.name}`,
        "aria-pressed": String(!hidden),
        dataset: { testid: "label-visibility" },
        onclick: (e) => {
          e.stopPropagation();
          this.toggleHidden(label.name);
        },
      },
      icon(hidden ? "eyeOff" : "eye", 16),
    );
    return h(
      "div",
      {
        class: `ws-label-row${active ? " ws-active" : ""}${hidden ? " ws-hidden" : ""}`,
        role: "button",
        tabindex: "0",
        title: `Draw with ${label.name}`,
        dataset: { testid: "label-row", label: label.name },
        onclick: () => this.setActive(kind, label.name),
        onkeydown: (e) => e.key === "Enter" && this.setActive(kind, label.name),
      },
      h("span", { class: "ws-swatch", style: { background: label.color } }),
      h("span", { class: "ws-label-name" }, label.name),
      label.value ? h("span", { class: "ws-muted" }, `#${label.value}`) : null,
      eye,
    );
  }
}

/** NiiVue's drawing colormap for mask labels: index = label value, colour from the
 * schema, transparent for hidden labels and for 0; values without a label are red. */
export function drawColormap(labels, hidden) {
  const max = Math.max(1, ...labels.map((l) => l.value || 0));
  const n = Math.min(max, 255) + 1;
  const R = new Array(n).fill(255);
  const G = new Array(n).fill(64);
  const B = new Array(n).fill(64);
  const A = new Array(n).fill(255);
  const names = Array.from({ length: n }, (_, i) => String(i));
  A[0] = 0;
  for (const l of labels) {
    if (!l.value || l.value >= n) continue;
    const hex = (l.color || "#ff0000").replace("#", "");
    R[l.value] = parseInt(hex.slice(0, 2), 16);
    G[l.value] = parseInt(hex.slice(2, 4), 16);
    B[l.value] = parseInt(hex.slice(4, 6), 16);
    A[l.value] = hidden.has(l.name) ? 0 : 255;
    names[l.value] = l.name;
  }
  return { R, G, B, A, I: [...Array(n).keys()], labels: names };
}
