// Read-only information panels: statistics of the painted regions (computed by the
// server on the stored pixels: HU for CT) and the de-identified DICOM header.
import { api } from "../api.js";
import { h } from "./ui.js";
import { fmt } from "./geometry.js";

export class StatsPanel {
  constructor(ws, body) {
    this.ws = ws;
    this.body = body;
    this.result = h("div", { dataset: { testid: "stats-result" } });
    this.button = h(
      "button",
      {
        type: "button",
        class: "ws-btn",
        dataset: { testid: "compute-stats" },
        onclick: () => this.compute(),
      },
      "Measure painted regions",
    );
    body.replaceChildren(
      h(
        "p",
        { class: "ws-hint" },
        "Area or volume and intensity of each mask label, on the stored pixels.",
      ),
      this.button,
      this.result,
    );
  }

  async compute() {
    const mask = await this.ws.persistence.maskPayload();
    if (!mask) {
      this.result.replaceChildren(h("p", { class: "ws-muted" }, "Nothing is painted yet."));
      return;
    }
    this.button.disabled = true;
    this.result.replaceChildren(h("p", { class: "ws-muted" }, "Measuring…"));
    try {
      const rows = await api.post(`/images/${this.ws.image.id}/stats`, { mask });
      this.result.replaceChildren(this.#table(rows));
      this.result.scrollIntoView({ block: "nearest" });
    } catch (err) {
      this.result.replaceChildren(h("p", { class: "ws-error" }, err.message));
    } finally {
      this.button.disabled = false;
    }
  }

  #table(rows) {
    if (!rows.length) return h("p", { class: "ws-muted" }, "Nothing is painted yet.");
    const is3D = this.ws.image.shape[0] > 1;
    const units = rows[0].units ? ` ${rows[0].units}` : "";
    const size = (r) =>
      is3D && r.volume_mm3 !== null
        ? `${fmt(r.volume_mm3 / 1000, 3)} ml (${fmt(r.volume_mm3, 1)} mm³)`
        : r.area_mm2 !== null
          ? `${fmt(r.area_mm2, 1)} mm²`
          : "– (no pixel spacing)";
    return h(
      "div",
      {},
      rows.map((r) =>
        h(
          "div",
          { class: "ws-stat", dataset: { testid: "stats-row" } },
          h(
            "div",
            { class: "ws-stat-head" },
            h("span", {
              class: "ws-swatch",
              style: { background: this.ws.labelByName(r.label)?.color || "#999" },
            }),
            r.label || `value ${r.value}`,
            h("span", { class: "ws-muted" }, `${r.voxels} voxels`),
          ),
          h(
            "dl",
            {},
            h("dt", {}, is3D ? "Volume" : "Area"),
            h("dd", {}, size(r)),
            h("dt", {}, "Mean ± SD"),
            h("dd", {}, `${fmt(r.mean, 1)} ± ${fmt(r.std, 1)}${units}`),
            h("dt", {}, "Range"),
            h("dd", {}, `${fmt(r.min, 1)} … ${fmt(r.max, 1)}${units}`),
          ),
        ),
      ),
    );
  }
}

export class DicomPanel {
  constructor(ws, section) {
    this.ws = ws;
    this.body = section.body;
    this.loaded = false;
    section.el.addEventListener("toggle", () => section.el.open && this.load());
  }

  async load() {
    if (this.loaded) return;
    this.loaded = true;
    this.body.replaceChildren(h("p", { class: "ws-muted" }, "Loading…"));
    let rows;
    try {
      rows = await api.get(`/images/${this.ws.image.id}/dicom-header`);
    } catch (err) {
      this.loaded = false;
      this.body.replaceChildren(h("p", { class: "ws-error" }, err.message));
      return;
    }
    if (!rows.length) {
      this.body.replaceChildren(h("p", { class: "ws-muted" }, "Not a DICOM image (no header)."));
      return;
    }
    const table = h("table", { class: "ws-table ws-dicom", dataset: { testid: "dicom-table" } });
    const filter = h("input", {
      type: "search",
      class: "ws-search",
      placeholder: "Filter tags…",
      "aria-label": "Filter DICOM tags",
    });
    const fill = () => {
      const q = filter.value.trim().toLowerCase();
      table.replaceChildren(...this.#rows(rows, 0, q));
    };
    filter.addEventListener("input", fill);
    fill();
    this.body.replaceChildren(
      h("p", { class: "ws-hint" }, "De-identified header of the first instance."),
      filter,
      h("div", { class: "ws-scroll" }, table),
    );
  }

  #rows(rows, depth, q) {
    const out = [];
    for (const row of rows) {
      const text = `${row.tag} ${row.keyword} ${row.name} ${row.value ?? ""}`.toLowerCase();
      const nested = (row.items || []).flatMap((item, i) => {
        const inner = this.#rows(item, depth + 1, q);
        if (!inner.length) return [];
        const pad = { paddingLeft: `${(depth + 1) * 12}px` };
        return [
          h("tr", { class: "ws-dicom-item" }, h("td", { colspan: 3, style: pad }, `Item ${i + 1}`)),
          ...inner,
        ];
      });
      if (q && !text.includes(q) && nested.length === 0) continue;
      out.push(
        h(
          "tr",
          {},
          h("td", { class: "ws-mono", style: { paddingLeft: `${depth * 12 + 4}px` } }, row.tag),
          h("td", { title: `${row.name} (${row.vr})` }, row.keyword || row.name),
          h(
            "td",
            { class: "ws-dicom-value" },
            row.vr === "SQ" ? `${(row.items || []).length} item(s)` : (row.value ?? ""),
          ),
        ),
        ...nested,
      );
    }
    return out;
  }
}
