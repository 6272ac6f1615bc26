// One point's page, over the dashboard: how it stands and whom to call, what it went through in
// the session (a strip of its states from the start, then each change and its learners), and
// what the desk did. Its address is the dashboard's with `point=CODE`, so a link can be sent.

import * as api from "./api.js";
import { channelLabel } from "./channels.js";
import { byId, el } from "./dom.js";
import { clock, duration, number } from "./format.js";
import { handlingRow } from "./handling.js";
import { stateText, t } from "./i18n.js";
import { learnersText } from "./problems.js";
import { shortName } from "./provinces.js";

let shown = null; // { session, code } while the page is open
let asked = 0; // answers to an older opening are dropped

function fact(label, value) {
  return [el("dt", { text: label }), el("dd", { text: value })];
}

function whereLine(point, provinceNames) {
  const province = provinceNames[point.province_code];
  const parts = [
    province ? shortName(province) : point.province_code,
    channelLabel(point.channel),
    point.host,
    point.code,
  ].filter(Boolean);
  const line = el("p", { className: "point__where", text: parts.join(" · ") });
  if (point.phone) {
    const href = `tel:${point.phone.replace(/[^\d+]/g, "")}`;
    line.append(" · ", el("a", { className: "point__phone", text: point.phone, attrs: { href } }));
  }
  return line;
}

/** The states from the session's start until now, each as wide as it lasted. */
function stateStrip(moments, session, now) {
  const start = Date.parse(session.starts_at);
  const end = Math.min(now, Date.parse(session.ends_at));
  const strip = el("div", { className: "stack point__strip", attrs: { role: "img" } });
  const spans = [{ state: "never_connected", from: start }];
  for (const moment of moments) {
    const at = Math.max(start, Date.parse(moment.at));
    if (moment.state !== spans.at(-1).state) spans.push({ state: moment.state, from: at });
  }
  const words = [];
  spans.forEach((span, index) => {
    const until = index + 1 < spans.length ? spans[index + 1].from : end;
    if (until <= span.from) return;
    const part = el("span", { className: `stack__part stack__part--${span.state}` });
    part.style.flexGrow = String(until - span.from);
    part.title = `${clock(new Date(span.from).toISOString())} ${stateText(span.state)}`;
    strip.append(part);
    words.push(part.title);
  });
  strip.setAttribute("aria-label", words.join(", "));
  return strip;
}

function momentList(moments) {
  if (!moments.length) return el("p", { className: "point__empty", text: t("pointNoMoments") });
  const items = [...moments].reverse().map((moment) =>
    el("li", { className: "moment", dataset: { state: moment.state } }, [
      el("time", { text: clock(moment.at) }),
      el("span", { className: `pill pill--${moment.state}`, text: stateText(moment.state) }),
      moment.learners ? el("span", { text: t("momentLearners", { count: number(moment.learners) }) }) : null,
    ]),
  );
  return el("ol", { className: "point__moments" }, items);
}

function actionText(action) {
  return t(`actionDone_${action.response}`, { by: action.by, to: action.assignee, note: action.note });
}

function actionList(actions) {
  if (!actions.length) return el("p", { className: "point__empty", text: t("pointNoActions") });
  return el(
    "ol",
    { className: "point__actions" },
    actions.map((action) =>
      el("li", { dataset: { response: action.response } }, [
        el("time", { text: clock(action.at) }),
        el("span", { text: actionText(action) }),
      ]),
    ),
  );
}

function render(point, session, context) {
  const now = context.now();
  byId("point-name").textContent = point.name || point.code;
  const since = point.since ? ` · ${duration(now - Date.parse(point.since))}` : "";
  const learners = learnersText(point);
  const range =
    point.min_learners === null ? "" : ` (${t("pointRange", { min: point.min_learners, max: point.max_learners })})`;
  byId("point-body").replaceChildren(
    el("div", { className: "point__state", dataset: { subject: `point:${point.code}`, label: point.name || point.code } }, [
      el("span", { className: `pill pill--${point.state}`, text: `${stateText(point.state)}${since}` }),
      handlingRow(point.handling, context.mayRespond),
    ]),
    whereLine(point, context.provinceNames),
    el("dl", { className: "point__facts" }, [
      ...fact(t("pointLearners"), `${learners ?? "—"}${range}`),
      ...fact(t("pointReconnects"), number(point.reconnects)),
      ...fact(t("pointFirstConnected"), clock(point.first_connected_at)),
      ...fact(t("pointLastHeartbeat"), clock(point.last_heartbeat_at)),
    ]),
    el("h3", { className: "point__heading", text: t("pointMoments") }),
    stateStrip(point.moments, session, now),
    momentList(point.moments),
    el("h3", { className: "point__heading", text: t("pointActions") }),
    actionList(point.actions),
  );
}

async function load(context) {
  const { session, code } = shown;
  const mine = ++asked;
  let point;
  try {
    point = await api.fetchPoint(session.code, code);
  } catch (error) {
    if (mine !== asked) return;
    byId("point-name").textContent = code;
    const missing = error instanceof api.ApiError && error.status === 404;
    byId("point-body").replaceChildren(
      el("p", { className: "dialog__error", text: missing ? t("pointMissing") : t("loadFailed", { status: error.status ?? "—" }) }),
    );
    return;
  }
  if (mine === asked && shown?.code === code) render(point, session, context);
}

/** Open the page of point `code` of `session`; `context` gives provinceNames, mayRespond and
 * now() (the server's clock). */
export function openPoint(session, code, context) {
  shown = { session, code };
  const dialog = byId("point-dialog");
  if (!dialog.open) dialog.showModal();
  return load(context);
}

/** Bring the open page up to date (the dashboard's refreshes call it). */
export function refreshPoint(context) {
  if (shown && byId("point-dialog").open) load(context);
}

export const shownPoint = () => shown?.code ?? null;

/** `closed()` when the page is closed (its button, or Escape). */
export function startPoint(closed) {
  const dialog = byId("point-dialog");
  byId("point-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    shown = null;
    closed();
  });
}
