// The engines and proposals API (server: /api/engines, /api/images/{id}/proposals) and
// the masks it exchanges: cropped uint8 masks as gzip + base64 ("raw-gzip"), C order over
// (planes, rows, columns) of the stored image.
import { api, gunzipBytes, maskPayload } from "../api.js";

/** The engine catalogue: [{name, title, prompts, required, params, volumetric, available,
 * loaded, ...}]; with `projectId`, "project-model" (the AI box backed by the project's
 * active segmentation model) is available only if the project has one. */
export function listEngines(projectId = null) {
  return api.get(projectId == null ? "/engines" : `/engines?project_id=${projectId}`);
}

/**
 * Ask an engine for a proposal.
 * @param {number} imageId
 * @param {object} body  {engine, label, axis, index, box, positive, negative, foreground,
 *                       background, scribble_radius, previous, params}
 * @returns {Promise<object>}  the proposal, its `mask` decoded into `data` (Uint8Array)
 */
export async function propose(imageId, body) {
  const proposal = await api.post(`/images/${imageId}/proposals`, body);
  proposal.data = await decodeMask(proposal.mask, proposal.shape);
  delete proposal.mask;
  return proposal;
}

/** Merge proposals into my annotation (a machine-sourced revision); returns
 * {annotation, accepted}. */
export function acceptProposals(imageId, ids, baseVersion, mode = "add") {
  return api.post(`/images/${imageId}/proposals/accept`, {
    ids,
    base_version: baseVersion,
    mode,
  });
}

/** Tell the server the proposals were rejected. */
export function rejectProposals(imageId, ids) {
  return api.post(`/images/${imageId}/proposals/reject`, { ids });
}

/** A 2D plane mask (Uint8Array, C order) as a request payload. */
export function encodePlane(mask) {
  return maskPayload(mask);
}

/** A "raw-gzip" uint8 mask payload → Uint8Array of prod(shape) values. */
export async function decodeMask(payload, shape) {
  if (!payload || payload.encoding !== "raw-gzip" || payload.dtype !== "uint8")
    throw new Error(`unexpected proposal mask encoding ${payload?.encoding}/${payload?.dtype}`);
  const binary = atob(payload.data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const data = await gunzipBytes(bytes);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n)
    throw new Error(
      `proposal mask has ${data.length} values, its shape ${shape.join("×")} needs ${n}`,
    );
  return data;
}
