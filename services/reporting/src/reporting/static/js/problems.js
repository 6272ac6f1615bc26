// The points late or disconnected, disconnected first, each longest first: whom to call, and
// for how long (counted every second on the page from the point's `since`); or, while the desk
// searches, the points found, in whatever state.

import { channelLabel } from "./channels.js";
import { byId, el } from "./dom.js";
import { clock, duration, number } from "./format.js";
import { handlingRow } from "./handling.js";
import { stateText, t } from "./i18n.js";
import { shortName } from "./provinces.js";

/** The address of a point's page: this view's, with the point named. */
export function pointAddress(code) {
  const params = new URLSearchParams(location.search);
  params.set("point", code);
  return `?${params}`;
}

/** "17/40 học viên" while the point is present; nothing otherwise. */
export function learnersText(point) {
  if (point.state !== "connected" && point.state !== "late") return null;
  return t("learnersOf", { present: number(point.learners), expected: number(point.expected_learners) });
}

function metaLine(point, provinceNames) {
  const province = provinceNames[point.province_code];
  const parts = [
    province ? shortName(province) : point.province_code,
    point.channel === "video_bridge" ? null : channelLabel(point.channel),
    point.host,
    learnersText(point),
  ].filter(Boolean);
  const meta = el("div", { className: "problem__meta" }, [
    el("span", { className: "problem__where", text: parts.join(" · ") }),
  ]);
  if (point.phone) {
    const href = `tel:${point.phone.replace(/[^\d+]/g, "")}`;
    meta.append(el("a", { className: "problem__phone", text: point.phone, attrs: { href } }));
  }
  meta.append(el("span", { className: "problem__code", text: point.code }));
  return meta;
}

function problemItem(point, provinceNames, mayRespond) {
  const since = point.since ? Date.parse(point.since) : null;
  const timer = el("span", { className: "problem__duration", dataset: { since: since ?? "" } });
  if (point.last_heartbeat_at) {
    timer.title = t("lastHeartbeat", { time: clock(point.last_heartbeat_at) });
  }
  // A link to the point's page (a new tab keeps this one); a click opens it over the list.
  const name = el("a", {
    className: "problem__name",
    text: point.name || point.code,
    attrs: { href: pointAddress(point.code) },
    dataset: { point: point.code },
  });
  name.title = point.reconnects
    ? `${point.name} — ${t("reconnects", { count: number(point.reconnects) })}`
    : point.name;
  const head = el("div", { className: "problem__head" }, [
    el("span", { className: `pill pill--${point.state}`, text: stateText(point.state) }),
    name,
  ]);
  const dataset = {
    code: point.code,
    state: point.state,
    subject: `point:${point.code}`,
    label: point.name || point.code,
    province: point.province_code ?? "",
  };
  return el("li", { className: "problem", dataset }, [
    head,
    metaLine(point, provinceNames),
    timer,
    handlingRow(point.handling, mayRespond),
  ]);
}

const TITLES = {
  problems: ["problems", "noProblems"],
  found: ["found", "noneFound"],
  province: ["provincePoints", "noneInProvince"],
};

/** Show the points; `total` counts every point of the list that the filter leaves: the late
 * and disconnected ones, those `found` by a search, or all of a `province` (by state, longest
 * silent first); with the buttons to act on them when `mayRespond`. */
export function renderProblems(points, total, provinceNames, now, { list = "problems", mayRespond = false } = {}) {
  byId("problem-list").replaceChildren(...points.map((p) => problemItem(p, provinceNames, mayRespond)));
  byId("problems-count").textContent = number(total);
  const [title, none] = TITLES[list];
  byId("problems-title").textContent = t(title);
  const empty = byId("problems-empty");
  empty.hidden = total > 0;
  empty.textContent = t(none);
  const more = byId("problems-more");
  more.hidden = total <= points.length;
  more.textContent = t("moreProblems", { count: number(total - points.length) });
  tickProblems(now);
}

/** Count the time each listed point has been late or disconnected. */
export function tickProblems(now) {
  for (const timer of byId("problem-list").querySelectorAll(".problem__duration")) {
    const since = Number(timer.dataset.since);
    timer.textContent = since ? duration(now - since) : "—";
  }
}

export function clearProblems() {
  byId("problem-list").replaceChildren();
  byId("problems-count").textContent = "0";
  byId("problems-more").hidden = true;
  byId("problems-empty").hidden = true;
}
