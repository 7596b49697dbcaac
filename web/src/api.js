// The REST client every page uses: same-origin fetch with the session cookie, JSON in and
// out, errors as ApiError (status + the server's one-line message).

export class ApiError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details || null;
  }
}

async function request(method, path, { json, form, raw, headers } = {}) {
  const init = { method, headers: { ...(headers || {}) }, credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // FormData: the browser sets the multipart boundary
  }
  const response = await fetch(`/api${path}`, init);
  if (response.status === 401 && !path.startsWith("/auth/login")) {
    window.dispatchEvent(new CustomEvent("medlabel:unauthorized"));
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let details = null;
    try {
      const body = await response.json();
      message = body.message || message;
      details = body.details || null;
    } catch (_) {
      /* not JSON */
    }
    throw new ApiError(response.status, message, details);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("application/json") ? response.json() : response;
}

export const api = {
  get: (path, opts) => request("GET", path, opts),
  post: (path, json) => request("POST", path, { json }),
  put: (path, json) => request("PUT", path, { json }),
  patch: (path, json) => request("PATCH", path, { json }),
  del: (path) => request("DELETE", path),
  upload: (path, form) => request("POST", path, { form }),
  raw: (path) => request("GET", path, { raw: true }),
};

// gzip and base64 for mask payloads ({encoding: "raw-gzip", dtype, data}).
export async function gzipBytes(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export async function gunzipBytes(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export function toBase64(bytes) {
  let out = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(out);
}

// A mask (Uint8Array or Uint16Array in C order, planes x rows x columns) as a payload.
export async function maskPayload(mask) {
  const bytes = new Uint8Array(mask.buffer, mask.byteOffset, mask.byteLength);
  const dtype = mask instanceof Uint16Array ? "uint16" : "uint8";
  return { encoding: "raw-gzip", dtype, data: toBase64(await gzipBytes(bytes)) };
}

// Fetch a stored mask (revision or draft) back as a typed array with its shape.
export async function fetchMask(path) {
  const response = await api.raw(path);
  if (response.status === 204) return null;
  const shape = response.headers.get("X-Mask-Shape").split(",").map(Number);
  const dtype = response.headers.get("X-Mask-Dtype");
  const bytes = await gunzipBytes(new Uint8Array(await response.arrayBuffer()));
  const data = dtype === "uint16" ? new Uint16Array(bytes.buffer) : bytes;
  return { shape, dtype, data };
}
