// Admin: the users table (role, active, password) and the "create user" form.
import { api } from "../api.js";
import { el } from "../components/dom.js";
import { field, input, select } from "../components/form.js";
import { formatDate } from "../components/format.js";
import { confirmDialog, formDialog } from "../components/modal.js";
import { showError, toast } from "../components/toast.js";

export const GLOBAL_ROLES = [
  { value: "admin", label: "Administrator" },
  { value: "reviewer", label: "Reviewer" },
  { value: "annotator", label: "Annotator" },
  { value: "viewer", label: "Viewer" },
];

async function patchUser(env, user, changes, done) {
  try {
    await api.patch(`/users/${user.id}`, changes);
    toast(done, { kind: "success" });
  } catch (err) {
    showError(err);
  }
  await env.reloadUsers().catch(showError);
}

function passwordDialog(user) {
  const password = input({ type: "password", autocomplete: "new-password", required: true });
  return formDialog({
    title: `New password for ${user.username}`,
    submitLabel: "Set password",
    fields: [field("Password", password, { hint: "The user's other sessions stay valid until they expire." })],
    submit: () => api.patch(`/users/${user.id}`, { password: password.value }),
  });
}

function userRow(env, user) {
  const self = user.id === env.ctx.me.id;
  const role = select(GLOBAL_ROLES, { value: user.role, "aria-label": `Role of ${user.username}`, testid: "user-role-select" });
  role.addEventListener("change", () => patchUser(env, user, { role: role.value }, `${user.username} is now ${role.value}`));
  const toggle = el(
    "button",
    { type: "button", class: ["btn", "btn-small", user.is_active && "btn-danger"], testid: "user-toggle-active", disabled: self && user.is_active, title: self ? "You cannot deactivate yourself" : null },
    user.is_active ? "Deactivate" : "Activate",
  );
  toggle.addEventListener("click", async () => {
    if (user.is_active && !(await confirmDialog(`Deactivate ${user.username}? They can no longer sign in; their annotations stay.`, { confirmLabel: "Deactivate", danger: true }))) return;
    patchUser(env, user, { is_active: !user.is_active }, `${user.username} ${user.is_active ? "deactivated" : "activated"}`);
  });
  const setPassword = el("button", { type: "button", class: "btn btn-small" }, "Set password");
  setPassword.addEventListener("click", async () => {
    if (await passwordDialog(user)) toast(`Password of ${user.username} changed`, { kind: "success" });
  });
  return el(
    "tr",
    { testid: "user-row", class: user.is_active ? null : "inactive", dataset: { userId: user.id, username: user.username } },
    el("td", {}, el("strong", {}, user.username), self ? el("span", { class: "muted small" }, " (you)") : null),
    el("td", {}, user.full_name || el("span", { class: "muted" }, "—")),
    el("td", {}, role),
    el("td", {}, user.is_active ? el("span", { class: "badge status-approved" }, "active") : el("span", { class: "badge" }, "inactive")),
    el("td", { class: "small muted" }, formatDate(user.created_at)),
    el("td", {}, el("div", { class: "row", style: "flex-wrap: nowrap; justify-content: flex-end" }, setPassword, toggle)),
  );
}

function createForm(env) {
  const username = input({ name: "username", required: true, maxlength: 64, autocomplete: "off", testid: "user-username" });
  const fullName = input({ name: "full_name", maxlength: 200, autocomplete: "off", testid: "user-fullname" });
  const password = input({ name: "password", type: "password", required: true, autocomplete: "new-password", testid: "user-password" });
  const role = select(GLOBAL_ROLES, { value: "annotator", testid: "user-role" });
  const error = el("div", { class: "alert alert-error", role: "alert", hidden: true, testid: "user-error" });
  const form = el(
    "form",
    { class: "card stack", "aria-label": "Create a user" },
    el("h2", {}, "Create a user"),
    error,
    el("div", { class: "form-grid" }, field("Username", username), field("Full name", fullName), field("Password", password), field("Role", role)),
    el("div", { class: "row" }, el("button", { type: "submit", class: "btn btn-primary", testid: "user-create" }, "Create user")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    try {
      const user = await api.post("/users", { username: username.value.trim(), full_name: fullName.value.trim(), password: password.value, role: role.value });
      toast(`User ${user.username} created`, { kind: "success" });
      form.reset();
      role.value = "annotator";
      await env.reloadUsers();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  return form;
}

export function mountUsers(container, env) {
  const table = el("div", {});
  const render = () => {
    table.replaceChildren(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { class: "table", testid: "user-table" },
          el("thead", {}, el("tr", {}, ["Username", "Full name", "Role", "Status", "Created", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, env.users.map((u) => userRow(env, u))),
        ),
      ),
    );
  };
  env.bus.addEventListener("users-changed", render);
  render();
  container.append(el("h2", {}, `Users`), table, createForm(env));
}
