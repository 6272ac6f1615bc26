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

function renderPoints(totals) {
  const pointsTone = tone(totals.connected_share, totals.registered);
  setHeadlineFigure("points-connected", totals.connected);
  setFigure("points-registered", totals.registered, number(totals.registered));
  setShare("points-share", totals.connected_share, pointsTone);
  setMeter("points-meter", totals.connected_share, pointsTone);
}

function renderLearners(totals) {
  const learnersTone = tone(totals.attendance_rate, totals.learners_expected);
  setHeadlineFigure("learners-present", totals.learners_present);
  setFigure("learners-expected", totals.learners_expected, number(totals.learners_expected));
  setShare("learners-rate", totals.attendance_rate, learnersTone);
  setMeter("learners-meter", totals.attendance_rate, learnersTone);
}

function renderStates(totals) {
  setFigure("count-late", totals.late, number(totals.late));
  setFigure("count-disconnected", totals.disconnected, number(totals.disconnected));
  setFigure("count-never", totals.never_connected, number(totals.never_connected));
  for (const [id, value] of [
    ["count-late", totals.late],
    ["count-disconnected", totals.disconnected],
    ["count-never", totals.never_connected],
  ]) {
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
  renderPoints(totals);
  renderLearners(totals);
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
