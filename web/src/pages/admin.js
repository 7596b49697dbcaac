// Admin page (administrators): users (create, role, activate/deactivate, password),
// project membership, and a link to the audit log (admin-audit.js). Sections live in
// admin-users.js and admin-members.js and share the user list through `env.users` / the
// "users-changed" event on `env.bus`.
import { api } from "../api.js";
import { el, errorBox, spinner } from "../components/dom.js";
import { pageShell } from "../components/header.js";
import { mountMembers } from "./admin-members.js";
import { mountUsers } from "./admin-users.js";

export async function render(root, ctx) {
  const main = pageShell(root, ctx, { crumbs: [{ label: "Administration" }] });
  main.append(el("div", { class: "page-head" }, el("div", { class: "spacer" }, el("h1", {}, "Administration"), el("p", { class: "subtitle" }, "Accounts, roles and who works on which project.")), ctx.me.role === "admin" ? el("a", { class: "btn", href: "#/admin/audit", testid: "admin-audit-link" }, "Audit log →") : null));
  if (ctx.me.role !== "admin") {
    main.append(errorBox("This page is for administrators. Ask an administrator to change users or project membership."));
    return;
  }
  const body = el("div", {}, spinner("Loading users…"));
  main.append(body);
  const bus = new EventTarget();
  const env = { ctx, bus, users: [] };
  env.reloadUsers = async () => {
    env.users = await api.get("/users");
    bus.dispatchEvent(new Event("users-changed"));
    return env.users;
  };
  try {
    await env.reloadUsers();
  } catch (err) {
    body.replaceChildren(errorBox(err));
    return;
  }
  const usersSection = el("section", { class: "stack", testid: "admin-users" });
  const membersSection = el("section", { class: "stack section", testid: "admin-members" });
  body.replaceChildren(usersSection, membersSection);
  mountUsers(usersSection, env);
  mountMembers(membersSection, env);
}
