// The heartbeats of a point's page, from a dedicated worker: browsers throttle the timers of a
// page in a background tab (to once a minute after a few minutes), not those of its workers.
// The page gives the token and the learner count; each answer is posted back for it to show.
// Naming no session, each heartbeat is filed under the point's session on air.

const OFF_AIR_RECHECK_S = 30; // between sessions
const BACKOFF_BASE_S = 0.5;
const BACKOFF_CAP_S = 30;
const REFUSALS_BELIEVED = 3; // a restarting server may refuse for a moment

let settings = null; // { url, token, point }
let learners = 0;
let interval = 5; // the session's, from each answer
let seq = 0;
let failures = 0;
let refusals = 0;
let timer = null;
let stopped = false;
let inFlight = false; // one heartbeat at a time: a count typed meanwhile goes right after it
let again = false;

function backoff() {
  const step = Math.min(Math.max(interval, 1), BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** failures);
  return step * (0.5 + Math.random() / 2);
}

async function answered(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

async function beat() {
  if (stopped) return;
  inFlight = true;
  const started = Date.now();
  seq = Math.max(seq + 1, started);
  const body = { point_code: settings.point, seq, sent_at: new Date(started).toISOString(), learners };
  let wait;
  try {
    const response = await fetch(settings.url, {
      method: "POST",
      cache: "no-store",
      headers: { Authorization: `Bearer ${settings.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await answered(response);
    const detail = typeof answer.detail === "string" ? answer.detail : "";
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    if (response.status === 202) {
      failures = refusals = 0;
      interval = answer.heartbeat_interval_s || interval;
      // paced: the next one an interval after this one started
      wait = Math.max(0, interval - (Date.now() - started) / 1000);
      postMessage({ kind: "accepted", seq, learners, session: answer.session_code, at: answer.received_at, interval });
    } else if (response.status === 409) {
      failures = refusals = 0;
      wait = OFF_AIR_RECHECK_S * (0.8 + Math.random() * 0.2);
      postMessage({ kind: "off_air", seq, detail });
    } else if (response.status === 429 || response.status >= 500 || response.status === 408) {
      failures += 1;
      wait = retryAfter ?? backoff();
      postMessage({ kind: "retrying", seq, status: response.status });
    } else if ([401, 403, 404].includes(response.status) && ++refusals < REFUSALS_BELIEVED) {
      wait = refusals;
    } else {
      stopped = true;
      postMessage({ kind: "refused", seq, status: response.status, detail });
    }
  } catch {
    failures += 1;
    wait = backoff();
    postMessage({ kind: "link_down", seq });
  }
  inFlight = false;
  if (stopped) return;
  if (again) {
    again = false;
    wait = 0;
  }
  timer = setTimeout(beat, wait * 1000);
}

function beatSoon() {
  clearTimeout(timer);
  if (inFlight) again = true;
  else beat();
}

onmessage = (event) => {
  const message = event.data;
  if (message.type === "start") {
    settings = message.settings;
    learners = message.learners;
    beat();
  } else if (message.type === "learners") {
    learners = message.learners;
    // the new count goes out now, not at the next beat
    if (settings && !stopped) beatSoon();
  } else if (message.type === "stop") {
    stopped = true;
    clearTimeout(timer);
  }
};
