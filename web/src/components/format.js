// Small formatters for dates, sizes, counts and image facts.

// "Nov 22, 2026, 02:14 AM" (in the browser's locale); {time: false} → "Nov 22, 2026".
export function formatDate(iso, { time = true } = {}) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const opts = { year: "numeric", month: "short", day: "numeric" };
  if (time) Object.assign(opts, { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleString(undefined, opts);
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${value < 10 && i > 0 ? value.toFixed(1) : Math.round(value)} ${units[i]}`;
}

export function plural(n, word, many) {
  return `${n} ${n === 1 ? word : many || `${word}s`}`;
}

// "512 × 512" for 2D, "5 × 16 × 16" for volumes (planes × rows × columns), "× 3 ch" for colour.
export function formatShape(image) {
  const shape = image.shape || [];
  const dims = shape[0] === 1 ? shape.slice(1) : shape;
  const channels = image.channels > 1 ? ` × ${image.channels} ch` : "";
  return dims.join(" × ") + channels;
}
