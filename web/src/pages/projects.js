// Project list: a card per project (name, description, your role, progress by status)
// and "New project" for administrators and reviewers.
import { api } from "../api.js";
import { el, emptyState, errorBox, spinner } from "../components/dom.js";
import { checkbox, field, input, textarea } from "../components/form.js";
import { formatDate, plural } from "../components/format.js";
import { pageShell } from "../components/header.js";
import { formDialog } from "../components/modal.js";
import { progressBar } from "../components/status.js";
import { toast } from "../components/toast.js";

const CAN_CREATE = new Set(["admin", "reviewer"]);

function projectCard(p) {
  return el(
    "a",
    { class: "card stack", href: `#/projects/${p.id}`, testid: "project-card", dataset: { projectId: p.id } },
    el(
      "div",
      { class: "card-title" },
      el("h2", { testid: "project-name" }, p.name),
      el("span", { class: "badge badge-role", title: "Your role in this project" }, p.role),
    ),
    el("p", { class: "muted" }, p.description || "No description."),
    progressBar(p.counts, p.total_images),
    el(
      "div",
      { class: "row small muted" },
      el("span", { testid: "project-total" }, plural(p.total_images, "image")),
      p.total_images ? el("span", {}, `· ${Math.round((100 * ((p.counts.submitted || 0) + (p.counts.approved || 0))) / p.total_images)}% done`) : null,
      el("span", { class: "spacer" }),
      el("span", { title: `Created ${formatDate(p.created_at)}` }, `Created ${formatDate(p.created_at, { time: false })}`),
    ),
  );
}

export function newProjectDialog() {
  const name = input({ name: "name", required: true, maxlength: 100, testid: "project-name-input" });
  const description = textarea({ name: "description", maxlength: 10000, testid: "project-description-input" });
  const opts = {
    shift_dates: checkbox("Shift dates (keep intervals between studies; dates move by a per-patient offset)", { name: "shift_dates" }),
    retain_patient_characteristics: checkbox("Keep patient characteristics (age, sex, size, weight…)", { name: "retain_patient_characteristics" }),
    retain_descriptions: checkbox("Keep descriptions (study/series descriptions, protocol; cleaned of names and IDs)", { name: "retain_descriptions" }),
  };
  return formDialog({
    title: "New project",
    submitLabel: "Create project",
    testid: "new-project-dialog",
    fields: [
      field("Name", name),
      field("Description", description),
      el(
        "fieldset",
        { class: "stack" },
        el("legend", {}, "De-identification options"),
        el("p", { class: "small muted" }, "Imported DICOM files are de-identified with the PS3.15 basic profile; these options keep more information."),
        Object.values(opts),
      ),
    ],
    submit: async () => {
      if (!name.value.trim()) throw new Error("Give the project a name.");
      const deid = {};
      for (const [key, label] of Object.entries(opts)) deid[key] = label.querySelector("input").checked;
      return api.post("/projects", { name: name.value.trim(), description: description.value, deid });
    },
  });
}

export async function render(root, ctx) {
  const main = pageShell(root, ctx);
  const canCreate = CAN_CREATE.has(ctx.me.role);
  const list = el("div", {}, spinner("Loading projects…"));
  const create = async () => {
    const project = await newProjectDialog();
    if (project) {
      toast(`Project “${project.name}” created`, { kind: "success" });
      ctx.navigate(`#/projects/${project.id}`);
    }
  };
  main.append(
    el(
      "div",
      { class: "page-head" },
      el("div", { class: "spacer" }, el("h1", {}, "Projects"), el("p", { class: "subtitle" }, "Your annotation projects and how far each one is.")),
      canCreate ? el("button", { class: "btn btn-primary", type: "button", testid: "new-project", onclick: create }, "+ New project") : null,
    ),
    list,
  );

  async function load() {
    list.replaceChildren(spinner("Loading projects…"));
    try {
      const projects = await api.get("/projects");
      if (!projects.length) {
        const hint = canCreate ? "No projects yet — create one to start." : "You are not a member of any project yet. Ask a reviewer or administrator to add you.";
        list.replaceChildren(emptyState(hint, canCreate ? el("button", { class: "btn btn-primary", type: "button", onclick: create }, "+ New project") : null));
        return;
      }
      list.replaceChildren(el("div", { class: "grid-cards" }, projects.map(projectCard)));
    } catch (err) {
      list.replaceChildren(errorBox(err, load));
    }
  }
  await load();
}
