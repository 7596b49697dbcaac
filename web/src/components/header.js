// The app header (brand, breadcrumbs, admin link, user menu with logout) and page shell.
//
//   renderHeader(ctx, {crumbs}) → <header class="app-header">
//     ctx: the router's {me, navigate, forgetUser}; crumbs: [{label, href?}] after "Projects".
//   pageShell(root, ctx, {crumbs}) → <main class="page"> (header + main appended to root)
//   logout(ctx) ends the session (POST /api/auth/logout), forgets the user, goes to #/login.
import { api } from "../api.js";
import { el } from "./dom.js";
import { showError } from "./toast.js";

export async function logout(ctx) {
  try {
    await api.post("/auth/logout");
  } catch (err) {
    if (err.status !== 401) showError(err, "Logout failed");
  }
  ctx.forgetUser();
  sessionStorage.removeItem("medlabel:next"); // the next user starts on the project list
  ctx.navigate("#/login");
}

function crumbTrail(crumbs) {
  const items = [{ label: "Projects", href: "#/" }, ...crumbs];
  return el(
    "nav",
    { class: "crumbs", "aria-label": "Breadcrumb" },
    items.map((c, i) => {
      const last = i === items.length - 1;
      const node = c.href && !last ? el("a", { href: c.href }, c.label) : el("span", { "aria-current": last ? "page" : null }, c.label);
      return [i ? el("span", { class: "crumb-sep", "aria-hidden": "true" }, "/") : null, node];
    }),
  );
}

function userMenu(ctx) {
  const me = ctx.me;
  const menu = el("details", { class: "user-menu", testid: "user-menu" });
  const close = (ev) => {
    if (!menu.isConnected) document.removeEventListener("click", close);
    else if (!menu.contains(ev.target)) menu.open = false;
  };
  document.addEventListener("click", close);
  menu.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  menu.append(
    el(
      "summary",
      { "aria-label": "User menu" },
      el("span", { class: "avatar", "aria-hidden": "true" }, (me.username[0] || "?").toUpperCase()),
      el("span", { class: "user-name", testid: "current-user" }, me.username),
      el("span", { class: "badge badge-role", testid: "current-role" }, me.role),
    ),
    el(
      "div",
      { class: "menu" },
      el("div", { class: "menu-info" }, el("strong", {}, me.full_name || me.username), el("span", { class: "muted" }, `Role: ${me.role}`)),
      me.role === "admin" ? el("a", { class: "menu-item", href: "#/admin" }, "Users and membership") : null,
      el("a", { class: "menu-item", href: "/docs", target: "_blank", rel: "noopener" }, "REST API documentation"),
      el("button", { type: "button", class: "menu-item", testid: "logout", onclick: () => logout(ctx) }, "Log out"),
    ),
  );
  return menu;
}

export function renderHeader(ctx, { crumbs = [] } = {}) {
  const isAdmin = ctx.me && ctx.me.role === "admin";
  const here = location.hash || "#/";
  return el(
    "header",
    { class: "app-header" },
    el("a", { class: "brand", href: "#/", "aria-label": "medlabel home" }, el("span", { class: "brand-mark" }, "◐"), "medlabel"),
    crumbTrail(crumbs),
    el("div", { class: "spacer" }),
    el(
      "nav",
      { class: "main-nav", "aria-label": "Main" },
      el("a", { href: "#/", class: here === "#/" ? "active" : null }, "Projects"),
      isAdmin ? el("a", { href: "#/admin", testid: "nav-admin", class: here === "#/admin" ? "active" : null }, "Admin") : null,
    ),
    ctx.me ? userMenu(ctx) : null,
  );
}

export function pageShell(root, ctx, { crumbs = [] } = {}) {
  const main = el("main", { class: "page", id: "main" });
  root.replaceChildren(renderHeader(ctx, { crumbs }), main);
  return main;
}
