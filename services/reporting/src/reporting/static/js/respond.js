// Acting on a trouble from the page: acknowledge and resolve at one click, assign and annotate
// through a small dialog (to whom, what). The server decides who may; its refusal is shown.

import * as api from "./api.js";
import { byId } from "./dom.js";
import { onResponse } from "./handling.js";
import { t } from "./i18n.js";

const ONE_CLICK = new Set(["acknowledge", "resolve"]);

let pending = null; // the action the dialog completes: { code, subject, response }

function refusal(error) {
  if (!(error instanceof api.ApiError)) return t("actFailed", { status: "—" });
  if (error.status === 401) return t("unauthorized");
  if (error.status === 403) return t("actRefused");
  if (error.status === 404) return t("actNotFound");
  if (error.status === 422 && error.detail.includes("no such account")) return t("actNoAccount");
  if (error.status === 503) return t("actNotRecorded");
  return t("actFailed", { status: error.status });
}

function openDialog(code, subject, response, row) {
  pending = { code, subject, response };
  const assigning = response === "assign";
  byId("act-title").textContent = t(`actTitle_${response}`);
  byId("act-subject").textContent = row.dataset.label || subject;
  byId("act-assignee-field").hidden = !assigning;
  byId("act-note-field").hidden = assigning;
  byId("act-assignee").required = assigning;
  byId("act-note").required = !assigning;
  byId("act-assignee").value = "";
  byId("act-note").value = "";
  byId("act-error").hidden = true;
  byId("act-dialog").showModal();
  byId(assigning ? "act-assignee" : "act-note").focus();
}

async function submitDialog(event, done) {
  event.preventDefault();
  const { code, subject, response } = pending;
  const action = { subject, response };
  if (response === "assign") action.assignee = byId("act-assignee").value.trim();
  else action.note = byId("act-note").value.trim();
  try {
    await api.act(code, action);
  } catch (error) {
    const box = byId("act-error");
    box.textContent = refusal(error);
    box.hidden = false;
    return;
  }
  byId("act-dialog").close();
  done();
}

/** Act on the rows of `containers` for the session `session()`; `done()` once an action is
 * recorded, `failed(text)` when a one-click action was refused. */
export function startResponding(containers, { session, done, failed }) {
  const respond = async (subject, response, row) => {
    const code = session();
    if (!ONE_CLICK.has(response)) {
      openDialog(code, subject, response, row);
      return;
    }
    try {
      await api.act(code, { subject, response });
    } catch (error) {
      failed(refusal(error));
      return;
    }
    done();
  };
  for (const container of containers) onResponse(container, respond);
  byId("act-cancel").addEventListener("click", () => byId("act-dialog").close());
  byId("act-form").addEventListener("submit", (event) => submitDialog(event, done));
}
