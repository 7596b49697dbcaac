// Admin: project membership — pick a project, change members' project roles, add and
// remove members.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { field, select } from "../components/form.js";
import { confirmDialog } from "../components/modal.js";
import { showError, toast } from "../components/toast.js";

const PROJECT_ROLES = [
  { value: "viewer", label: "Viewer" },
  { value: "annotator", label: "Annotator" },
  { value: "reviewer", label: "Reviewer" },
];
const DEFAULT_ROLE = { admin: "reviewer", reviewer: "reviewer", annotator: "annotator", viewer: "viewer" };

export function mountMembers(container, env) {
  const projectSelect = select([], { testid: "member-project", "aria-label": "Project", style: "min-width: 260px" });
  const userSelect = select([], { testid: "member-user", "aria-label": "User" });
  const roleSelect = select(PROJECT_ROLES, { testid: "member-role", "aria-label": "Project role" });
  const addButton = el("button", { type: "submit", class: "btn btn-primary", testid: "member-add" }, "Add to project");
  const list = el("div", {}, spinner("Loading projects…"));
  let members = [];

  userSelect.addEventListener("change", () => {
    const user = env.users.find((u) => String(u.id) === userSelect.value);
    if (user) roleSelect.value = DEFAULT_ROLE[user.role] || "annotator";
  });

  function fillUsers() {
    const taken = new Set(members.map((m) => m.user.id));
    const free = env.users.filter((u) => u.is_active && !taken.has(u.id));
    const previous = userSelect.value; // keep the user's pick across reloads
    userSelect.replaceChildren(...free.map((u) => el("option", { value: u.id }, `${u.username}${u.full_name ? ` — ${u.full_name}` : ""} (${u.role})`)));
    if (free.some((u) => String(u.id) === previous)) userSelect.value = previous;
    userSelect.disabled = addButton.disabled = !free.length || !projectSelect.value;
    if (userSelect.value !== previous) userSelect.dispatchEvent(new Event("change"));
  }

  async function setRole(m, role) {
    try {
      await api.put(`/projects/${projectSelect.value}/members/${m.user.id}`, { role });
      toast(`${m.user.username} is now ${role} in this project`, { kind: "success" });
    } catch (err) {
      showError(err);
    }
    loadMembers();
  }

  async function remove(m) {
    const name = projectSelect.selectedOptions[0]?.textContent || "this project";
    if (!(await confirmDialog(`Remove ${m.user.username} from ${name}? Their annotations stay.`, { confirmLabel: "Remove", danger: true }))) return;
    try {
      await api.del(`/projects/${projectSelect.value}/members/${m.user.id}`);
      toast(`${m.user.username} removed`, { kind: "success" });
    } catch (err) {
      showError(err);
    }
    loadMembers();
  }

  function memberRow(m) {
    const role = select(PROJECT_ROLES, { value: m.role, "aria-label": `Project role of ${m.user.username}`, testid: "member-role-select" });
    role.addEventListener("change", () => setRole(m, role.value));
    return el(
      "tr",
      { testid: "member-row", dataset: { userId: m.user.id, username: m.user.username } },
      el("td", {}, el("strong", {}, m.user.username), m.user.full_name ? el("span", { class: "muted" }, ` — ${m.user.full_name}`) : null),
      el("td", { class: "muted" }, m.user.role),
      el("td", {}, role),
      el("td", {}, el("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => remove(m) }, "Remove")),
    );
  }

  let seq = 0;
  let shown = null; // the project whose members are on screen
  async function loadMembers() {
    const projectId = projectSelect.value;
    if (!projectId) return;
    const mine = ++seq;
    if (shown !== projectId) list.replaceChildren(spinner("Loading members…"));
    let found;
    try {
      found = await api.get(`/projects/${projectId}/members`);
    } catch (err) {
      if (mine === seq) list.replaceChildren(errorBox(err, loadMembers));
      return;
    }
    if (mine !== seq) return; // a newer load is under way
    members = found;
    shown = projectId;
    fillUsers();
    list.replaceChildren(
      members.length
        ? el(
            "div",
            { class: "table-wrap" },
            el(
              "table",
              { class: "table", testid: "member-table" },
              el("thead", {}, el("tr", {}, ["User", "Global role", "Project role", ""].map((h) => el("th", {}, h)))),
              el("tbody", {}, members.map(memberRow)),
            ),
          )
        : emptyState("No members yet."),
    );
  }

  const addForm = el(
    "form",
    { class: "row", style: "align-items: flex-end", "aria-label": "Add a member" },
    field("User", userSelect),
    field("Project role", roleSelect),
    addButton,
  );
  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = env.users.find((u) => String(u.id) === userSelect.value);
    if (!user) return;
    try {
      await api.put(`/projects/${projectSelect.value}/members/${user.id}`, { role: roleSelect.value });
      toast(`${user.username} added as ${roleSelect.value}`, { kind: "success" });
    } catch (err) {
      showError(err);
    }
    loadMembers();
  });
  projectSelect.addEventListener("change", () => {
    sessionStorage.setItem("medlabel:admin-project", projectSelect.value);
    loadMembers();
  });
  env.bus.addEventListener("users-changed", () => loadMembers());

  container.append(
    el("h2", {}, "Project membership"),
    el("div", { class: "card stack" }, el("div", { class: "row", style: "align-items: flex-end" }, field("Project", projectSelect)), list, el("h3", {}, "Add a member"), addForm),
  );

  api
    .get("/projects")
    .then((projects) => {
      if (!projects.length) {
        list.replaceChildren(emptyState("No projects yet.", el("a", { class: "btn", href: "#/" }, "Go to projects")));
        userSelect.disabled = addButton.disabled = true;
        return;
      }
      projectSelect.replaceChildren(...projects.map((p) => el("option", { value: p.id }, p.name)));
      const saved = sessionStorage.getItem("medlabel:admin-project");
      if (saved && projects.some((p) => String(p.id) === saved)) projectSelect.value = saved;
      loadMembers();
    })
    .catch((err) => list.replaceChildren(errorBox(err)));
}
