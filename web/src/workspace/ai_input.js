// Mouse input of the AI click and scribble tools (NiiVue's buttons do nothing for them):
// a click is positive with the left button, negative with Shift or the right button; a
// scribble is a foreground stroke (left) or a background stroke (Shift / right).

const CLICK_PX = 5; // a press that moves less than this is a click

/**
 * Listen on the viewer's canvas; returns a function that removes the listeners.
 * @param {object} ws  r.canvas, viewer.pick(x, y), tools.tool, ai (onClick, beginStroke,
 *                     extendStroke, endStroke)
 */
export function installAiInput(ws) {
  const canvas = ws.r.canvas;
  const active = () => ["ai-click", "scribble"].includes(ws.tools.tool);
  let press = null;

  const down = (e) => {
    if (!active() || (e.button !== 0 && e.button !== 2)) return;
    const hit = ws.viewer.pick(e.clientX, e.clientY);
    if (!hit) return;
    const negative = e.button === 2 || e.shiftKey;
    press = { x: e.clientX, y: e.clientY, hit, negative, tool: ws.tools.tool, stroke: null };
    if (press.tool === "scribble")
      press.stroke = ws.ai.beginStroke(hit, negative ? "background" : "foreground");
  };
  const move = (e) => {
    if (!press?.stroke) return;
    const hit = ws.viewer.pick(e.clientX, e.clientY);
    if (hit && hit.view === press.hit.view) ws.ai.extendStroke(press.stroke, hit.vox);
  };
  const up = (e) => {
    if (!press) return;
    const p = press;
    press = null;
    if (p.tool === "scribble") ws.ai.endStroke(p.stroke);
    else if (Math.hypot(e.clientX - p.x, e.clientY - p.y) < CLICK_PX)
      ws.ai.onClick(p.hit, p.negative);
  };
  const menu = (e) => active() && e.preventDefault();

  canvas.addEventListener("pointerdown", down, true);
  window.addEventListener("pointermove", move, true);
  window.addEventListener("pointerup", up, true);
  canvas.addEventListener("contextmenu", menu);
  return () => {
    canvas.removeEventListener("pointerdown", down, true);
    window.removeEventListener("pointermove", move, true);
    window.removeEventListener("pointerup", up, true);
    canvas.removeEventListener("contextmenu", menu);
  };
}
