// Who is at the desk: the account logged in (its name and role in the top bar) and the login
// dialog. A link may carry an account's token, in its fragment (`#token=…`, which no server
// log records) or, as links did before logins, in `?token=`: it is exchanged once for the
// login's cookie, then taken off the address so it is neither bookmarked nor passed on.

import * as api from "./api.js";
import { byId } from "./dom.js";
import { t } from "./i18n.js";

let current = null; // the answer of v1/me; null while nobody is let in
let changed = () => {};

/** Whether whoever is at the desk may acknowledge, assign, annotate and resolve. */
export const mayRespond = () => Boolean(current?.may_respond);
export const role = () => current?.role ?? null;

function takeLinkedToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const token = fragment.get("token") || query.get("token");
  if (!token) return null;
  fragment.delete("token");
  query.delete("token");
  const search = query.toString() ? `?${query}` : "";
  const hash = fragment.toString() ? `#${fragment}` : "";
  history.replaceState(null, "", `${location.pathname}${search}${hash}`);
  return token;
}

function refusal(error) {
  if (error instanceof api.ApiError && error.status === 401) return t("loginRefused");
  if (error instanceof api.ApiError && error.status === 429) return t("loginThrottled");
  return t("loadFailed", { status: error instanceof api.ApiError ? error.status : "—" });
}

/** The top bar's account: a named account and "log out", or "log in". */
export function showAccount() {
  const named = Boolean(current?.account);
  const box = byId("account");
  box.hidden = !named;
  box.textContent = named ? t("accountOf", { name: current.name, role: t(`role_${current.role}`) }) : "";
  byId("account-button").textContent = t(named ? "logout" : "login");
}

export function askLogin(problem = "") {
  const dialog = byId("login-dialog");
  const error = byId("login-error");
  error.textContent = problem;
  error.hidden = !problem;
  if (!dialog.open) {
    byId("login-token").value = "";
    dialog.showModal();
  }
  byId("login-token").focus();
}

async function loadMe() {
  try {
    current = await api.fetchMe();
  } catch {
    current = null;
  }
  showAccount();
}

async function logIn(token) {
  current = await api.login(token);
  showAccount();
  changed();
}

async function submitLogin(event) {
  event.preventDefault();
  try {
    await logIn(byId("login-token").value.trim());
  } catch (error) {
    askLogin(refusal(error));
    return;
  }
  byId("login-dialog").close();
}

async function logOut() {
  try {
    await api.logout();
  } catch {
    // the cookie stays until it expires; the page says who it still is
  }
  await loadMe();
  changed();
}

/** Find out who is at the desk (logging in with a linked token first); `onChange` after each
 * login or logout. */
export async function startAccount(onChange) {
  byId("login-form").addEventListener("submit", submitLogin);
  byId("login-cancel").addEventListener("click", () => byId("login-dialog").close());
  byId("account-button").addEventListener("click", () => (current?.account ? logOut() : askLogin()));
  const token = takeLinkedToken();
  if (token) {
    try {
      await logIn(token);
    } catch (error) {
      await loadMe();
      askLogin(refusal(error));
    }
  } else {
    await loadMe();
    if (!current) askLogin();
  }
  changed = onChange;
}
