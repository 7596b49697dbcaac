// Toast notifications (bottom right, stacked, announced to screen readers).
//
//   toast(message, {kind: "info"|"success"|"error"|"warn", timeout: ms (0 = stay)}) → close()
//   showError(err, prefix?) toasts an ApiError/Error's message (the server's `message`).
import { el } from "./dom.js";

let container = null;

function host() {
  if (!container || !container.isConnected) {
    container = el("div", { class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(container);
  }
  return container;
}

export function toast(message, { kind = "info", timeout } = {}) {
  const ms = timeout ?? (kind === "error" ? 10000 : 4000);
  const close = () => node.remove();
  const node = el(
    "div",
    { class: ["toast", `toast-${kind}`], testid: `toast-${kind}` },
    el("span", { class: "toast-text" }, message),
    el("button", { class: "toast-close", type: "button", "aria-label": "Dismiss", onclick: close }, "×"),
  );
  host().append(node);
  if (ms > 0) setTimeout(close, ms);
  return close;
}

export function showError(err, prefix) {
  const message = err && err.message ? err.message : String(err);
  if (err && !(err.status >= 400 && err.status < 500)) console.warn(err);
  toast(prefix ? `${prefix}: ${message}` : message, { kind: "error" });
  return message;
}
