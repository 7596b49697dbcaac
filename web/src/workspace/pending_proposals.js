// Proposals waiting from earlier — a pre-annotation job's model masks, or proposals of an
// earlier session — loaded when the image opens and shown like fresh ones (accept,
// edit after accepting, or reject). Model proposals carry their confidence and the
// image's uncertainty in `info`; the uncertainty map is at /api/proposals/{id}/uncertainty.
import { api } from "../api.js";
import { decodeMask } from "./proposals_api.js";
import { toast } from "./ui.js";
import { proposalTask } from "./model_proposals.js";

const pct = (x) => (typeof x === "number" ? `${Math.round(x * 100)}%` : "?");

/** Show my pending proposals of this image; returns how many were added. */
export async function loadPendingProposals(ws) {
  const rows = await api.get(`/images/${ws.image.id}/proposals?state=pending`);
  const known = new Set(ws.ai.proposals.pending.map((p) => p.id));
  // classes and boxes of classification and detection models: the Model proposals panel
  ws.modelProposals?.set(rows.filter((r) => proposalTask(r) !== "seg"));
  let added = 0;
  for (const row of rows) {
    if (known.has(row.id) || proposalTask(row) !== "seg") continue;
    const full = await api.get(`/proposals/${row.id}`);
    full.data = await decodeMask(full.mask, full.shape);
    delete full.mask;
    Object.assign(full, { axis: 0, index: null }); // a whole-image proposal
    ws.ai.proposals.add(full);
    added++;
  }
  const model = rows.find((r) => r.engine.startsWith("model:"));
  if (model) {
    const info = model.info || {};
    toast(
      `${rows.length} proposal(s) from ${model.engine.slice(6)} ${model.version}: confidence ${pct(info.confidence)}, uncertainty ${pct(info.uncertainty)}. Accept or reject them.`,
      "info",
      8000,
    );
  }
  return added;
}
