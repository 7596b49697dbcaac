// Agreement dashboard (reviewers): how well the readers of the project's images agree, over
// the images with two or more finished (submitted or approved) readings. Summary cards
// (images compared, mean pairwise Dice per mask label, Fleiss' kappa per class), a reader ×
// reader heatmap of mean Dice, each reader against the consensus (box plot of Dice and a
// table), HD95 per pair, box-label and class agreement tables, and the images ranked by
// disagreement (worst first) linking into the workspace for adjudication.
// Data: GET /api/projects/{id}/agreement?tolerance_mm=.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { barChart, boxPlot, chartCard, heatmap, legendScale } from "../components/charts.js";
import { field, input } from "../components/form.js";
import { formatDate, plural } from "../components/format.js";

const finite = (v) => typeof v === "number" && Number.isFinite(v);
const fmt = (v, digits = 3) => (finite(v) ? v.toFixed(digits) : "n/a");
const fmtMm = (v) => (finite(v) ? `${v.toFixed(v >= 100 ? 0 : 1)} mm` : "n/a");
const pairName = (a, b) => `${a} – ${b}`;

// Landis & Koch's reading of kappa values.
function kappaWords(k) {
  if (!finite(k)) return "undefined";
  if (k < 0) return "worse than chance";
  if (k <= 0.2) return "slight";
  if (k <= 0.4) return "fair";
  if (k <= 0.6) return "moderate";
  if (k <= 0.8) return "substantial";
  return "almost perfect";
}

// Mean of the per-pair means, weighted by the images each pair shares.
function weightedDice(pairs) {
  let sum = 0;
  let n = 0;
  for (const p of pairs) {
    if (finite(p.dice?.mean)) {
      sum += p.dice.mean * p.images;
      n += p.images;
    }
  }
  return n ? sum / n : null;
}

function stat(value, label, { testid, title, dataset } = {}) {
  return el("div", { class: "stat", testid, title, dataset }, el("strong", {}, value), el("span", {}, label));
}

function summaryCards(data, labels) {
  const cards = [stat(String(data.images_compared), "images compared", { testid: "agreement-images-compared" })];
  for (const label of labels) {
    const pairs = data.pairs.filter((p) => p.label === label);
    const d = weightedDice(pairs);
    cards.push(stat(fmt(d), `mean pairwise Dice · ${label}`, { testid: "agreement-label-dice", dataset: { label, value: finite(d) ? d : "" }, title: `Mean Dice over ${plural(pairs.length, "reader pair")}, weighted by shared images` }));
  }
  for (const c of data.classes) {
    cards.push(stat(fmt(c.fleiss_kappa, 2), `Fleiss' κ · ${c.name}`, { testid: "agreement-class-kappa", dataset: { name: c.name }, title: `${kappaWords(c.fleiss_kappa)} agreement, over images with ${c.raters} readers` }));
  }
  return el("div", { class: "stat-row", testid: "agreement-summary" }, cards);
}

function readersOf(data, label) {
  const names = new Set();
  for (const p of data.pairs) if (p.label === label) names.add(p.reader_a).add(p.reader_b);
  for (const r of data.readers) if (r.label === label) names.add(r.reader);
  return [...names].sort((a, b) => a.localeCompare(b));
}

function diceHeatmap(data, label) {
  const names = readersOf(data, label);
  const pairs = new Map(data.pairs.filter((p) => p.label === label).map((p) => [[p.reader_a, p.reader_b].sort().join("\u0000"), p]));
  const chart = heatmap(
    names,
    names,
    (r, c) => {
      if (r === c) return { value: null, text: "—", fill: "#f1f3f6", title: r, dataset: { a: r, b: c, diagonal: "true" } };
      const p = pairs.get([r, c].sort().join("\u0000"));
      if (!p) return { value: null, text: "", fill: "#ffffff", title: `${r} and ${c} never read the same image`, dataset: { a: r, b: c } };
      const d = p.dice || {};
      return {
        value: d.mean,
        text: fmt(d.mean),
        title: `${r} × ${c}: mean Dice ${fmt(d.mean)} (median ${fmt(d.median)}, ${fmt(d.min)}–${fmt(d.max)}) over ${plural(p.images, "image")}`,
        dataset: { a: r, b: c, images: p.images },
      };
    },
    { domain: [0, 1], testid: "agreement-heatmap-svg", ariaLabel: `Mean Dice between each pair of readers, ${label}`, cellSize: names.length > 8 ? 48 : 64 },
  );
  return el(
    "section",
    { class: "card stack chart-card", testid: "agreement-heatmap", dataset: { label } },
    el("h3", {}, `Reader × reader mean Dice · ${label}`),
    el("p", { class: "small muted" }, "Mean over the images both readers finished; hover a cell for the median and range. Empty cells: the two never read the same image."),
    el("div", { class: "chart-scroll" }, chart),
    legendScale([0, 1], { format: (v) => v.toFixed(1), label: "Dice" }),
  );
}

function readerSection(data, label) {
  const rows = data.readers.filter((r) => r.label === label);
  if (!rows.length) {
    return el("section", { class: "card stack", testid: "agreement-readers", dataset: { label } }, el("h3", {}, `Readers against the consensus · ${label}`), emptyState("No reader could be compared with a consensus or majority vote yet."));
  }
  const plot = boxPlot(
    rows.map((r) => ({ label: r.reader, ...(r.dice || {}), n: r.images, dataset: { reader: r.reader, mean: r.dice?.mean ?? "" } })),
    { domain: [0, 1], testid: "agreement-readers-plot", ariaLabel: `Dice of each reader against the consensus, ${label}` },
  );
  return el(
    "section",
    { class: "card stack chart-card", testid: "agreement-readers", dataset: { label } },
    el("h3", {}, `Readers against the consensus · ${label}`),
    el("p", { class: "small muted" }, "Each reader's Dice against the image's consensus, or the majority vote of its readers where no consensus was formed: range (whiskers), median (bar), mean (◇); the shading spans the median and the mean."),
    el("div", { class: "chart-scroll" }, plot),
  );
}

function readerTable(data, label) {
  const rows = data.readers.filter((r) => r.label === label);
  if (!rows.length) return null;
  const mean = (r, key) => r[key]?.mean;
  const table = el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "table", testid: "agreement-readers-table" },
      el("thead", {}, el("tr", {}, ["Reader", "Images", "Dice (mean)", "Dice (median)", "Sensitivity", "Precision", "HD95 (median)"].map((h, i) => el("th", { class: i ? "num" : null }, h)))),
      el(
        "tbody",
        {},
        rows.map((r) =>
          el(
            "tr",
            { testid: "agreement-reader-row", dataset: { reader: r.reader } },
            el("td", {}, el("strong", {}, r.reader)),
            el("td", { class: "num" }, String(r.images)),
            el("td", { class: "num", dataset: { col: "dice" } }, fmt(mean(r, "dice"))),
            el("td", { class: "num" }, fmt(r.dice?.median)),
            el("td", { class: "num" }, fmt(mean(r, "sensitivity"))),
            el("td", { class: "num" }, fmt(mean(r, "precision"))),
            el("td", { class: "num" }, fmtMm(r.hd95?.median)),
          ),
        ),
      ),
    ),
  );
  return el(
    "section",
    { class: "card stack", testid: "agreement-reader-summary", dataset: { label } },
    el("h3", {}, `Per-reader summary against the consensus · ${label}`),
    table,
  );
}

function hd95Section(data, label) {
  const pairs = data.pairs.filter((p) => p.label === label);
  if (!pairs.length) return null;
  const chart = barChart(
    pairs.map((p) => ({
      label: pairName(p.reader_a, p.reader_b),
      value: p.hd95?.mean,
      title: finite(p.hd95?.mean) ? `${pairName(p.reader_a, p.reader_b)}: HD95 mean ${fmtMm(p.hd95.mean)} (median ${fmtMm(p.hd95.median)}, max ${fmtMm(p.hd95.max)}) over ${plural(p.images, "image")}` : `${pairName(p.reader_a, p.reader_b)}: undefined (one reader marked nothing)`,
      dataset: { a: p.reader_a, b: p.reader_b },
    })),
    { format: (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)), unit: "mm", color: "#8b5cf6", width: 760, testid: "agreement-hd95-chart", ariaLabel: `Mean HD95 per reader pair, ${label}` },
  );
  return chartCard(`HD95 per reader pair · ${label}`, chart, { hint: "95th percentile of the surface distance between the two readers' outlines (mean over shared images, in mm; lower is better). n/a: one reader marked nothing.", testid: "agreement-hd95" });
}

function pairTable(data, label) {
  const pairs = data.pairs.filter((p) => p.label === label);
  if (!pairs.length) return null;
  const cols = [
    ["dice", "Dice"],
    ["iou", "IoU"],
    ["nsd", "NSD"],
    ["volume_similarity", "Vol. sim."],
  ];
  return el(
    "details",
    { class: "disclosure" },
    el("summary", {}, `All pair metrics · ${label}`),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table", testid: "agreement-pairs-table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Pair"), el("th", { class: "num" }, "Images"), cols.map(([, h]) => el("th", { class: "num" }, h)), el("th", { class: "num" }, "HD95"), el("th", { class: "num" }, "ASSD"))),
        el(
          "tbody",
          {},
          pairs.map((p) =>
            el(
              "tr",
              { testid: "agreement-pair-row", dataset: { a: p.reader_a, b: p.reader_b } },
              el("td", {}, pairName(p.reader_a, p.reader_b)),
              el("td", { class: "num" }, String(p.images)),
              cols.map(([k]) => el("td", { class: "num" }, fmt(p[k]?.mean))),
              el("td", { class: "num" }, fmtMm(p.hd95?.mean)),
              el("td", { class: "num" }, fmtMm(p.assd?.mean)),
            ),
          ),
        ),
      ),
    ),
  );
}

function boxesSection(data) {
  if (!data.boxes.length) return null;
  return el(
    "section",
    { class: "card stack", testid: "agreement-boxes" },
    el("h3", {}, "Boxes"),
    el("p", { class: "small muted" }, "F1 of the boxes two readers drew, matched at IoU ≥ 0.5 (mean over shared images)."),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Label"), el("th", {}, "Pair"), el("th", { class: "num" }, "Images"), el("th", { class: "num" }, "F1 (mean)"), el("th", { class: "num" }, "F1 (min)"))),
        el(
          "tbody",
          {},
          data.boxes.map((b) =>
            el("tr", {}, el("td", {}, b.label), el("td", {}, pairName(b.reader_a, b.reader_b)), el("td", { class: "num" }, String(b.images)), el("td", { class: "num" }, fmt(b.f1?.mean)), el("td", { class: "num" }, fmt(b.f1?.min))),
          ),
        ),
      ),
    ),
  );
}

function classesSection(data) {
  if (!data.classes.length) return null;
  return el(
    "section",
    { class: "card stack", testid: "agreement-classes" },
    el("h3", {}, "Image classes"),
    el("p", { class: "small muted" }, "Whether readers gave an image the same class: Fleiss' κ over all readers, Cohen's κ and the share of images they agree on per pair (Landis & Koch: 0.41–0.60 moderate, 0.61–0.80 substantial, above 0.80 almost perfect)."),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table" },
        el("thead", {}, el("tr", {}, el("th", {}, "Class"), el("th", { class: "num" }, "Fleiss' κ"), el("th", {}, "Reading"), el("th", {}, "Pairs: Cohen's κ (agreement, images)"))),
        el(
          "tbody",
          {},
          data.classes.map((c) =>
            el(
              "tr",
              { testid: "agreement-class-row", dataset: { name: c.name } },
              el("td", {}, el("strong", {}, c.name)),
              el("td", { class: "num" }, fmt(c.fleiss_kappa, 2)),
              el("td", { class: "muted" }, c.fleiss_kappa === null ? "needs images with the same number of readers" : `${kappaWords(c.fleiss_kappa)} (${c.raters} readers)`),
              el(
                "td",
                { class: "small" },
                c.pairs.map((p, i) => [i ? el("br") : null, `${pairName(p.reader_a, p.reader_b)}: κ ${fmt(p.kappa, 2)} (${finite(p.agreement) ? Math.round(p.agreement * 100) : "n/a"}%, ${p.images})`]),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

function diceBar(v) {
  if (!finite(v)) return el("span", { class: "muted" }, "n/a");
  return el(
    "span",
    { class: "dice-cell" },
    el("span", { class: "dice-bar", "aria-hidden": "true" }, el("span", { style: { width: `${Math.max(2, v * 100)}%`, background: v < 0.5 ? "var(--danger)" : v < 0.8 ? "var(--st-in_progress)" : "var(--st-approved)" } })),
    el("span", { class: "mono" }, fmt(v)),
  );
}

function imagesSection(data) {
  const rows = data.images.map((im) =>
    el(
      "tr",
      { testid: "agreement-image-row", dataset: { imageId: im.image_id, meanDice: finite(im.mean_dice) ? im.mean_dice : "" } },
      el("td", {}, el("a", { class: "image-name", href: `#/images/${im.image_id}` }, im.name)),
      el("td", { dataset: { col: "readers" } }, im.readers.join(", ")),
      el("td", { dataset: { col: "mean-dice" } }, diceBar(im.mean_dice)),
      el("td", { class: "num", dataset: { col: "min-dice" } }, fmt(im.min_dice)),
      el("td", {}, im.has_consensus ? el("span", { class: "badge status-approved" }, "Consensus") : el("span", { class: "muted small" }, "none yet")),
      el("td", {}, el("a", { class: "btn btn-small", href: `#/images/${im.image_id}`, testid: "adjudicate" }, im.has_consensus ? "Open" : "Adjudicate →")),
    ),
  );
  return el(
    "section",
    { class: "section stack" },
    el("h2", {}, "Images, most disagreement first"),
    el("p", { class: "small muted" }, "Mean and lowest Dice over the reader pairs and mask labels of each image. Open an image to compare the readings and form the consensus."),
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "table", testid: "agreement-images" },
        el("thead", {}, el("tr", {}, el("th", {}, "Image"), el("th", {}, "Readers"), el("th", {}, "Mean Dice"), el("th", { class: "num" }, "Min Dice"), el("th", {}, "Consensus"), el("th", {}, el("span", { class: "sr-only" }, "Open")))),
        el("tbody", {}, rows),
      ),
    ),
  );
}

export function mountAgreement(container, env) {
  const { project, bus } = env;
  const tolerance = input({ type: "number", min: 0.1, max: 100, step: 0.1, value: "1", testid: "agreement-tolerance", style: "width: 90px" });
  const refresh = el("button", { type: "submit", class: "btn", testid: "agreement-refresh" }, "Recompute");
  const stamp = el("span", { class: "small muted", testid: "agreement-stamp" });
  const body = el("div", { class: "stack", "aria-live": "polite" });
  let label = null;
  let data = null;
  let seq = 0;

  const controls = el(
    "form",
    { class: "filters agreement-controls", novalidate: true },
    field("NSD tolerance (mm)", tolerance),
    refresh,
    el("span", { class: "spacer" }),
    stamp,
  );
  controls.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });

  function render() {
    const labels = [...new Set([...data.pairs.map((p) => p.label), ...data.readers.map((r) => r.label)])].sort();
    if (!data.images_compared) {
      const one = (env.project.readers_per_image || 1) < 2;
      body.replaceChildren(
        el(
          "div",
          { class: "empty", testid: "agreement-empty" },
          el("p", {}, el("strong", {}, "No image has two finished readings yet.")),
          el("p", {}, "Agreement is computed over images that two or more readers have submitted (or that were approved). ", one ? "This project wants one reader per image — raise it on the Reader study tab and distribute the images." : "It appears here as soon as the readers submit their work."),
          one && env.showTab ? el("button", { type: "button", class: "btn btn-primary", onclick: () => env.showTab("study") }, "Reader study settings") : null,
        ),
      );
      return;
    }
    if (!labels.includes(label)) label = labels[0] ?? null;
    const picker = labels.length > 1
      ? el(
          "div",
          { class: "btn-group", role: "group", "aria-label": "Mask label", testid: "agreement-label" },
          labels.map((l) => el("button", { type: "button", class: "btn", "aria-pressed": String(l === label), dataset: { label: l }, onclick: () => { label = l; render(); } }, l)),
        )
      : null;
    const maskPart = label
      ? [
          picker ? el("div", { class: "row" }, el("span", { class: "muted" }, "Mask label:"), picker) : null,
          el("div", { class: "two-col" }, diceHeatmap(data, label), readerSection(data, label)),
          readerTable(data, label),
          hd95Section(data, label),
          pairTable(data, label),
        ]
      : [el("p", { class: "muted" }, "No mask label was compared (the readers drew no masks, or the project has no mask labels).")];
    body.replaceChildren(
      el("div", { testid: "agreement-dashboard", class: "stack" }, summaryCards(data, labels), maskPart, boxesSection(data), classesSection(data), imagesSection(data)),
    );
  }

  async function load() {
    const mine = ++seq;
    const t = Number(tolerance.value);
    if (!(t > 0 && t <= 100)) {
      body.replaceChildren(errorBox("The NSD tolerance must be a number of millimetres above 0 and at most 100."));
      return;
    }
    refresh.disabled = true;
    if (!data) body.replaceChildren(spinner("Comparing the finished readings…"));
    else body.setAttribute("aria-busy", "true");
    try {
      const result = await api.get(`/projects/${project.id}/agreement?tolerance_mm=${encodeURIComponent(t)}`);
      if (mine !== seq) return;
      data = result;
      stamp.textContent = `Computed ${formatDate(new Date().toISOString())}`;
      render();
    } catch (err) {
      if (mine === seq) body.replaceChildren(errorBox(err, load));
    } finally {
      if (mine === seq) {
        refresh.disabled = false;
        body.removeAttribute("aria-busy");
      }
    }
  }

  container.append(controls, body);
  // Computing agreement reads every finished mask: refresh when the tab is shown again,
  // not on every change elsewhere.
  const onShown = (ev) => ev.detail === "agreement" && load();
  bus.addEventListener("tab-shown", onShown);
  load();
  return () => bus.removeEventListener("tab-shown", onShown);
}
