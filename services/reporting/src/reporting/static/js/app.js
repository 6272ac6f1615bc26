// The operations dashboard: picks a session, shows its live totals from the SSE stream, and keeps
// the list of late and disconnected points, the incidents and the timeline up to date.
//
// static/provinces.json (province code -> name) was generated once from the official list, with:
//   uv run python -c "import json; from vietnam_provinces import Province; \
//     names = {f'{int(p.code):02d}': p.name for p in Province.iter_all()}; \
//     print(json.dumps(dict(sorted(names.items())), ensure_ascii=False, indent=1))" \
//     > services/reporting/src/reporting/static/provinces.json

import { askLogin, mayRespond, role, showAccount, startAccount } from "./account.js";
import * as api from "./api.js";
import { renderChannels } from "./channels.js";
import { byId, el } from "./dom.js";
import { clearHeadline, renderHeadline } from "./headline.js";
import { language, setLanguage, t, translateStatic } from "./i18n.js";
import { dayAndTime, hourMinute, hourMinuteSecond } from "./format.js";
import { renderIncidents } from "./incidents.js";
import { clearProblems, renderProblems, tickProblems } from "./problems.js";
import { buildProvinceGrid, markPickedProvince, renderProvinces, shortName } from "./provinces.js";
import { openPoint, refreshPoint, startPoint } from "./point.js";
import { startResponding } from "./respond.js";
import { appendTotals, initTimeline, relabelTimeline, setTimeline } from "./timeline.js";

const LIST_LIMIT = 100; // points shown in the list of late and disconnected ones
const REFRESH_EVERY_MS = 2000; // the list and incidents follow totals, at most this often
const HANDLING_EVERY_MS = 10000; // and, for what other desks did meanwhile, at least this often
const TIMELINE_STEP_MS = 10000; // the timeline also moves on while totals stay the same
const STREAM_RETRY_MS = 5000; // when the browser gave up on the stream (it retries by itself otherwise)

const state = {
  sessions: [],
  code: null,
  generation: 0, // bumped on each session switch: answers for an older session are dropped
  provinceNames: {},
  provinceFilter: null,
  search: "", // words of the search box: the list shows the points found, in any state
  totals: null,
  problems: { items: [], total: 0 },
  incidents: [],
  live: "connecting",
  source: null,
  clockOffsetMs: 0, // the server's clock minus this machine's, from the totals' as_of
  refreshTimer: null,
  lastRefreshAt: 0,
  timelineReady: false,
};

const serverNow = () => Date.now() + state.clockOffsetMs;

// ---- messages and status ---------------------------------------------------------------------

function showMessage(text) {
  const box = byId("message");
  box.textContent = text;
  box.hidden = !text;
}

function explain(error) {
  if (error instanceof api.ApiError && error.status === 401) return t("unauthorized");
  return t("loadFailed", { status: error instanceof api.ApiError ? error.status : "—" });
}

function setLive(status) {
  state.live = status;
  const badge = byId("live-badge");
  badge.dataset.state = status;
  badge.className = `badge badge--${status}`;
  badge.textContent = t(status);
  document.body.dataset.live = status;
}

// ---- sessions --------------------------------------------------------------------------------

function runningSession(sessions, now = Date.now()) {
  return sessions.find((s) => Date.parse(s.starts_at) <= now && now <= Date.parse(s.ends_at));
}

function chooseSession(sessions) {
  const wanted = new URLSearchParams(location.search).get("session");
  if (wanted && sessions.some((s) => s.code === wanted)) return wanted;
  return (runningSession(sessions) ?? sessions[0])?.code ?? null;
}

function sessionLabel(session) {
  const title = session.title ? ` — ${session.title}` : "";
  return `${session.code}${title} (${dayAndTime(session.starts_at)})`;
}

function fillSessionPicker() {
  const select = byId("session-select");
  select.replaceChildren(
    ...state.sessions.map((s) => el("option", { text: sessionLabel(s), attrs: { value: s.code } })),
  );
  if (state.code) select.value = state.code;
}

function showSessionInfo() {
  const session = state.sessions.find((s) => s.code === state.code);
  if (!session) {
    byId("session-info").textContent = "";
    return;
  }
  const hours = `${hourMinute(Date.parse(session.starts_at) / 1000)}–${hourMinute(Date.parse(session.ends_at) / 1000)}`;
  byId("session-info").textContent = [session.topic, hours].filter(Boolean).join(" · ");
}

let sessionsTimer = null; // the next try while there are no sessions (or no access) yet

function loadSessionsLater() {
  clearTimeout(sessionsTimer);
  sessionsTimer = setTimeout(loadSessions, 10000);
}

async function loadSessions() {
  clearTimeout(sessionsTimer);
  try {
    state.sessions = await api.fetchSessions();
  } catch (error) {
    showMessage(explain(error));
    if (error instanceof api.ApiError && error.status === 401) askLogin();
    loadSessionsLater();
    return;
  }
  fillSessionPicker();
  const code = chooseSession(state.sessions);
  if (!code) {
    showMessage(t("noSessions"));
    loadSessionsLater();
    return;
  }
  showMessage("");
  openSession(code);
}

async function refreshSessionList() {
  let sessions;
  try {
    sessions = await api.fetchSessions();
  } catch {
    return; // keep the list we have
  }
  // Rebuilt only when it changed: rebuilding closes the picker if someone has it open.
  if (JSON.stringify(sessions) === JSON.stringify(state.sessions)) return;
  state.sessions = sessions;
  fillSessionPicker();
}

// Every view has its address: the session and the province picked, so a link can be sent.
function rememberInUrl(name, value) {
  const params = new URLSearchParams(location.search);
  if (value) params.set(name, value);
  else params.delete(name);
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

function setReportLinks(code) {
  for (const format of ["html", "csv", "json"]) {
    byId(`report-${format}`).href = api.reportUrl(code, format);
  }
}

// ---- one session -----------------------------------------------------------------------------

function resetViews() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = null;
  state.totals = null;
  state.problems = { items: [], total: 0 };
  state.incidents = [];
  state.timelineReady = false;
  clearHeadline();
  renderProvinces({});
  renderChannels({});
  clearProblems();
  renderIncidents([], state.provinceNames);
}

async function openSession(code) {
  const generation = ++state.generation;
  state.code = code;
  closeStream();
  resetViews();
  byId("session-select").value = code;
  showSessionInfo();
  rememberInUrl("session", code);
  setReportLinks(code);
  setLive("connecting");

  // A coordinator's view is their provinces: the national timeline is not theirs to see.
  const [totals, timeline] = await Promise.allSettled([
    api.fetchTotals(code),
    role() === "coordinator" ? Promise.resolve([]) : api.fetchTimeline(code),
  ]);
  if (generation !== state.generation) return;
  setTimeline(timeline.status === "fulfilled" ? timeline.value : []);
  state.timelineReady = true;
  if (totals.status === "fulfilled") {
    showMessage("");
    applyTotals(totals.value);
  } else {
    showMessage(explain(totals.reason));
  }
  refreshLists(generation);
  openStream(code, generation);
  const linked = new URLSearchParams(location.search).get("point");
  if (linked) showPoint(linked);
}

/** While the monitor cannot judge (Kafka, the ingest or the processor away), the desk is told
 * the states are unknown, not that points dropped; while a restarted reporting reads its
 * tables, that the figures are the last ones it showed, and of when. */
function showUnknown(totals) {
  const box = byId("unknown");
  box.hidden = !totals.unknown && !totals.stale;
  if (box.hidden) return;
  if (totals.stale) {
    box.textContent = t("staleAsOf", { time: hourMinuteSecond(Date.parse(totals.as_of) / 1000) });
    return;
  }
  box.textContent = totals.judged_until
    ? t("unknownSince", { time: hourMinuteSecond(Date.parse(totals.judged_until) / 1000) })
    : t("unknownNever");
}

function applyTotals(totals) {
  state.totals = totals;
  // Stale totals are of an earlier moment: neither the server's clock nor the timeline's now.
  if (!totals.stale) state.clockOffsetMs = Date.parse(totals.as_of) - Date.now();
  showUnknown(totals);
  renderHeadline(totals);
  renderProvinces(totals.by_province);
  renderChannels(totals.by_channel);
  if (state.timelineReady && !totals.stale) appendTotals(totals);
  scheduleRefresh();
}

// ---- the live stream -------------------------------------------------------------------------

function closeStream() {
  if (state.source) state.source.close();
  state.source = null;
}

function openStream(code, generation) {
  const source = new EventSource(api.streamUrl(code));
  state.source = source;
  source.addEventListener("open", () => setLive("live"));
  source.addEventListener("totals", (event) => {
    if (generation !== state.generation) return;
    setLive("live");
    showMessage("");
    applyTotals(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    if (generation !== state.generation) return;
    setLive("reconnecting");
    // EventSource retries by itself, except after a refusal (an HTTP error): then we do.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(() => generation === state.generation && openStream(code, generation), STREAM_RETRY_MS);
    }
  });
}

// ---- the list of late and disconnected points, and incidents ----------------------------------

function scheduleRefresh() {
  if (state.refreshTimer) return;
  const generation = state.generation;
  const wait = Math.max(0, state.lastRefreshAt + REFRESH_EVERY_MS - Date.now());
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = null;
    refreshLists(generation);
  }, wait);
}

function refreshLists(generation) {
  state.lastRefreshAt = Date.now();
  refreshProblems(generation);
  refreshIncidents(generation);
  refreshPoint(pointContext());
}

// ---- one point's page ------------------------------------------------------------------------

const pointContext = () => ({
  provinceNames: state.provinceNames,
  mayRespond: mayRespond(),
  now: serverNow,
});

function showPoint(code) {
  const session = state.sessions.find((s) => s.code === state.code);
  if (!session) return;
  rememberInUrl("point", code);
  openPoint(session, code, pointContext());
}

function followPointLink(event) {
  const link = event.target.closest("a[data-point]");
  // A modified click (a new tab, a new window) goes where the link says.
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  showPoint(link.dataset.point);
}

/** Which list the desk looks at: a search's finds, a picked province's points, or those
 * late or disconnected. */
function listShown() {
  if (state.search) return "found";
  return state.provinceFilter ? "province" : "problems";
}

async function fetchList(list) {
  const query = { province: state.provinceFilter, limit: LIST_LIMIT };
  if (list === "found") return api.fetchPoints(state.code, { ...query, q: state.search });
  if (list === "province") return api.fetchPoints(state.code, query);
  const [down, late] = await Promise.all([
    api.fetchPoints(state.code, { ...query, state: "disconnected" }),
    api.fetchPoints(state.code, { ...query, state: "late" }),
  ]);
  return {
    items: [...down.items, ...late.items].slice(0, LIST_LIMIT),
    total: down.total + late.total,
  };
}

async function refreshProblems(generation) {
  const asked = { list: listShown(), search: state.search, province: state.provinceFilter };
  let problems;
  try {
    problems = await fetchList(asked.list);
  } catch {
    return; // the next change of totals tries again
  }
  const still = asked.search === state.search && asked.province === state.provinceFilter;
  if (generation !== state.generation || !still) return;
  state.problems = { ...problems, list: asked.list };
  showProblems();
}

function showProblems() {
  const { items, total, list = "problems" } = state.problems;
  renderProblems(items, total, state.provinceNames, serverNow(), {
    list,
    mayRespond: mayRespond(),
  });
}

let searchTimer = null;

function searchFor(words) {
  clearTimeout(searchTimer);
  // Once typing pauses: a request per key would race its own answers.
  searchTimer = setTimeout(() => {
    state.search = words.trim();
    rememberInUrl("q", state.search);
    refreshProblems(state.generation);
  }, 300);
}

async function refreshIncidents(generation) {
  try {
    const incidents = await api.fetchIncidents(state.code);
    if (generation !== state.generation) return;
    state.incidents = incidents;
    renderIncidents(incidents, state.provinceNames, mayRespond());
  } catch {
    // keep the banners we have
  }
}

function pickProvince(code) {
  state.provinceFilter = code && code !== state.provinceFilter ? code : null;
  rememberInUrl("province", state.provinceFilter);
  markPickedProvince(state.provinceFilter);
  showProvinceFilter();
  refreshProblems(state.generation);
}

function showProvinceFilter() {
  const chip = byId("province-filter");
  const name = state.provinceNames[state.provinceFilter];
  chip.hidden = !state.provinceFilter;
  chip.textContent = t("filterProvince", { name: name ? shortName(name) : state.provinceFilter });
  chip.title = t("filterProvinceTitle");
}

// ---- language --------------------------------------------------------------------------------

function applyLanguage() {
  translateStatic();
  const toggle = byId("lang-toggle");
  toggle.textContent = t("switchLanguage");
  toggle.title = t("switchLanguageTitle");
  toggle.setAttribute("lang", language() === "vi" ? "en" : "vi");
  setLive(state.live);
  showAccount();
  fillSessionPicker();
  showSessionInfo();
  showProvinceFilter();
  if (state.totals) {
    renderHeadline(state.totals);
    renderProvinces(state.totals.by_province);
    renderChannels(state.totals.by_channel);
  } else {
    renderProvinces({});
    renderChannels({});
  }
  showProblems();
  renderIncidents(state.incidents, state.provinceNames, mayRespond());
  refreshPoint(pointContext());
  relabelTimeline();
}

function toggleLanguage() {
  setLanguage(language() === "vi" ? "en" : "vi");
  applyLanguage();
}

// ---- start -----------------------------------------------------------------------------------

async function main() {
  initTimeline(byId("timeline-chart"));
  byId("lang-toggle").addEventListener("click", toggleLanguage);
  byId("session-select").addEventListener("change", (event) => openSession(event.target.value));
  byId("province-filter").addEventListener("click", () => pickProvince(null));
  const search = byId("point-search");
  state.search = new URLSearchParams(location.search).get("q")?.trim() ?? "";
  search.value = state.search;
  search.addEventListener("input", () => searchFor(search.value));
  try {
    state.provinceNames = await api.fetchProvinceNames();
  } catch {
    state.provinceNames = {};
  }
  buildProvinceGrid(state.provinceNames, pickProvince);
  const linked = new URLSearchParams(location.search).get("province");
  if (linked && linked in state.provinceNames) {
    state.provinceFilter = linked;
    markPickedProvince(linked);
  }
  applyLanguage();
  clearProblems();
  setInterval(() => tickProblems(serverNow()), 1000);
  setInterval(() => {
    // only while the stream is up: otherwise the last totals may no longer hold
    if (state.totals && state.timelineReady && state.live === "live") {
      appendTotals(state.totals, serverNow());
    }
  }, TIMELINE_STEP_MS);
  setInterval(refreshSessionList, 60000);
  setInterval(() => state.code && refreshLists(state.generation), HANDLING_EVERY_MS);
  byId("problem-list").addEventListener("click", followPointLink);
  startPoint(() => rememberInUrl("point", null));
  startResponding([byId("problem-list"), byId("incidents"), byId("point-body")], {
    session: () => state.code,
    done: () => refreshLists(state.generation),
    failed: showMessage,
  });
  // After a login or a logout the same views, as the new account sees them.
  await startAccount(loadSessions);
  await loadSessions();
}

main();
