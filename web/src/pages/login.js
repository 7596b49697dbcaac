// Login: username and password; shows the server's message on failure (wrong password,
// locked account) and returns to the page the user wanted (remembered by the router).
import { api } from "../api.js";
import { el } from "../components/dom.js";
import { field, input } from "../components/form.js";

const NEXT_KEY = "medlabel:next";

function nextHash() {
  const next = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  return next && next.startsWith("#/") && !next.startsWith("#/login") ? next : "#/";
}

export async function render(root, ctx) {
  const username = input({ name: "username", autocomplete: "username", required: true, testid: "login-username", autofocus: true });
  const password = input({ name: "password", type: "password", autocomplete: "current-password", required: true, testid: "login-password" });
  const error = el("div", { class: "alert alert-error", role: "alert", testid: "login-error", hidden: true });
  const submit = el("button", { type: "submit", class: "btn btn-primary", testid: "login-submit" }, "Sign in");

  const form = el(
    "form",
    { class: "form", "aria-label": "Sign in" },
    error,
    field("Username", username),
    field("Password", password),
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!username.value.trim() || !password.value) {
      error.textContent = "Enter your username and password.";
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await api.post("/auth/login", { username: username.value.trim(), password: password.value });
      ctx.forgetUser(); // the router fetches the new user on the next route
      ctx.navigate(nextHash());
    } catch (err) {
      error.textContent = err.message || "Sign-in failed";
      error.hidden = false;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });

  root.replaceChildren(
    el(
      "div",
      { class: "login-page" },
      el(
        "div",
        { class: "card login-card stack" },
        el("div", { class: "brand" }, el("span", { class: "brand-mark" }, "◐"), "medlabel"),
        el("p", { class: "muted" }, "Sign in to annotate medical images."),
        form,
      ),
    ),
  );
  username.focus();
}
