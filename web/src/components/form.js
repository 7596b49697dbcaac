// Form controls with labels (class .field); inputs get class .input.
//
//   field(label, control, {hint}) → <label class="field"> wrapping the caption and control
//   input(attrs)                  → <input class="input"> (attrs as for el())
//   textarea(attrs)               → <textarea class="input">
//   select(options, attrs)        → <select class="input">; options: [value | {value, label}]
//   checkbox(label, attrs)        → <label class="check"><input type=checkbox> label</label>
import { el } from "./dom.js";

export function field(label, control, { hint } = {}) {
  return el(
    "label",
    { class: "field" },
    el("span", { class: "field-label" }, label),
    control,
    hint ? el("span", { class: "field-hint" }, hint) : null,
  );
}

export function input(attrs = {}) {
  return el("input", { type: "text", ...attrs, class: ["input", attrs.class] });
}

export function textarea(attrs = {}) {
  return el("textarea", { rows: 3, ...attrs, class: ["input", attrs.class] });
}

export function select(options, attrs = {}) {
  const { value, ...rest } = attrs;
  const node = el(
    "select",
    { ...rest, class: ["input", rest.class] },
    options.map((o) => {
      const opt = typeof o === "object" ? o : { value: o, label: o };
      return el("option", { value: opt.value }, opt.label ?? opt.value);
    }),
  );
  if (value !== undefined && value !== null) node.value = String(value);
  return node;
}

export function checkbox(label, attrs = {}) {
  return el("label", { class: "check" }, el("input", { type: "checkbox", ...attrs }), el("span", {}, label));
}
