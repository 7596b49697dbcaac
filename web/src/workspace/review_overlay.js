// The review's marks over the viewer, on a canvas of their own above the annotation
// overlay (so the overlay-opacity slider does not fade them): review comments pinned to
// the image as numbered markers (on the slice that holds them), the pin being placed, and
// where the readers disagree (hatched and outlined, in a colour no label uses).
import { viewAxis, VIEW_OF_SLICE_TYPE } from "./geometry.js";
import { CanvasLayer } from "./canvas_layer.js";
import { ProposalOverlay } from "./proposal_overlay.js";
import { h } from "./ui.js";

export const DISAGREEMENT_COLOR = "#ff2bd6";
const PIN_OPEN = "#ffb000";
const PIN_RESOLVED = "#8b96a3";
const PIN_NEW = "#5ee0ff";

export class ReviewOverlay extends CanvasLayer {
  /**
   * @param {object} ws  r (stage, overlay), viewer
   * @param {() => Array<{n, position, resolved, pending?}>} pins  what to draw
   */
  constructor(ws, pins) {
    const canvas = h("canvas", {
      class: "ws-overlay ws-review-overlay",
      "aria-hidden": "true",
      dataset: { testid: "review-overlay" },
    });
    ws.r.stage.insertBefore(canvas, ws.r.overlay.nextSibling);
    super(canvas, ws);
    this.pins = pins;
    this.disagreement = null; // {id, label, origin, shape, data}: a mask drawn like a proposal
    this.showDisagreement = true;
    this.regions = new ProposalOverlay({
      get viewer() {
        return ws.viewer;
      },
      labelByName: () => ({ color: DISAGREEMENT_COLOR }),
      isHidden: () => false,
    });
  }

  /** The voxels (planes x rows x columns, 1 = readers differ) to show, or null. */
  setDisagreement(mask) {
    this.disagreement = mask
      ? {
          id: `disagreement-${Date.now()}`,
          label: "disagreement",
          origin: [0, 0, 0],
          shape: mask.shape,
          data: mask.data,
        }
      : null;
    this.regions.prune(this.disagreement ? [this.disagreement] : []);
    this.schedule();
  }

  paint(ctx, dpr) {
    const { viewer } = this.ws;
    const pins = this.pins();
    const here = viewer.fracToVoxel(viewer.nv.scene.crosshairPos).vox;
    for (const tile of viewer.tiles()) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(...tile.rect);
      ctx.clip();
      if (this.disagreement && this.showDisagreement)
        this.regions.draw(ctx, tile, dpr, [this.disagreement], null);
      const axis = viewAxis(viewer.affine, VIEW_OF_SLICE_TYPE[tile.axCorSag]);
      for (const pin of pins) {
        if (Math.round(pin.position[axis]) === Math.round(here[axis])) this.#pin(tile, pin, dpr);
      }
      ctx.restore();
    }
  }

  /** A marker at the exact voxel and a numbered badge beside it. */
  #pin(tile, pin, dpr) {
    const p = tile.project(this.ws.viewer.voxelToFrac(pin.position));
    const ctx = this.ctx;
    const color = pin.pending ? PIN_NEW : pin.resolved ? PIN_RESOLVED : PIN_OPEN;
    const r = 10 * dpr;
    const [bx, by] = [p.x + 14 * dpr, p.y - 14 * dpr];
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
    ctx.beginPath();
    ctx.moveTo(p.x, p.y);
    ctx.lineTo(bx, by);
    ctx.stroke();
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * dpr;
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(p.x, p.y, 4 * dpr, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(bx, by, r, 0, 2 * Math.PI);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
    ctx.lineWidth = 1.5 * dpr;
    ctx.stroke();
    ctx.fillStyle = "#111";
    ctx.font = `bold ${11 * dpr}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(pin.pending ? "+" : String(pin.n), bx, by + 0.5 * dpr);
    ctx.textAlign = "left";
  }
}
