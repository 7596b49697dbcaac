// Multipart upload with progress (fetch cannot report upload progress; XMLHttpRequest can).
//
//   uploadWithProgress(path, formData, {onProgress(loaded, total)}) → {promise, abort()}
//     path is below /api (as for api.js); the promise resolves with the parsed JSON body
//     and rejects with an ApiError carrying the server's message (status 0 = network error,
//     aborted uploads reject with an ApiError whose `aborted` is true).
//   collectDroppedFiles(dataTransfer) → Promise<[{file, path}]> walking dropped folders.
//   filesFormData(entries, fields) → FormData with each file under "files", named by path.
import { ApiError } from "../api.js";

export function uploadWithProgress(path, formData, { onProgress } = {}) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", `/api${path}`);
    xhr.withCredentials = true;
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (ev) => {
      if (onProgress) onProgress(ev.loaded, ev.lengthComputable ? ev.total : null);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch (_) {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      if (xhr.status === 401) window.dispatchEvent(new CustomEvent("medlabel:unauthorized"));
      const message = (body && body.message) || `${xhr.status} ${xhr.statusText}`;
      reject(new ApiError(xhr.status, message, body && body.details));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network error: the upload did not reach the server")));
    xhr.addEventListener("abort", () => {
      const err = new ApiError(0, "upload cancelled");
      err.aborted = true;
      reject(err);
    });
    xhr.send(formData);
  });
  return { promise, abort: () => xhr.abort() };
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    // readEntries returns at most ~100 entries per call; loop until it returns none.
    for (;;) {
      const batch = await readEntries(reader);
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
    }
  }
}

export async function collectDroppedFiles(dataTransfer) {
  const out = [];
  const items = Array.from(dataTransfer.items || []);
  const entries = items.map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
  if (entries.length && entries.every(Boolean)) {
    for (const entry of entries) await walk(entry, "", out);
    return out;
  }
  for (const file of Array.from(dataTransfer.files || [])) out.push({ file, path: file.name });
  return out;
}

export function filesFormData(entries, fields = {}) {
  const form = new FormData();
  for (const { file, path } of entries) form.append("files", file, path || file.name);
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null && value !== "") form.append(key, value);
  }
  return form;
}
