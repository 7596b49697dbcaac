// Panels of the non-mask content: image classes (tags), notes, and the list of boxes,
// points and ruler measurements (click to go there, × to delete).
import { h } from "./ui.js";
import { icon } from "./icons.js";
import { fmt } from "./geometry.js";

const coords = (v) => `(${v.map((x) => fmt(x, 1)).join(", ")})`;

export function renderClasses(ws, body) {
  const labels = ws.labels.filter((l) => l.kind === "classification");
  if (!labels.length) {
    body.replaceChildren(
      h("p", { class: "ws-muted" }, "No classification labels in this project."),
    );
    return;
  }
  const on = new Set(ws.content.content.classes);
  body.replaceChildren(
    h(
      "div",
      { class: "ws-tags", role: "group", "aria-label": "Image classes" },
      labels.map((l) =>
        h(
          "button",
          {
            type: "button",
            class: `ws-tag${on.has(l.name) ? " ws-on" : ""}`,
            "aria-pressed": String(on.has(l.name)),
            style: { "--tag-color": l.color },
            title: on.has(l.name) ? `Remove class ${l.name}` : `Tag the image as ${l.name}`,
            dataset: { testid: "class-tag", label: l.name },
            onclick: () => ws.content.toggleClass(l.name),
          },
          l.name,
        ),
      ),
    ),
  );
}

export class NotesPanel {
  constructor(ws, body) {
    this.ws = ws;
    this.body = body;
    this.input = h("textarea", {
      class: "ws-note-input",
      rows: 3,
      placeholder: "Write a note… (Ctrl+Enter adds it)",
      "aria-label": "Note text",
      dataset: { testid: "note-input" },
      onkeydown: (e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          this.add();
        }
      },
    });
    this.attach = h(
      "select",
      { class: "ws-select", "aria-label": "Attach note to", dataset: { testid: "note-attach" } },
      h("option", { value: "image" }, "Whole image"),
      h("option", { value: "crosshair" }, "Crosshair position"),
    );
    const noteLabels = ws.labels.filter((l) => l.kind === "note");
    this.label = h(
      "select",
      { class: "ws-select", "aria-label": "Note label", hidden: !noteLabels.length },
      h("option", { value: "" }, "No label"),
      noteLabels.map((l) => h("option", { value: l.name }, l.name)),
    );
    this.list = h("ul", { class: "ws-list", dataset: { testid: "note-list" } });
    const addButton = h(
      "button",
      {
        type: "button",
        class: "ws-btn",
        dataset: { testid: "add-note" },
        onclick: () => this.add(),
      },
      "Add note",
    );
    body.replaceChildren(
      this.input,
      h("div", { class: "ws-row" }, this.attach, this.label, addButton),
      this.list,
    );
  }

  add() {
    const text = this.input.value.trim();
    if (!text) return this.input.focus();
    const position = this.attach.value === "crosshair" ? this.ws.crosshairVoxel() : null;
    this.ws.content.addNote(text, { label: this.label.value || null, position });
    this.input.value = "";
  }

  render() {
    const notes = this.ws.content.content.notes;
    this.list.replaceChildren(
      ...notes.map((n, i) =>
        h(
          "li",
          { class: "ws-item", dataset: { testid: "note-item" } },
          h(
            "span",
            {
              class: "ws-item-text",
              title: n.position ? `At ${coords(n.position)}` : "About the whole image",
              onclick: () => n.position && this.ws.goTo(n.position, "notes", i),
            },
            n.position ? h("span", { class: "ws-pin", "aria-label": "positioned" }, "●") : null,
            n.label ? h("em", {}, `${n.label}: `) : null,
            n.text,
          ),
          deleteButton(`Delete note ${i + 1}`, () => this.ws.content.remove("notes", i)),
        ),
      ),
    );
  }
}

function deleteButton(title, onclick) {
  return h(
    "button",
    {
      type: "button",
      class: "ws-icon-btn",
      title,
      "aria-label": title,
      dataset: { testid: "delete-item" },
      onclick,
    },
    icon("trash", 15),
  );
}

export function renderObjects(ws, body, measurements) {
  const { boxes, points } = ws.content.content;
  const color = (name) => ws.labelByName(name)?.color || "#999";
  const singular = { boxes: "box", points: "point" };
  const row = (kind, i, label, text, target) =>
    h(
      "li",
      {
        class: `ws-item${ws.selection?.kind === kind && ws.selection?.index === i ? " ws-active" : ""}`,
        dataset: { testid: `${singular[kind]}-item` },
      },
      h("span", { class: "ws-swatch", style: { background: color(label) } }),
      h(
        "span",
        { class: "ws-item-text", title: "Go there", onclick: () => ws.goTo(target, kind, i) },
        h("strong", {}, label),
        " ",
        text,
      ),
      deleteButton(`Delete ${singular[kind]} ${i + 1}`, () => ws.content.remove(kind, i)),
    );
  const items = [
    ...boxes.map((b, i) => {
      const size = b.end.map((e, k) => e - b.start[k]);
      const centre = b.start.map((s, k) => (s + b.end[k]) / 2);
      return row(
        "boxes",
        i,
        b.label,
        `box ${size.map((s) => fmt(s, 1)).join("×")} vox at ${coords(centre)}`,
        centre,
      );
    }),
    ...points.map((p, i) => row("points", i, p.label, `point ${coords(p.position)}`, p.position)),
  ];
  const ruler = measurements.map((m, i) =>
    h(
      "li",
      { class: "ws-item", dataset: { testid: "measurement-item" } },
      h(
        "span",
        { class: "ws-item-text" },
        `Ruler ${i + 1}: `,
        h("strong", {}, `${fmt(m.distance, 2)} mm`),
      ),
    ),
  );
  const clear = measurements.length
    ? h(
        "button",
        { type: "button", class: "ws-btn ws-small", onclick: () => ws.clearMeasurements() },
        "Clear measurements",
      )
    : null;
  body.replaceChildren(
    items.length || ruler.length
      ? h("ul", { class: "ws-list" }, ...items, ...ruler)
      : h("p", { class: "ws-muted" }, "Draw boxes (R), place points (P) or measure (M)."),
    clear || "",
    h("p", { class: "ws-hint" }, "Coordinates are voxel (plane, row, column)."),
  );
}
