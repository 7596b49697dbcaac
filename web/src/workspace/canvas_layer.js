// A 2D canvas drawn over the viewer's WebGL canvas: kept at the viewer's size, repainted at
// most once per animation frame. Subclasses implement paint(ctx, dpr).
export class CanvasLayer {
  /**
   * @param {HTMLCanvasElement} canvas  absolutely positioned over the viewer's canvas
   * @param {object} ws  the workspace (its viewer is read at every paint)
   */
  constructor(canvas, ws) {
    this.canvas = canvas;
    this.ws = ws;
    this.ctx = canvas.getContext("2d");
    this.pending = false;
  }

  /** Repaint at the next animation frame (cheap to call often). */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { viewer } = this.ws;
    const gl = viewer.canvas;
    if (this.canvas.width !== gl.width || this.canvas.height !== gl.height) {
      this.canvas.width = gl.width;
      this.canvas.height = gl.height;
    }
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!viewer.nv?.volumes?.length) return;
    this.paint(this.ctx, viewer.nv.uiData.dpr || 1);
  }

  /** Draw this layer's marks (the canvas is cleared and sized). */
  paint(_ctx, _dpr) {}
}
