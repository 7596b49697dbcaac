// The single-page app: hash routes → page modules. Each page module exports
// `render(root, ctx)` (ctx: {params, me, navigate}) and may return a cleanup function;
// the workspace exports `mountWorkspace(root, ctx)` returning {unmount()}.
import { api, ApiError } from "./api.js";

const routes = [
  { pattern: /^#\/login$/, load: () => import("./pages/login.js"), public: true },
  { pattern: /^#\/?$/, load: () => import("./pages/projects.js") },
  { pattern: /^#\/projects\/(\d+)$/, load: () => import("./pages/project.js"), keys: ["projectId"] },
  { pattern: /^#\/images\/(\d+)$/, load: () => import("./workspace/workspace.js"), keys: ["imageId"] },
  { pattern: /^#\/admin$/, load: () => import("./pages/admin.js") },
  { pattern: /^#\/admin\/audit$/, load: () => import("./pages/admin-audit.js") },
];

const root = document.getElementById("app");
let cleanup = null;
let me = null;

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function currentUser() {
  if (me) return me;
  try {
    me = await api.get("/auth/me");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    me = null;
  }
  return me;
}

export function forgetUser() {
  me = null;
}

async function route() {
  const hash = location.hash || "#/";
  const match = routes.find((r) => r.pattern.test(hash));
  if (!match) return navigate("#/");
  const user = match.public ? null : await currentUser();
  if (!match.public && !user) {
    sessionStorage.setItem("medlabel:next", hash); // the login page returns here
    return navigate(`#/login`);
  }
  const params = {};
  const groups = hash.match(match.pattern).slice(1);
  (match.keys || []).forEach((k, i) => (params[k] = Number(groups[i])));
  if (cleanup) {
    try {
      await cleanup();
    } catch (err) {
      console.error(err);
    }
    cleanup = null;
  }
  root.replaceChildren();
  const module = await match.load();
  const ctx = { params, me: user, navigate, forgetUser };
  if (module.mountWorkspace) {
    const handle = await module.mountWorkspace(root, ctx);
    cleanup = handle && handle.unmount ? () => handle.unmount() : null;
  } else {
    const result = await module.render(root, ctx);
    cleanup = typeof result === "function" ? result : null;
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("medlabel:unauthorized", () => {
  me = null;
  if (!location.hash.startsWith("#/login")) {
    sessionStorage.setItem("medlabel:next", location.hash || "#/");
    navigate("#/login");
  }
});
route().catch((err) => {
  root.textContent = `Something went wrong: ${err.message}`;
  console.error(err);
});
