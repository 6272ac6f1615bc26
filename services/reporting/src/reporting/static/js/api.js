// The reporting API, relative to the page (so the dashboard also works behind a path prefix).
// Who asks is the login's cookie (HttpOnly: no script reads the token), which fetches,
// EventSource and links of this origin all send by themselves.

export class ApiError extends Error {
  constructor(status, detail = "") {
    super(`HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function url(path, query = {}) {
  const target = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") {
      target.searchParams.set(name, value);
    }
  }
  return target;
}

function sessionPath(code, rest) {
  return `v1/sessions/${encodeURIComponent(code)}/${rest}`;
}

async function answered(response) {
  if (response.ok) return response.status === 204 ? null : response.json();
  let detail = "";
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    // no JSON body: the status says it
  }
  throw new ApiError(response.status, detail);
}

async function getJson(path, query) {
  return answered(await fetch(url(path, query), { cache: "no-store" }));
}

async function postJson(path, body) {
  const init = { method: "POST", cache: "no-store" };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  return answered(await fetch(url(path), init));
}

export const fetchMe = () => getJson("v1/me");
export const login = (token) => postJson("v1/login", { token });
export const logout = () => postJson("v1/logout");
export const fetchSessions = () => getJson("v1/sessions");
export const fetchTotals = (code) => getJson(sessionPath(code, "totals"));
export const fetchTimeline = (code) => getJson(sessionPath(code, "timeline"));
export const fetchIncidents = (code) => getJson(sessionPath(code, "incidents"));
export const fetchPoints = (code, query) => getJson(sessionPath(code, "points"), query);
export const fetchPoint = (code, point) =>
  getJson(sessionPath(code, `points/${encodeURIComponent(point)}`));
export const fetchProvinceNames = () => getJson("static/provinces.json");
/** Acknowledge, assign, annotate or resolve `subject` ("point:CODE", "province:PP", "channel:C"). */
export const act = (code, action) => postJson(sessionPath(code, "actions"), action);

export const streamUrl = (code) => url(sessionPath(code, "stream")).href;
export const reportUrl = (code, format) => url(sessionPath(code, "report"), { format }).href;
