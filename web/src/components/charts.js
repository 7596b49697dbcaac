// Small SVG charts (no library): horizontal bars, box plots and a heatmap matrix. Each
// returns an <svg role="img"> sized in pixels (scaled down by CSS on narrow screens) with
// an aria-label and a <title> tooltip on every mark; values that are null or not finite
// are drawn as "n/a" rather than as zero.
//
//   svg(tag, attrs?, ...children)  an SVG element (attrs as for el(): testid, dataset, class)
//   colorScale(value, [lo, hi])    red → yellow → green colour for a value in the domain
//   barChart(items, opts)          items: [{label, value, title?, dataset?}]
//     opts: {max, format(v), unit, testid, ariaLabel, color, width}
//   boxPlot(rows, opts)            rows: [{label, min, q1?, median, mean, q3?, max, n?, title?}]
//     (q1/q3 draw a box; without them a range line with the median and mean marks; with
//     min/max a confidence interval and no median, an interval around the mean)
//     opts: {domain: [lo, hi], format(v), testid, ariaLabel, width}
//   boxStats(values)               {min, q1, median, mean, q3, max, n} of a number array
//   heatmap(rows, cols, cell, opts) cell(row, col) → {value, text?, title?, dataset?}
//     opts: {domain: [lo, hi], testid, ariaLabel, cellSize}
//   legendScale(domain, {format, width}) a colour bar for colorScale
import { el } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const FONT = 12;
const CHAR = 7; // approximate width of a 12 px system-ui character, for label margins

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") node.setAttribute("data-testid", value);
    else if (key === "dataset") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
    else if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const title = (text) => (text ? svg("title", {}, text) : null);
const finite = (v) => typeof v === "number" && Number.isFinite(v);
const textWidth = (s) => String(s).length * CHAR;
const defaultFormat = (v) => (finite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : "n/a");

function frame(width, height, { testid, ariaLabel, className }) {
  return svg("svg", {
    class: ["chart", className],
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": ariaLabel || "chart",
    testid,
    "font-size": FONT,
  });
}

// Three-stop scale: low (red), middle (yellow), high (green); grey when undefined.
const STOPS = [
  [215, 48, 39],
  [254, 224, 139],
  [26, 152, 80],
];
export function colorScale(value, [lo, hi] = [0, 1]) {
  if (!finite(value)) return "#e6eaef";
  const t = Math.min(1, Math.max(0, (value - lo) / (hi - lo || 1)));
  const [a, b, u] = t < 0.5 ? [STOPS[0], STOPS[1], t * 2] : [STOPS[1], STOPS[2], (t - 0.5) * 2];
  const mix = a.map((x, i) => Math.round(x + (b[i] - x) * u));
  return `rgb(${mix.join(",")})`;
}

function textOn(fill) {
  const m = /rgb\((\d+),(\d+),(\d+)\)/.exec(fill);
  if (!m) return "#1d2733";
  const [r, g, b] = m.slice(1).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 150 ? "#ffffff" : "#1d2733";
}

// Ticks at "nice" steps from lo up to the first step at or above hi.
function ticks(lo, hi, count = 5) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || raw;
  const out = [];
  const last = Math.ceil(hi / step - 1e-9) * step; // the last tick covers hi
  for (let v = Math.ceil(lo / step) * step; v <= last + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

function axis(x, y, width, lo, hi, format) {
  const scale = (v) => x + ((v - lo) / (hi - lo || 1)) * width;
  return svg(
    "g",
    { class: "chart-axis" },
    svg("line", { x1: x, x2: x + width, y1: y, y2: y, stroke: "#b9c1cc" }),
    ticks(lo, hi).map((t) =>
      svg(
        "g",
        {},
        svg("line", { x1: scale(t), x2: scale(t), y1: y, y2: y + 4, stroke: "#b9c1cc" }),
        svg("text", { x: scale(t), y: y + 16, "text-anchor": "middle", fill: "#5f6b7a" }, format(t)),
      ),
    ),
  );
}

function gridLines(x, top, bottom, width, lo, hi) {
  const scale = (v) => x + ((v - lo) / (hi - lo || 1)) * width;
  return svg(
    "g",
    { class: "chart-grid" },
    ticks(lo, hi).map((t) => svg("line", { x1: scale(t), x2: scale(t), y1: top, y2: bottom, stroke: "#eef1f4" })),
  );
}

export function barChart(items, { max, format = defaultFormat, unit = "", testid, ariaLabel, color = "#3b82f6", width = 560 } = {}) {
  const row = 26;
  const labelW = Math.min(220, Math.max(60, ...items.map((i) => textWidth(i.label))) + 12);
  const valueW = 64;
  const plotW = Math.max(120, width - labelW - valueW);
  const top = 6;
  const height = top + items.length * row + 26;
  const hi = max ?? Math.max(0, ...items.map((i) => (finite(i.value) ? i.value : 0)));
  const top2 = hi > 0 ? ticks(0, hi).at(-1) : 1;
  const scale = (v) => (v / top2) * plotW;
  const root = frame(width, height, { testid, ariaLabel, className: "bar-chart" });
  const hatch = uid("chart-hatch");
  root.append(hatchDefs(hatch));
  root.append(gridLines(labelW, top, top + items.length * row, plotW, 0, top2));
  items.forEach((item, i) => {
    const y = top + i * row;
    const ok = finite(item.value);
    const shown = ok ? `${format(item.value)}${unit ? ` ${unit}` : ""}` : "n/a";
    root.append(
      svg(
        "g",
        { class: "bar", testid: "bar", dataset: { label: item.label, value: ok ? item.value : "", ...(item.dataset || {}) } },
        title(item.title || `${item.label}: ${shown}`),
        svg("text", { x: labelW - 8, y: y + row / 2 + 4, "text-anchor": "end", fill: "#1d2733" }, item.label),
        ok
          ? svg("rect", { x: labelW, y: y + 5, width: Math.max(1, scale(item.value)), height: row - 10, rx: 3, fill: item.color || color })
          : svg("rect", { x: labelW, y: y + 5, width: plotW, height: row - 10, rx: 3, fill: `url(#${hatch})`, stroke: "#d9dee5" }),
        svg("text", { x: labelW + (ok ? scale(item.value) : 0) + 6, y: y + row / 2 + 4, fill: ok ? "#1d2733" : "#5f6b7a" }, shown),
      ),
    );
  });
  root.append(axis(labelW, top + items.length * row, plotW, 0, top2, (t) => format(t)));
  return root;
}

let uidCounter = 0;
const uid = (prefix) => `${prefix}-${++uidCounter}`;

function hatchDefs(id) {
  return svg(
    "defs",
    {},
    svg(
      "pattern",
      { id, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
      svg("rect", { width: 6, height: 6, fill: "#f8f9fb" }),
      svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#d9dee5", "stroke-width": 2 }),
    ),
  );
}

export function boxStats(values) {
  const v = values.filter(finite).sort((a, b) => a - b);
  if (!v.length) return { min: null, q1: null, median: null, mean: null, q3: null, max: null, n: 0 };
  const q = (p) => {
    const pos = (v.length - 1) * p;
    const lo = Math.floor(pos);
    return v[lo] + (v[Math.min(lo + 1, v.length - 1)] - v[lo]) * (pos - lo);
  };
  return { min: v[0], q1: q(0.25), median: q(0.5), mean: v.reduce((a, b) => a + b, 0) / v.length, q3: q(0.75), max: v.at(-1), n: v.length };
}

export function boxPlot(rows, { domain = [0, 1], format = defaultFormat, testid, ariaLabel, width = 560 } = {}) {
  const row = 34;
  const labelW = Math.min(220, Math.max(60, ...rows.map((r) => textWidth(r.label))) + 12);
  const plotW = Math.max(120, width - labelW - 20);
  const top = 8;
  const height = top + rows.length * row + 26;
  const [lo, hi] = domain;
  const scale = (v) => labelW + ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo || 1)) * plotW;
  const root = frame(width, height, { testid, ariaLabel, className: "box-plot" });
  root.append(gridLines(labelW, top, top + rows.length * row, plotW, lo, hi));
  rows.forEach((r, i) => {
    const y = top + i * row;
    const mid = y + row / 2;
    const ok = finite(r.min) && finite(r.max);
    const summary = ok
      ? `${r.label}: min ${format(r.min)}, median ${format(r.median)}, mean ${format(r.mean)}, max ${format(r.max)}${r.n ? ` (${r.n} images)` : ""}`
      : `${r.label}: no values`;
    const g = svg("g", { class: "box-row", testid: "box-row", dataset: { label: r.label, ...(r.dataset || {}) } }, title(r.title || summary));
    g.append(svg("text", { x: labelW - 8, y: mid + 4, "text-anchor": "end", fill: "#1d2733" }, r.label));
    if (!ok) {
      g.append(svg("text", { x: labelW + 6, y: mid + 4, fill: "#5f6b7a" }, "n/a"));
      root.append(g);
      return;
    }
    const [x0, x1] = [scale(r.min), scale(r.max)];
    g.append(
      svg("line", { x1: x0, x2: x1, y1: mid, y2: mid, stroke: "#5f6b7a", "stroke-width": 1.5 }),
      svg("line", { x1: x0, x2: x0, y1: mid - 7, y2: mid + 7, stroke: "#5f6b7a", "stroke-width": 1.5 }),
      svg("line", { x1: x1, x2: x1, y1: mid - 7, y2: mid + 7, stroke: "#5f6b7a", "stroke-width": 1.5 }),
    );
    if (finite(r.q1) && finite(r.q3)) {
      g.append(svg("rect", { x: scale(r.q1), y: mid - 9, width: Math.max(2, scale(r.q3) - scale(r.q1)), height: 18, rx: 2, fill: colorScale(r.median, domain), "fill-opacity": 0.6, stroke: "#5f6b7a" }));
    } else {
      // no quartiles: shade between median and mean so the bulk of the readings shows
      const a = scale(Math.min(r.median ?? r.mean, r.mean ?? r.median));
      const b = scale(Math.max(r.median ?? r.mean, r.mean ?? r.median));
      g.append(svg("rect", { x: a - 3, y: mid - 9, width: Math.max(6, b - a + 6), height: 18, rx: 3, fill: colorScale(r.mean ?? r.median, domain), "fill-opacity": 0.55, stroke: "#5f6b7a" }));
    }
    if (finite(r.median)) {
      g.append(svg("line", { class: "median", x1: scale(r.median), x2: scale(r.median), y1: mid - 11, y2: mid + 11, stroke: "#1d2733", "stroke-width": 2.5 }));
    }
    if (finite(r.mean)) {
      const m = scale(r.mean);
      g.append(svg("path", { class: "mean", d: `M ${m} ${mid - 6} L ${m + 6} ${mid} L ${m} ${mid + 6} L ${m - 6} ${mid} Z`, fill: "#ffffff", stroke: "#1d2733", "stroke-width": 1.5 }));
    }
    root.append(g);
  });
  root.append(axis(labelW, top + rows.length * row, plotW, lo, hi, format));
  return root;
}

export function heatmap(rows, cols, cell, { domain = [0, 1], testid, ariaLabel, cellSize = 64 } = {}) {
  const rowW = Math.min(200, Math.max(40, ...rows.map(textWidth)) + 12);
  const colH = Math.min(140, Math.max(24, ...cols.map(textWidth)) * 0.72 + 16);
  const width = rowW + cols.length * cellSize + 4;
  const height = colH + rows.length * cellSize + 4;
  const root = frame(width, height, { testid, ariaLabel, className: "heatmap" });
  cols.forEach((c, j) => {
    const x = rowW + j * cellSize + cellSize / 2;
    root.append(svg("text", { x, y: colH - 8, transform: `rotate(-35 ${x} ${colH - 8})`, fill: "#1d2733", class: "col-label" }, c));
  });
  rows.forEach((r, i) => {
    const y = colH + i * cellSize;
    root.append(svg("text", { x: rowW - 8, y: y + cellSize / 2 + 4, "text-anchor": "end", fill: "#1d2733", class: "row-label" }, r));
    cols.forEach((c, j) => {
      const spec = cell(r, c, i, j) || {};
      const fill = spec.fill || colorScale(spec.value, domain);
      const x = rowW + j * cellSize;
      root.append(
        svg(
          "g",
          { class: "heat-cell", testid: "heatmap-cell", dataset: { row: r, col: c, value: finite(spec.value) ? spec.value : "", ...(spec.dataset || {}) } },
          title(spec.title || `${r} × ${c}: ${spec.text ?? defaultFormat(spec.value)}`),
          svg("rect", { x: x + 1, y: y + 1, width: cellSize - 2, height: cellSize - 2, rx: 4, fill }),
          svg("text", { x: x + cellSize / 2, y: y + cellSize / 2 + 4, "text-anchor": "middle", fill: textOn(fill), "font-weight": 600 }, spec.text ?? defaultFormat(spec.value)),
        ),
      );
    });
  });
  return root;
}

export function legendScale(domain = [0, 1], { format = defaultFormat, width = 220, label = "" } = {}) {
  const id = uid("chart-grad");
  const root = svg("svg", { class: "chart chart-legend", width, height: 34, viewBox: `0 0 ${width} 34`, "aria-hidden": "true", "font-size": 11 });
  root.append(
    svg(
      "defs",
      {},
      svg(
        "linearGradient",
        { id },
        [0, 0.25, 0.5, 0.75, 1].map((t) => svg("stop", { offset: `${t * 100}%`, "stop-color": colorScale(domain[0] + t * (domain[1] - domain[0]), domain) })),
      ),
    ),
    svg("rect", { x: 0, y: 4, width, height: 10, rx: 3, fill: `url(#${id})` }),
    svg("text", { x: 0, y: 28, fill: "#5f6b7a" }, format(domain[0])),
    label ? svg("text", { x: width / 2, y: 28, "text-anchor": "middle", fill: "#5f6b7a" }, label) : null,
    svg("text", { x: width, y: 28, "text-anchor": "end", fill: "#5f6b7a" }, format(domain[1])),
  );
  return root;
}

// A chart with a caption and a short explanation, in a card.
export function chartCard(heading, chart, { hint, testid } = {}) {
  return el("section", { class: "card stack chart-card", testid }, el("h3", {}, heading), hint ? el("p", { class: "small muted" }, hint) : null, el("div", { class: "chart-scroll" }, chart));
}
