// The timeline of points connected and learners present (uPlot, vendored in static/vendor/).
// Loaded from /timeline (a sample every 10 s), then extended from the live totals, at most one
// point every 10 s; the app also extends it every 10 s with the latest totals while nothing
// changes (the stream is silent then), so a steady session draws a steady line.

import { compact, hourMinute, hourMinuteSecond, number, TIME_ZONE } from "./format.js";
import { t } from "./i18n.js";

const MIN_STEP_SECONDS = 10;
const COLORS = { connected: "#4ade80", learners: "#60a5fa", axis: "#cbd5e1", grid: "#334155" };

let container = null;
let chart = null;
let data = [[], [], []]; // seconds since the epoch, points connected, learners present

function rootFontPx() {
  return parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
}

function zeroBased(_, __, max) {
  return [0, Math.max(1, Math.ceil((max || 0) * 1.12))];
}

/** A single sample gets a minute either side: uPlot gives a lone time a thousand days on its
 * right, and never asks the scale's range for it. */
function widenLoneSample(u) {
  const times = u.data[0];
  if (times.length === 1) u.setScale("x", { min: times[0] - 60, max: times[0] + 60 });
}

/** The seconds the time axis spans, on the chart's node (for tests). */
function showSpan(u, key) {
  if (key === "x") container.dataset.span = String(Math.round(u.scales.x.max - u.scales.x.min));
}

function axisFont() {
  return `${Math.round(rootFontPx() * 0.9)}px system-ui, sans-serif`;
}

function axis(scale, side, color, format) {
  return {
    scale,
    side,
    stroke: color,
    font: axisFont(),
    size: rootFontPx() * 4,
    grid: { show: side === 3, stroke: COLORS.grid, width: 1 },
    ticks: { show: false },
    values: (_, splits) => splits.map(format),
  };
}

function options(width, height) {
  return {
    width,
    height,
    legend: { show: false }, // the card's own legend, translated with the page
    cursor: { show: false }, // a wall screen has no pointer; the headline has the exact figures
    tzDate: (seconds) => window.uPlot.tzDate(new Date(seconds * 1000), TIME_ZONE),
    hooks: { ready: [widenLoneSample], setScale: [showSpan] },
    scales: {
      x: { time: true },
      points: { range: zeroBased },
      learners: { range: zeroBased },
    },
    axes: [
      {
        stroke: COLORS.axis,
        font: axisFont(),
        grid: { stroke: COLORS.grid, width: 1 },
        ticks: { show: false },
        space: rootFontPx() * 5, // room for "08:15:20" between ticks
        // seconds only when the ticks are less than a minute apart
        values: (_, splits, __, ___, step) => splits.map(step < 60 ? hourMinuteSecond : hourMinute),
      },
      axis("points", 3, COLORS.connected, number),
      axis("learners", 1, COLORS.learners, compact),
    ],
    series: [
      {},
      {
        label: t("seriesConnected"),
        scale: "points",
        stroke: COLORS.connected,
        width: 3,
        fill: "rgba(74, 222, 128, 0.12)",
      },
      {
        label: t("seriesLearners"),
        scale: "learners",
        stroke: COLORS.learners,
        width: 3,
      },
    ],
  };
}

function size() {
  return { width: Math.max(200, container.clientWidth), height: Math.max(120, container.clientHeight) };
}

function rebuild() {
  if (!container || !window.uPlot) return;
  container.dataset.samples = String(data[0].length); // how many points are drawn (for tests)
  if (chart) chart.destroy();
  const { width, height } = size();
  chart = new window.uPlot(options(width, height), data, container);
}

export function initTimeline(node) {
  container = node;
  let pending = null;
  new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => chart && chart.setSize(size()));
  }).observe(node);
}

/** Replace the data with the session's samples. */
export function setTimeline(samples) {
  data = [
    samples.map((s) => Date.parse(s.at) / 1000),
    samples.map((s) => s.connected),
    samples.map((s) => s.learners_present),
  ];
  rebuild();
}

/** Extend the line with totals as of `atMs`, no more than one point every 10 s. */
export function appendTotals(totals, atMs = Date.parse(totals.as_of)) {
  const at = atMs / 1000;
  const last = data[0].at(-1);
  if (last !== undefined && at - last < MIN_STEP_SECONDS) return;
  data[0].push(at);
  data[1].push(totals.connected);
  data[2].push(totals.learners_present);
  container.dataset.samples = String(data[0].length);
  if (!chart) {
    rebuild();
    return;
  }
  chart.setData(data);
  widenLoneSample(chart);
}

/** Labels changed language: draw again (uPlot fixes series labels when built). */
export function relabelTimeline() {
  rebuild();
}
