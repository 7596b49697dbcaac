// The AI bar over the viewer: what an engine is doing (with a live timer), how long the
// last proposal took, how many proposals wait for a decision, and Accept / Reject / Stop.
import { h, button } from "./ui.js";

const TICK_MS = 100;
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

export class AiStatus {
  /**
   * @param {object} actions  accept(), reject(), stop()
   */
  constructor(actions) {
    this.text = h("span", {
      class: "ws-ai-text",
      role: "status",
      "aria-live": "polite",
      dataset: { testid: "ai-status" },
    });
    this.count = h("span", { class: "ws-ai-count", dataset: { testid: "proposal-count" } }, "");
    this.accept = button("Accept", {
      testid: "accept-proposal",
      title: "Accept the proposals into the annotation (Enter)",
      cls: "ws-btn ws-small ws-primary",
      onclick: () => actions.accept(),
    });
    this.reject = button("Reject", {
      testid: "reject-proposal",
      title: "Reject the proposals (Esc)",
      cls: "ws-btn ws-small",
      onclick: () => actions.reject(),
    });
    this.stop = button("Stop", {
      testid: "stop-propagation",
      title: "Stop propagating (Esc)",
      cls: "ws-btn ws-small ws-danger",
      onclick: () => actions.stop(),
      hidden: true,
    });
    this.el = h(
      "div",
      { class: "ws-ai-bar", hidden: true, dataset: { testid: "ai-bar" } },
      this.text,
      this.count,
      this.stop,
      this.accept,
      this.reject,
    );
    this.timer = null;
    this.pending = 0;
    this.busy = false;
    this.propagating = false;
  }

  /** Show a live timer: "AI running… 0.8 s" (or the given verb); returns a stop function. */
  running(verb = "AI running…") {
    clearInterval(this.timer);
    const start = performance.now();
    const tick = () => (this.text.textContent = `${verb} ${seconds(performance.now() - start)}`);
    tick();
    const timer = setInterval(tick, TICK_MS);
    this.timer = timer;
    this.busy = true;
    this.#render();
    return () => {
      clearInterval(timer);
      if (this.timer === timer) {
        this.timer = null;
        this.busy = false;
        this.#render();
      }
      return (performance.now() - start) / 1000;
    };
  }

  /** After a proposal: round trip measured here, engine time from the server. */
  done(clientSeconds, engineSeconds) {
    const engine = Number.isFinite(engineSeconds) ? ` (engine ${engineSeconds.toFixed(2)} s)` : "";
    this.say(`proposal in ${clientSeconds.toFixed(2)} s${engine}`);
  }

  /** Any one-line message (progress, result, error). */
  say(text) {
    clearInterval(this.timer);
    this.timer = null;
    this.text.textContent = text;
    this.#render();
  }

  /** Number of pending proposals; `running` shows the Stop button (propagation). */
  setPending(n, { propagating = false } = {}) {
    this.pending = n;
    this.propagating = propagating;
    this.stop.hidden = !propagating;
    this.#render();
  }

  #render() {
    const n = this.pending;
    this.count.textContent = n ? `${n} pending` : "";
    this.count.hidden = !n;
    this.accept.disabled = !n || this.busy || this.propagating;
    this.reject.disabled = !n;
    this.accept.hidden = !n;
    this.reject.hidden = !n;
    this.el.hidden = !(this.text.textContent || n || !this.stop.hidden);
  }
}
