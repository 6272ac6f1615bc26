// The reporting API, relative to the page (so the dashboard also works behind a path prefix).
// A `?token=` on the page URL is the viewer token: a bearer header on fetches, and
// `access_token=` where a header cannot be sent (EventSource, links).

const token = new URLSearchParams(location.search).get("token");

export class ApiError extends Error {
  constructor(status) {
    super(`HTTP ${status}`);
    this.status = status;
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

async function getJson(path, query) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(url(path, query), { headers, cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status);
  return response.json();
}

export const fetchSessions = () => getJson("v1/sessions");
export const fetchTotals = (code) => getJson(sessionPath(code, "totals"));
export const fetchTimeline = (code) => getJson(sessionPath(code, "timeline"));
export const fetchIncidents = (code) => getJson(sessionPath(code, "incidents"));
export const fetchPoints = (code, query) => getJson(sessionPath(code, "points"), query);
export const fetchProvinceNames = () => getJson("static/provinces.json");

function withToken(target) {
  if (token) target.searchParams.set("access_token", token);
  return target.href;
}

export function streamUrl(code) {
  return withToken(url(sessionPath(code, "stream")));
}

export function reportUrl(code, format) {
  return withToken(url(sessionPath(code, "report"), { format }));
}
