// The headline figures: points connected of registered, learners present of expected, the
// counts by state and the peaks.

import { byId, setFigure, setText } from "./dom.js";
import { clock, number, percent, tone } from "./format.js";

function setMeter(id, share, toneName) {
  const meter = byId(id);
  meter.style.width = `${Math.min(100, Math.max(0, share * 100))}%`;
  meter.dataset.tone = toneName;
}

function setShare(id, share, toneName) {
  setFigure(id, share, percent(share));
  byId(id).dataset.tone = toneName;
}

/** A headline figure; one of more than six characters gets the smaller size so it fits. */
function setHeadlineFigure(id, value) {
  const text = number(value);
  setFigure(id, value, text);
  byId(id).classList.toggle("figure--long", text.length > 6);
}

/** A headline card: a count of a whole, the share it is and a meter of that share. */
function renderCard(prefix, ids, { count, whole, share }) {
  const cardTone = tone(share, whole);
  setHeadlineFigure(`${prefix}-${ids.count}`, count);
  setFigure(`${prefix}-${ids.whole}`, whole, number(whole));
  setShare(`${prefix}-${ids.share}`, share, cardTone);
  setMeter(`${prefix}-meter`, share, cardTone);
}

function renderStates(totals) {
  for (const [id, value] of [
    ["count-late", totals.late],
    ["count-disconnected", totals.disconnected],
    ["count-never", totals.never_connected],
  ]) {
    setFigure(id, value, number(value));
    byId(id).closest(".state").classList.toggle("state--zero", value === 0);
  }
}

function renderPeaks(totals) {
  setFigure("peak-connected", totals.peak_connected, number(totals.peak_connected));
  setText("peak-connected-at", clock(totals.peak_connected_at));
  setFigure("peak-learners", totals.peak_learners, number(totals.peak_learners));
  setText("peak-learners-at", clock(totals.peak_learners_at));
}

export function renderHeadline(totals) {
  renderCard("points", { count: "connected", whole: "registered", share: "share" }, {
    count: totals.connected, whole: totals.registered, share: totals.connected_share,
  });
  renderCard("learners", { count: "present", whole: "expected", share: "rate" }, {
    count: totals.learners_present, whole: totals.learners_expected, share: totals.attendance_rate,
  });
  renderStates(totals);
  renderPeaks(totals);
  setText("as-of", clock(totals.as_of));
}

export function clearHeadline() {
  for (const id of [
    "points-connected", "points-registered", "points-share", "learners-present",
    "learners-expected", "learners-rate", "count-late", "count-disconnected", "count-never",
    "peak-connected", "peak-learners",
  ]) {
    setFigure(id, null, "—");
  }
  for (const id of ["peak-connected-at", "peak-learners-at", "as-of"]) setText(id, "—");
  byId("points-meter").style.width = "0";
  byId("learners-meter").style.width = "0";
}
