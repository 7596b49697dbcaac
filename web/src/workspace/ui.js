// Small DOM helpers of the workspace: element builder, toasts and modal choices.
import { toast as appToast } from "../components/toast.js";

/** h("button", {class: "x", onclick, dataset: {testid: "save"}}, "Save") */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function")
      el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Button with a visible label, an accessible name and a test id. */
export function button(label, { testid, title, onclick, cls = "ws-btn", ...rest } = {}) {
  return h(
    "button",
    {
      type: "button",
      class: cls,
      title,
      "aria-label": title || undefined,
      onclick,
      ...rest,
      dataset: testid ? { testid } : undefined,
    },
    label,
  );
}

/** A transient message (the app's toasts); kind: info | success | warn | error. */
export function toast(message, kind = "info", ms = undefined) {
  return appToast(message, { kind, timeout: ms });
}

/**
 * A modal question. choices: [{value, label, primary?, danger?}]; resolves with the
 * chosen value (or null when dismissed with Escape).
 */
export function choose({ title, message, choices, testid = "dialog" }) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "ws-dialog", dataset: { testid } });
    const done = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.append(
      h("h2", {}, title),
      ...(Array.isArray(message) ? message : [message]).map((m) => h("p", {}, m)),
      h(
        "div",
        { class: "ws-dialog-actions" },
        choices.map((c) =>
          button(c.label, {
            cls: `ws-btn${c.primary ? " ws-primary" : ""}${c.danger ? " ws-danger" : ""}`,
            testid: `${testid}-${c.value}`,
            onclick: () => done(c.value),
          }),
        ),
      ),
    );
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** True when a keyboard event comes from a text field (shortcuts must not fire). */
export function isTyping(event) {
  const t = event.target;
  if (!(t instanceof HTMLElement)) return false;
  return (
    t.isContentEditable ||
    (["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) &&
      t.type !== "range" &&
      t.type !== "checkbox")
  );
}
