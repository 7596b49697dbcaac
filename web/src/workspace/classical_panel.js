// The "Tools" panel: classical segmentation tools from the server's engine catalogue
// (threshold, region growing, watershed, random walker, ...). Choosing one sends the
// prompt tools' input (clicks, scribbles, a box) to it instead of the AI; a form made
// from its parameters, a Run button, and hints from its last result (Otsu's threshold).
import { h, button } from "./ui.js";
import { AI_BOX_ENGINES, AI_ENGINE, PROJECT_MODEL } from "./ai_tools.js";
import { fmt } from "./geometry.js";

const PROMPT_TOOLS = [
  // [prompt kinds, tool id, button text, shortcut]
  [["positive", "negative"], "ai-click", "Clicks", "Shift+C"],
  [["foreground", "background"], "scribble", "Scribble", "Shift+S"],
  [["box"], "ai-box", "Box", "Shift+A"],
];

export class ClassicalPanel {
  /**
   * @param {object} ws  ai (AiTools), tools, image
   * @param {HTMLElement} body  the panel section's body
   */
  constructor(ws, body) {
    this.ws = ws;
    this.body = body;
    this.ai = ws.ai;
    this.select = h("select", {
      class: "ws-select",
      "aria-label": "Segmentation tool",
      dataset: { testid: "classical-engine" },
      onchange: () => this.ai.setTarget(this.select.value || AI_ENGINE),
    });
    this.details = h("div", { class: "ws-tool-details" });
    this.hint = h("div", { class: "ws-tool-hint", dataset: { testid: "tool-result" } });
    body.replaceChildren(
      h(
        "p",
        { class: "ws-hint" },
        "Classical tools propose a mask like the AI does: accept or reject it.",
      ),
      this.select,
      this.details,
      this.hint,
    );
    this.ai.addEventListener("engines", () => this.render());
    this.ai.addEventListener("target", () => this.render());
    this.ai.addEventListener("prompts", () => this.#promptSummary());
    this.ai.addEventListener("result", (e) => this.#result(e.detail.proposal));
  }

  #classical() {
    return this.ai.engines.filter((e) => !AI_BOX_ENGINES.includes(e.name));
  }

  /** The project-model AI box, if this project has an active segmentation model. */
  #projectModel() {
    const e = this.ai.engine(PROJECT_MODEL);
    return e && e.available ? e : null;
  }

  render() {
    const current = this.ai.target === AI_ENGINE ? "" : this.ai.target;
    const projectModel = this.#projectModel();
    this.select.replaceChildren(
      h("option", { value: "", selected: !current }, "AI model (box and clicks)"),
      ...(projectModel
        ? [
            h(
              "option",
              {
                value: PROJECT_MODEL,
                selected: current === PROJECT_MODEL,
                title: projectModel.description,
                dataset: { testid: "ai-engine-project-model" },
              },
              `${projectModel.title} (box and clicks)`,
            ),
          ]
        : []),
      ...this.#classical().map((e) =>
        h(
          "option",
          { value: e.name, selected: e.name === current, disabled: !e.available },
          e.available ? e.title : `${e.title} (not installed)`,
        ),
      ),
    );
    if (this.hintFor !== this.ai.target) this.hint.replaceChildren();
    this.hintFor = this.ai.target;
    const engine = current ? this.ai.engine(current) : null;
    if (engine && this.ai.auto) {
      // another AI box engine: prompts run at once, as with the default AI
      this.details.replaceChildren(
        h(
          "p",
          { class: "ws-tool-desc", dataset: { testid: "ai-engine-desc" } },
          engine.description,
        ),
        h(
          "p",
          { class: "ws-muted" },
          "Prompts go to this model: drag a box (Shift+A), click inside / outside (Shift+C).",
        ),
      );
      return;
    }
    if (!engine) {
      this.details.replaceChildren(
        h(
          "p",
          { class: "ws-muted" },
          "Prompts go to the AI: drag a box (Shift+A), click inside / outside (Shift+C).",
        ),
      );
      return;
    }
    this.details.replaceChildren(
      h("p", { class: "ws-tool-desc" }, engine.description),
      this.#prompts(engine),
      this.#form(engine),
      this.#options(engine),
      h(
        "div",
        { class: "ws-row" },
        button("Run", {
          testid: "run-tool",
          title: `Run ${engine.title} on this slice`,
          cls: "ws-btn ws-primary",
          onclick: () => this.ai.run(),
        }),
        button("Clear prompts", {
          testid: "clear-prompts",
          title: "Forget the clicks, scribbles and box",
          cls: "ws-btn",
          onclick: () => {
            this.ai.clearPrompts();
            this.#promptSummary();
          },
        }),
      ),
      (this.promptText = h("p", { class: "ws-hint", dataset: { testid: "prompt-summary" } })),
    );
    this.#promptSummary();
  }

  /** Buttons choosing the input tool for the prompts the engine takes. */
  #prompts(engine) {
    const takes = new Set(engine.prompts);
    const needs = engine.required?.length
      ? `needs ${engine.required.join(" or ")}`
      : "no prompt needed";
    const buttons = PROMPT_TOOLS.filter(([kinds]) => kinds.some((k) => takes.has(k))).map(
      ([, tool, text, key]) =>
        button(text, {
          testid: `prompt-${tool}`,
          title: `Give ${text.toLowerCase()} (${key}); Shift or right button: outside`,
          cls: `ws-btn ws-small${this.ws.tools.tool === tool ? " ws-on" : ""}`,
          onclick: () => this.ws.tools.select(tool),
        }),
    );
    return h(
      "div",
      { class: "ws-row" },
      h("span", { class: "ws-muted" }, `Prompts (${needs}):`),
      ...buttons,
    );
  }

  /** One input per parameter, values kept per engine. */
  #form(engine) {
    const values = this.ai.params.get(engine.name) || {};
    this.ai.params.set(engine.name, values);
    const rows = engine.params.map((p) => {
      const id = `param-${p.name}`;
      let input;
      if (p.kind === "bool") {
        input = h("input", { type: "checkbox", checked: values[p.name] ?? Boolean(p.default) });
        input.addEventListener("change", () => (values[p.name] = input.checked));
      } else if (p.kind === "choice") {
        input = h(
          "select",
          { class: "ws-select" },
          p.choices.map((c) =>
            h("option", { value: c, selected: c === (values[p.name] ?? p.default) }, c),
          ),
        );
        input.addEventListener("change", () => (values[p.name] = input.value));
      } else {
        input = h("input", {
          type: "number",
          class: "ws-num",
          step: p.kind === "int" ? "1" : "any",
          min: p.minimum ?? undefined,
          max: p.maximum ?? undefined,
          placeholder: p.default === null ? "auto" : String(p.default),
          value: values[p.name] ?? (p.default === null ? "" : String(p.default)),
        });
        input.addEventListener("input", () => {
          if (input.value === "") delete values[p.name];
          else values[p.name] = Number(input.value);
        });
      }
      input.dataset.testid = id;
      input.setAttribute("aria-label", p.name);
      input.title = p.help || p.name;
      return h("label", { class: "ws-param", title: p.help || "" }, h("span", {}, p.name), input);
    });
    this.inputs = Object.fromEntries(
      rows.map((row) => [row.lastChild.getAttribute("aria-label"), row.lastChild]),
    );
    return h("div", { class: "ws-params" }, rows);
  }

  /** Scribble radius and whole-volume runs, where the engine takes them. */
  #options(engine) {
    const out = h("div", { class: "ws-row" });
    if (engine.prompts.includes("foreground") || engine.prompts.includes("background")) {
      const radius = h("input", {
        type: "number",
        class: "ws-num",
        min: 0,
        max: 32,
        step: 1,
        value: this.ai.options.scribbleRadius,
        "aria-label": "Scribble radius (voxels)",
        dataset: { testid: "scribble-radius" },
        oninput: () => (this.ai.options.scribbleRadius = Number(radius.value) || 0),
      });
      out.append(h("label", { class: "ws-inline" }, "Scribble radius", radius, "vox"));
    }
    if (engine.volumetric && this.ws.image.shape[0] > 1) {
      const whole = h("input", {
        type: "checkbox",
        checked: this.ai.options.wholeVolume,
        dataset: { testid: "whole-volume" },
        onchange: () => (this.ai.options.wholeVolume = whole.checked),
      });
      const title = "Run on every slice at once";
      out.append(h("label", { class: "ws-inline", title }, whole, "Whole volume"));
    }
    return out;
  }

  #promptSummary() {
    if (!this.promptText) return;
    const p = this.ai.prompts;
    const parts = [];
    if (p?.box) parts.push("a box");
    if (p?.positive.length) parts.push(`${p.positive.length} inside`);
    if (p?.negative.length) parts.push(`${p.negative.length} outside`);
    for (const kind of ["foreground", "background"]) {
      const n = p?.strokes.filter((s) => s.kind === kind).length || 0;
      if (n) parts.push(`${n} ${kind} stroke${n > 1 ? "s" : ""}`);
    }
    this.promptText.textContent = parts.length
      ? `Prompts: ${parts.join(", ")}.`
      : "No prompts yet.";
  }

  /** Hints from a result of the selected tool: Otsu's threshold, warnings. */
  #result(proposal) {
    this.#promptSummary();
    if (proposal.engine !== this.ai.target) return;
    const info = proposal.info || {};
    const parts = [];
    if (typeof info.otsu === "number") {
      const value = fmt(info.otsu, 1);
      parts.push(
        h("span", { dataset: { testid: "otsu-suggestion" } }, `Otsu suggests ${value}`),
        button("Use it", {
          testid: "use-otsu",
          title: "Set the lower bound to Otsu's threshold",
          cls: "ws-btn ws-small",
          onclick: () => this.#setParam("low", Number(value)),
        }),
      );
    }
    if (info.rule) parts.push(h("span", { class: "ws-muted" }, ` kept ${info.rule}`));
    if (info.warning) parts.push(h("div", { class: "ws-error" }, info.warning));
    this.hint.replaceChildren(...parts);
  }

  #setParam(name, value) {
    const values = this.ai.params.get(this.ai.target) || {};
    values[name] = value;
    this.ai.params.set(this.ai.target, values);
    const input = this.inputs?.[name];
    if (input) input.value = String(value);
  }
}
