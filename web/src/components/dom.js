// DOM building blocks shared by the pages and the workspace.
//
//   el(tag, attrs?, ...children) → HTMLElement
//     attrs: class (string or array; falsy entries dropped), style (object or string),
//     dataset (object), testid (→ data-testid), on<Event> functions (onclick, oninput…
//     → addEventListener), properties value/checked/selected/disabled/hidden/multiple
//     set as properties; other keys become attributes (true → "", false/null → omitted).
//     children: nodes, strings, numbers, arrays of those; null/undefined/false skipped.
//   spinner(text?)            a "Loading…" line with a spinner (class .loading)
//   emptyState(text, action?) a centred hint for empty lists (class .empty)
//   errorBox(err|text, retry?) an inline error (class .alert.alert-error) with optional retry

const PROPS = new Set(["value", "checked", "selected", "disabled", "hidden", "multiple"]);

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs && (attrs instanceof Node || typeof attrs !== "object" || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class" || key === "className") {
      const names = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
      if (names) node.className = names;
    } else if (key === "style") {
      if (typeof value === "string") node.style.cssText = value;
      else Object.assign(node.style, value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key === "testid") {
      node.dataset.testid = value;
    } else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (PROPS.has(key)) {
      node[key] = value;
    } else if (value === true) {
      node.setAttribute(key, "");
    } else if (value !== false) {
      node.setAttribute(key, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export function spinner(text = "Loading…") {
  return el("div", { class: "loading", role: "status" }, el("span", { class: "spin" }), text);
}

export function emptyState(text, action) {
  return el("div", { class: "empty" }, el("p", {}, text), action || null);
}

export function errorBox(err, retry) {
  const message = typeof err === "string" ? err : err.message || String(err);
  return el(
    "div",
    { class: "alert alert-error", role: "alert" },
    el("span", {}, message),
    retry ? el("button", { class: "btn btn-small", type: "button", onclick: retry }, "Retry") : null,
  );
}
