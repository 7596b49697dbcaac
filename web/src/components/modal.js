// Modal dialogs on the native <dialog> element (focus trap, Escape closes).
//
//   openModal({title, body, actions, testid}) → {dialog, close(value)} and `.result`, a
//     Promise of the value it closed with (undefined on Escape/×).
//     actions: [{label, kind: "primary"|"danger"|"", value, onClick(close) }]
//   confirmDialog(message, {title, confirmLabel, danger}) → Promise<boolean>
//   formDialog({title, submitLabel, fields: Node[], submit: async (form) => result, testid})
//     → Promise<result | undefined>. The dialog stays open and shows the error inline
//     when `submit` throws (e.g. an ApiError with the server's message).
import { el } from "./dom.js";

export function openModal({ title, body, actions = [], testid } = {}) {
  let resolve;
  const result = new Promise((r) => (resolve = r));
  const dialog = el("dialog", { class: "modal", testid, "aria-label": title });
  const close = (value) => {
    if (dialog.open) dialog.close();
    dialog.remove();
    resolve(value);
  };
  dialog.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    close(undefined);
  });
  const buttons = actions.map((a) =>
    el(
      "button",
      {
        type: "button",
        class: ["btn", a.kind && `btn-${a.kind}`],
        testid: a.testid,
        onclick: () => (a.onClick ? a.onClick(close) : close(a.value)),
      },
      a.label,
    ),
  );
  dialog.append(
    el(
      "header",
      { class: "modal-header" },
      el("h2", {}, title || ""),
      el("button", { type: "button", class: "btn-icon", "aria-label": "Close", onclick: () => close(undefined) }, "×"),
    ),
    el("div", { class: "modal-body" }, body || null),
  );
  if (buttons.length) dialog.append(el("footer", { class: "modal-actions" }, buttons));
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close, result };
}

export function confirmDialog(message, { title = "Please confirm", confirmLabel = "OK", danger = false } = {}) {
  return openModal({
    title,
    body: el("p", {}, message),
    testid: "confirm-dialog",
    actions: [
      { label: "Cancel", value: false },
      { label: confirmLabel, kind: danger ? "danger" : "primary", value: true, testid: "confirm-ok" },
    ],
  }).result.then(Boolean);
}

export function formDialog({ title, submitLabel = "Save", fields = [], submit, testid }) {
  const error = el("div", { class: "alert alert-error", role: "alert", hidden: true });
  const submitButton = el("button", { type: "submit", class: "btn btn-primary", testid: "dialog-submit" }, submitLabel);
  const form = el("form", { class: "form stack", novalidate: true }, error, fields);
  let modal;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const invalid = form.querySelector(":invalid");
    if (invalid) {
      const caption = invalid.closest(".field")?.querySelector(".field-label")?.textContent;
      error.textContent = caption ? `${caption}: ${invalid.validationMessage}` : invalid.validationMessage;
      error.hidden = false;
      invalid.focus();
      return;
    }
    submitButton.disabled = true;
    try {
      const value = await submit(form);
      modal.close(value);
    } catch (err) {
      error.textContent = err && err.message ? err.message : String(err);
      error.hidden = false;
    } finally {
      submitButton.disabled = false;
    }
  });
  const cancel = el("button", { type: "button", class: "btn", onclick: () => modal.close(undefined) }, "Cancel");
  form.append(el("footer", { class: "modal-actions" }, cancel, submitButton));
  modal = openModal({ title, body: form, testid });
  const first = form.querySelector("input, select, textarea");
  if (first) first.focus();
  return modal.result;
}
