// User-facing flows around the server: opening an annotation or a draft, save, submit,
// conflicts (409), restore. Nothing here overwrites someone else's save. ("Next" follows
// the reader and review queues: review.js.)
import { api, ApiError } from "../api.js";
import { choose, toast, formatTime } from "./ui.js";

/** Show an annotation (or nothing, for a new one): content, mask, clean history. */
export async function openAnnotation(ws, annotation) {
  const head = annotation?.head || null;
  if (head?.has_mask) {
    await ws.viewer.loadDrawing(`/api/revisions/${head.id}/mask?encoding=nifti`);
  } else if (ws.viewer.nv.drawBitmap) {
    ws.viewer.nv.closeDrawing();
  }
  ws.content.load(head?.content); // after the mask: both appear together
  ws.history.reset();
  ws.persistence.setAnnotation(annotation);
  ws.persistence.markClean();
  ws.tools.apply();
  ws.labelsPanel.render();
  await ws.historyPanel.refresh();
}

/** Put my server draft into the editor, on top of the annotation's current version. */
export async function restoreDraft(ws, draft) {
  if (draft.has_mask) {
    await ws.viewer.loadDrawing(`/api/images/${ws.image.id}/draft/mask?encoding=nifti`);
  } else if (ws.viewer.nv.drawBitmap) {
    ws.viewer.nv.closeDrawing();
  }
  ws.content.load(draft.content); // after the mask: both appear together
  ws.history.reset();
  const p = ws.persistence;
  p.dirty = true;
  p.maskDirty = true;
  p.draftSaved = true;
  p.draftAt = draft.updated_at;
  ws.tools.apply();
  ws.labelsPanel.render();
  p.dispatchEvent(new CustomEvent("status"));
  ws.historyPanel.render();
}

/** On opening: offer my draft if there is one (it is autosaved, unsaved work). */
export async function offerDraft(ws, draft, annotation) {
  const headAt = annotation?.head?.created_at;
  const newer = !headAt || new Date(draft.updated_at) > new Date(headAt);
  const moved =
    annotation && draft.base_version !== null && draft.base_version !== annotation.version;
  const lines = [`You have unsaved work on this image, autosaved ${formatTime(draft.updated_at)}.`];
  if (!newer) lines.push(`It is older than the saved version (${formatTime(headAt)}).`);
  if (moved)
    lines.push(
      `The annotation was saved again since (version ${draft.base_version} → ${annotation.version}); restoring puts your draft on top of the current version.`,
    );
  const choice = await choose({
    title: "Restore your draft?",
    message: lines,
    testid: "draft-dialog",
    choices: [
      { value: "restore", label: "Restore draft", primary: newer },
      { value: "discard", label: "Discard draft", danger: true },
      { value: "later", label: "Not now" },
    ],
  });
  if (choice === "restore") {
    await restoreDraft(ws, draft);
    toast("Draft restored. Save to make it a revision.", "success");
  } else if (choice === "discard") {
    await ws.persistence.discardDraft();
    ws.historyPanel.render();
  } else {
    ws.persistence.draftAt = draft.updated_at;
    ws.historyPanel.render();
  }
}

/** Explain a 409 and let the user choose; never overwrites the other save. */
async function resolveConflict(ws, details) {
  const p = ws.persistence;
  const who = details.saved_by || "someone else";
  const when = details.saved_at ? ` at ${formatTime(details.saved_at)}` : "";
  const choice = await choose({
    title: "This annotation was saved meanwhile",
    testid: "conflict-dialog",
    message: [
      `${who} saved version ${details.current_version ?? "?"}${when} while you were editing version ${p.baseVersion ?? "(new)"}.`,
      "Your changes have not been saved and nothing was overwritten.",
    ],
    choices: [
      { value: "draft", label: "Keep mine as a draft", primary: true },
      { value: "theirs", label: "Load theirs (discard mine)", danger: true },
      { value: "cancel", label: "Cancel" },
    ],
  });
  if (choice === null || choice === "cancel") return;
  const annotationId = details.annotation_id ?? p.annotation?.id;
  if (choice === "draft") {
    await p.saveDraft();
    p.draftSaved = true;
  } else {
    await p.discardDraft().catch(() => {});
  }
  const fresh = await api.get(`/annotations/${annotationId}`);
  await openAnnotation(ws, fresh);
  if (choice === "draft") {
    p.draftAt = p.draftAt || new Date().toISOString();
    ws.historyPanel.render();
    toast(
      "Their version is loaded; yours is kept as a draft (Revisions → Restore draft).",
      "info",
      8000,
    );
  } else {
    toast("Loaded the latest version.", "info");
  }
}

export async function save(ws) {
  const p = ws.persistence;
  if (ws.saving) return;
  ws.saving = true;
  ws.r.save.disabled = true;
  try {
    const result = await p.save("");
    if (result.conflict) return resolveConflict(ws, result.conflict);
    toast(`Saved (version ${result.annotation.version}).`, "success");
    await ws.historyPanel.refresh();
  } catch (err) {
    toast(`Save failed: ${err.message}`, "error");
  } finally {
    ws.saving = false;
    ws.r.save.disabled = false;
  }
}

export async function submit(ws) {
  try {
    const result = await ws.persistence.submit();
    if (result.conflict) return resolveConflict(ws, result.conflict);
    toast("Submitted for review.", "success");
    await ws.historyPanel.refresh();
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      toast(`${err.message}`, "error");
      const fresh = await api.get(`/annotations/${ws.persistence.annotation.id}`);
      ws.persistence.setAnnotation(fresh);
    } else {
      toast(`Submit failed: ${err.message}`, "error");
    }
  }
}

export async function restoreRevision(ws, rev) {
  const p = ws.persistence;
  if (p.dirty) {
    const ok = await choose({
      title: `Restore revision #${rev.number}?`,
      message:
        "Your unsaved changes will be discarded (the revision becomes the current version; history is kept).",
      testid: "restore-dialog",
      choices: [
        { value: "yes", label: "Restore", primary: true },
        { value: "no", label: "Cancel" },
      ],
    });
    if (ok !== "yes") return;
  }
  try {
    const updated = await p.restore(rev.id);
    await openAnnotation(ws, updated);
    toast(`Revision #${rev.number} restored as version ${updated.version}.`, "success");
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      toast(`${err.message}`, "error");
      await openAnnotation(ws, await api.get(`/annotations/${p.annotation.id}`));
    } else {
      toast(`Restore failed: ${err.message}`, "error");
    }
  }
}
