// What the desk did about one trouble (a point or an incident): who acknowledged it, whose it
// is, what was noted, who resolved it; and, for those who may respond, the buttons to do so.
// A row names its trouble by `data-subject` ("point:CODE", "province:PP", "channel:C") and
// `data-label` (in words); the buttons say what they do by `data-response`, and the page
// listens once for all of them.

import { el } from "./dom.js";
import { clock } from "./format.js";
import { t } from "./i18n.js";

const RESPONSES = ["acknowledge", "assign", "annotate", "resolve"];

/** The handling in words, or null while nobody has done anything about the trouble. */
export function handlingText(handling) {
  if (!handling) return null;
  const parts = [];
  if (handling.acknowledged_by) {
    parts.push(t("handledAcknowledged", { by: handling.acknowledged_by, time: clock(handling.acknowledged_at) }));
  }
  if (handling.assignee) parts.push(t("handledAssigned", { to: handling.assignee }));
  for (const note of handling.notes ?? []) {
    parts.push(t("handledNote", { by: note.by, time: clock(note.at), note: note.note }));
  }
  if (handling.resolved_by) {
    parts.push(t("handledResolved", { by: handling.resolved_by, time: clock(handling.resolved_at) }));
  }
  return parts.length ? parts.join(" · ") : null;
}

/** The line under a trouble saying how it is handled, and its buttons when `mayRespond`. */
export function handlingRow(handling, mayRespond) {
  const text = handlingText(handling);
  const buttons = mayRespond
    ? RESPONSES.filter((response) => !(response === "acknowledge" && handling?.acknowledged_by))
        .filter((response) => !(response === "resolve" && handling?.resolved_by))
        .map((response) =>
          el("button", {
            className: "response",
            text: t(`respond_${response}`),
            attrs: { type: "button" },
            dataset: { response },
          }),
        )
    : [];
  if (!text && !buttons.length) return null;
  return el("div", { className: "handling" }, [
    text ? el("span", { className: "handling__text", text, title: text }) : null,
    ...buttons,
  ]);
}

/** Listen on `container` for the buttons of its rows: `respond(subject, response, row)`. */
export function onResponse(container, respond) {
  container.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-response]");
    const row = button?.closest("[data-subject]");
    if (row && container.contains(row)) respond(row.dataset.subject, button.dataset.response, row);
  });
}
