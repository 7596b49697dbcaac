// Line icons of the tool palette (24×24, stroked with currentColor).
const PATHS = {
  navigate:
    "M12 2v20M2 12h20M12 2l-3 3M12 2l3 3M12 22l-3-3M12 22l3-3M2 12l3-3M2 12l3 3M22 12l-3-3M22 12l-3 3",
  brush: "M4 20c3 0 5-1.5 5-4a3 3 0 0 1 3-3l8-9-2-2-9 8a3 3 0 0 1-3 3c-2.5 0-2 4-2 7z",
  eraser: "M3 17l8-8 7 7-4 4H7zM11 9l5-5 6 6-4 4M7 20h14",
  polygon: "M5 4l13 3 2 10-9 4-7-7zM5 4v0",
  fill: "M4 13l7-7 7 7-7 7zM11 6V2M19 15c0 2 1 3 2 4a2 2 0 1 1-4 0c1-1 2-2 2-4z",
  box: "M4 6h16v12H4zM4 6l0 0",
  point: "M12 3v5M12 16v5M3 12h5M16 12h5M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  aiBox: "M3 8V4h4M17 4h4v4M21 16v4h-4M7 20H3v-4M12 7l1.4 3.6L17 12l-3.6 1.4L12 17l-1.4-3.6L7 12l3.6-1.4z",
  aiClick: "M9 3l1 3M3 9l3 1M5 5l2 2M10 10l10 4-4 2-2 4z",
  scribble: "M3 17c2-5 4-5 5-2s3 3 4-2 3-6 5-3 1 6 4 5M5 21h14",
  propagate: "M4 9h16M4 15h16M12 2v5M9 5l3-3 3 3M12 22v-5M9 19l3 3 3-3",
  ruler: "M3 17L17 3l4 4L7 21zM7 13l2 2M10 10l2 2M13 7l2 2",
  pan: "M12 2l3 3h-2v6h6V9l3 3-3 3v-2h-6v6h2l-3 3-3-3h2v-6H5v2l-3-3 3-3v2h6V5H9z",
  contrast: "M12 3a9 9 0 1 0 0 18zM12 3a9 9 0 0 1 0 18",
  undo: "M9 14L4 9l5-5M4 9h11a5 5 0 0 1 0 10h-3",
  redo: "M15 14l5-5-5-5M20 9H9a5 5 0 0 0 0 10h3",
  eye: "M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
  eyeOff:
    "M3 3l18 18M10.6 6.1A10 10 0 0 1 12 6c6 0 10 6 10 6a17 17 0 0 1-3.2 3.7M6.6 6.6C3.8 8.4 2 12 2 12s4 7 10 7a9.6 9.6 0 0 0 4.4-1",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
  help: "M9 9a3 3 0 1 1 4 2.8c-.6.3-1 .9-1 1.6V15M12 18v.5",
};

export function icon(name, size = 18) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "1.8");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", PATHS[name] || "");
  svg.append(path);
  return svg;
}
