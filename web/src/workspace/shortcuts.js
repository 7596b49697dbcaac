// Keyboard shortcuts of the workspace and the help overlay that lists them (one table
// drives both, so the help is never out of date).
import { h, isTyping } from "./ui.js";
import { keyLabel, TOOLS } from "./tools.js";

const VIEW_KEYS = { a: "axial", c: "coronal", s: "sagittal", x: "multiplanar" };

// [keys shown in the help, description, matcher(event, ws) → action(ws)]
function table() {
  const rows = TOOLS.map((t) => [
    keyLabel(t),
    t.name,
    (e) =>
      plain(e) &&
      e.shiftKey === Boolean(t.shift) &&
      e.key.toLowerCase() === t.key &&
      ((ws) => ws.tools.select(t.id)),
  ]);
  rows.push(
    [
      "Shift+P",
      "Propagate the mask to the next slices with the AI (again: stop)",
      (e) =>
        plain(e) &&
        e.shiftKey &&
        e.key.toLowerCase() === "p" &&
        ((ws) => ws.ai.propagation.toggle()),
    ],
    [
      "Enter",
      "Accept the AI / tool proposals",
      (e, ws) =>
        plain(e) &&
        !e.shiftKey &&
        e.key === "Enter" &&
        ws.ai.proposals.count > 0 &&
        ((w) => w.ai.enter()),
    ],
    [
      "Esc",
      "Cancel pinning a comment / reject proposals / stop propagating / Navigate tool / close",
      (e) =>
        e.key === "Escape" &&
        ((ws) => ws.review?.composer.arm(false) || ws.ai.escape() || ws.tools.select("navigate")),
    ],
    [
      "1 … 9",
      "Choose the n-th label for the current tool",
      (e) => plain(e) && /^[1-9]$/.test(e.key) && ((ws) => ws.labelsPanel.selectNth(Number(e.key))),
    ],
    [
      "[  ]",
      "Smaller / larger brush",
      (e) =>
        plain(e) &&
        (e.key === "[" || e.key === "]") &&
        ((ws) => ws.tools.setBrushSize(ws.tools.brushSize + (e.key === "]" ? 1 : -1))),
    ],
    [
      "↑ ↓  PgUp PgDn  wheel",
      "Next / previous slice",
      (e) =>
        !e.ctrlKey &&
        !e.altKey &&
        ["ArrowUp", "ArrowDown", "PageUp", "PageDown"].includes(e.key) &&
        ((ws) =>
          ws.stepSlice(
            e.key === "ArrowUp" || e.key === "PageUp" ? 1 : -1,
            e.key.startsWith("Page") ? 5 : 1,
          )),
    ],
    [
      "Home  End",
      "First / last slice",
      (e) =>
        plain(e) &&
        (e.key === "Home" || e.key === "End") &&
        ((ws) => ws.goToSlice(e.key === "Home" ? 0 : Infinity)),
    ],
    [
      "A C S X",
      "Axial, coronal, sagittal, multiplanar view",
      (e) =>
        plain(e) &&
        !e.shiftKey &&
        VIEW_KEYS[e.key.toLowerCase()] &&
        ((ws) => ws.setView(VIEW_KEYS[e.key.toLowerCase()])),
    ],
    [
      "+  −  Ctrl+wheel",
      "Zoom in / out",
      (e) =>
        !e.ctrlKey &&
        (e.key === "+" || e.key === "=" || e.key === "-") &&
        ((ws) => ws.zoomBy(e.key === "-" ? 1 / 1.25 : 1.25)),
    ],
    ["0", "Reset zoom and pan", (e) => plain(e) && e.key === "0" && ((ws) => ws.resetView())],
    ["Right-drag", "Window / level (any tool)", () => false],
    ["Middle-drag", "Pan (any tool)", () => false],
    [
      "Ctrl+Z",
      "Undo",
      (e) => ctrl(e) && !e.shiftKey && e.key.toLowerCase() === "z" && ((ws) => ws.undo()),
    ],
    [
      "Ctrl+Shift+Z  Ctrl+Y",
      "Redo",
      (e) =>
        ctrl(e) &&
        ((e.shiftKey && e.key.toLowerCase() === "z") || e.key.toLowerCase() === "y") &&
        ((ws) => ws.redo()),
    ],
    [
      "Ctrl+S",
      "Save a revision",
      (e) => ctrl(e) && e.key.toLowerCase() === "s" && ((ws) => ws.save()),
    ],
    [
      "Alt+N",
      "Next image from your queue (returned work first)",
      (e) => e.altKey && !e.ctrlKey && e.code === "KeyN" && ((ws) => ws.nextImage()),
    ],
    ["Ctrl+Enter", "Add the note being written", () => false],
    ["?", "Show this help", (e) => e.key === "?" && ((ws) => ws.toggleHelp())],
  );
  return rows;
}

const plain = (e) => !e.ctrlKey && !e.metaKey && !e.altKey;
const ctrl = (e) => (e.ctrlKey || e.metaKey) && !e.altKey;

/** Listen for shortcuts (capture phase, so NiiVue's own keys never fire for ours);
 * returns a function that removes the listener. */
export function installShortcuts(ws) {
  const rows = table();
  const onKey = (e) => {
    if (document.querySelector("dialog[open]:not(.ws-help)")) return;
    const help = document.querySelector("dialog.ws-help[open]");
    if (help) {
      if (e.key === "?" || e.key === "Escape") {
        e.preventDefault();
        help.close();
      }
      return;
    }
    const typing = isTyping(e);
    if (typing && !(ctrl(e) && e.key.toLowerCase() === "s")) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    for (const [, , match] of rows) {
      const action = match(e, ws);
      if (action) {
        e.preventDefault();
        e.stopPropagation();
        action(ws);
        return;
      }
    }
  };
  window.addEventListener("keydown", onKey, true);
  return () => window.removeEventListener("keydown", onKey, true);
}

/** The help overlay (a non-modal dialog). */
export function helpDialog() {
  const rows = table();
  const dialog = h(
    "dialog",
    {
      class: "ws-dialog ws-help",
      dataset: { testid: "help-overlay" },
      "aria-label": "Keyboard shortcuts",
    },
    h("h2", {}, "Keyboard shortcuts"),
    h(
      "div",
      { class: "ws-help-columns" },
      [rows.slice(0, TOOLS.length + 3), rows.slice(TOOLS.length + 3)].map((part) =>
        h(
          "table",
          { class: "ws-table" },
          h(
            "tbody",
            {},
            part.map(([keys, desc]) =>
              h("tr", {}, h("td", {}, h("kbd", {}, keys)), h("td", {}, desc)),
            ),
          ),
        ),
      ),
    ),
    h(
      "div",
      { class: "ws-dialog-actions" },
      h(
        "button",
        { type: "button", class: "ws-btn ws-primary", onclick: () => dialog.close() },
        "Close",
      ),
    ),
  );
  dialog.addEventListener("click", (e) => e.target === dialog && dialog.close());
  return dialog;
}
