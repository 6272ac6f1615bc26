// A connection point's own page, opened from its personal link (`/point#token=…`): it shows
// the point and its session, takes the learner count, and has a worker send the heartbeats
// while the page is open. The token travels in the fragment, which no server and no log ever
// sees; it is kept in this browser and taken off the address. Closing the page tells the desk
// the point left.

const TOKEN_KEY = "point.token";
const COUNT_KEY = "point.learners";
const TIME_ZONE = "Asia/Ho_Chi_Minh";

const TEXTS = {
  vi: {
    switchLanguage: "English",
    learnersLabel: "Số học viên đang có mặt trong phòng",
    send: "Cập nhật",
    keepOpen:
      "Giữ trang này mở trong suốt buổi học (có thể chuyển sang cửa sổ khác). Đóng trang là báo cho bàn trực rằng điểm cầu đã rời phiên.",
    starting: "Đang kết nối…",
    connected: "Bàn trực đang thấy điểm cầu: đã kết nối",
    retrying: "Mất kết nối tới máy chủ từ {since}: đang thử lại, số học viên sẽ được gửi ngay khi có mạng",
    offAir: "Chưa đến giờ phát: trang sẽ tự kết nối khi phiên bắt đầu",
    refused: "Đường dẫn này không còn dùng được (mã đã bị thu hồi hoặc thay mới): xin bàn trực đường dẫn mới",
    noToken: "Không có mã điểm cầu: hãy mở đúng đường dẫn (hoặc quét mã QR) được cấp",
    onAir: "Đang phát: {title}, {from}–{to}",
    next: "Phiên tới: {title}, {day} {from}–{to}",
    none: "Không còn phiên nào của khoá học",
    last: "Tín hiệu cuối {time} · {count} học viên · mỗi {interval} giây một lần",
  },
  en: {
    switchLanguage: "Tiếng Việt",
    learnersLabel: "Learners present in the room",
    send: "Update",
    keepOpen:
      "Keep this page open for the whole session (other windows may go on top). Closing it tells the desk this point left.",
    starting: "Connecting…",
    connected: "The desk sees this point: connected",
    retrying: "No link to the server since {since}: retrying, the learner count goes out as soon as it is back",
    offAir: "Not on air yet: the page connects by itself when the session starts",
    refused: "This link no longer works (its token was revoked or replaced): ask the desk for a new one",
    noToken: "No point token: open the link (or scan the QR code) you were given",
    onAir: "On air: {title}, {from}–{to}",
    next: "Next session: {title}, {day} {from}–{to}",
    none: "No session of the course is left",
    last: "Last heartbeat {time} · {count} learners · one every {interval} s",
  },
};

let lang = localStorage.getItem("point.lang") === "en" ? "en" : "vi";
const state = {
  brief: null, // the point and its session, from v1/points/me
  heardIn: null, // the session the last heartbeat was filed under
  status: "starting",
  since: null, // when the link went down
  last: null, // the last heartbeat accepted
  seq: 0,
  stopped: false,
};

const byId = (id) => document.getElementById(id);

function t(key, params = {}) {
  return TEXTS[lang][key].replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

function time(iso, options) {
  return new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: TIME_ZONE,
    hourCycle: "h23",
    ...options,
  }).format(new Date(iso));
}

const hm = (iso) => time(iso, { hour: "2-digit", minute: "2-digit" });
const hms = (iso) => time(iso, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linked = fragment.get("token");
  if (linked) {
    localStorage.setItem(TOKEN_KEY, linked);
    history.replaceState(null, "", location.pathname);
  }
  return linked || localStorage.getItem(TOKEN_KEY);
}

function showSession() {
  const session = state.brief?.session;
  const box = byId("session");
  if (!state.brief) return;
  if (!session) {
    box.textContent = t("none");
    return;
  }
  const title = session.title || session.code;
  const params = { title, from: hm(session.starts_at), to: hm(session.ends_at) };
  const airing = Date.parse(session.starts_at) <= Date.now();
  box.textContent = airing
    ? t("onAir", params)
    : t("next", { ...params, day: time(session.starts_at, { day: "2-digit", month: "2-digit" }) });
}

function showStatus() {
  const box = byId("status");
  box.dataset.state = state.status;
  const key = { starting: "starting", connected: "connected", retrying: "retrying", off_air: "offAir", refused: "refused", no_token: "noToken" }[state.status];
  box.textContent = t(key, { since: state.since ? hms(state.since) : "" });
  byId("last").textContent = state.last ? t("last", state.last) : "";
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  byId("lang").textContent = t("switchLanguage");
  showSession();
  showStatus();
}

async function loadBrief(token) {
  const response = await fetch("v1/points/me", {
    headers: { Authorization: `Bearer ${token}` },
    cache: "no-store",
  });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function heard(message, token) {
  state.seq = Math.max(state.seq, message.seq ?? 0);
  if (message.kind === "accepted") {
    state.status = "connected";
    state.since = null;
    state.last = { time: hms(message.at), count: message.learners, interval: message.interval };
    // Heard in another session than before (the next one began): announce it.
    if (message.session !== state.heardIn) {
      state.heardIn = message.session;
      if (message.session !== state.brief?.session?.code) refreshBrief(token);
    }
  } else if (message.kind === "off_air") {
    state.status = "off_air";
  } else if (message.kind === "refused") {
    state.status = "refused";
    state.stopped = true;
  } else if (state.status !== "retrying") {
    state.status = "retrying";
    state.since = new Date().toISOString();
  }
  showStatus();
}

async function refreshBrief(token) {
  try {
    state.brief = (await loadBrief(token)) ?? state.brief;
  } catch {
    return; // the heartbeats say how the link is
  }
  showSession();
}

/** Closing the page: the desk sees the point leave now, not after the session's timeout. A
 * keepalive request outlives the page. */
function leave(token) {
  if (state.stopped || !state.brief) return;
  state.stopped = true;
  const body = {
    point_code: state.brief.code,
    seq: Math.max(state.seq + 1, Date.now()),
    sent_at: new Date().toISOString(),
    learners: Number(byId("learners").value) || 0,
    leaving: true,
  };
  fetch("v1/heartbeats", {
    method: "POST",
    keepalive: true,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function main() {
  byId("lang").addEventListener("click", () => {
    lang = lang === "vi" ? "en" : "vi";
    localStorage.setItem("point.lang", lang);
    applyLanguage();
  });
  applyLanguage();
  const token = takeToken();
  if (!token) {
    state.status = "no_token";
    showStatus();
    return;
  }
  let brief = null;
  while (!brief) {
    try {
      brief = await loadBrief(token);
    } catch {
      state.status = "retrying";
      state.since ??= new Date().toISOString();
      showStatus();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      continue;
    }
    if (!brief) {
      state.status = "refused";
      showStatus();
      return;
    }
  }
  state.brief = brief;
  byId("point-name").textContent = brief.name;
  document.title = brief.name;
  showSession();
  const input = byId("learners");
  input.value = localStorage.getItem(COUNT_KEY) ?? "";
  const worker = new Worker("static/point-worker.js");
  worker.onmessage = (event) => heard(event.data, token);
  const count = () => Math.max(0, Math.min(100000, Math.round(Number(input.value) || 0)));
  const settings = { url: new URL("v1/heartbeats", document.baseURI).href, token, point: brief.code };
  worker.postMessage({ type: "start", settings, learners: count() });
  const update = (event) => {
    event?.preventDefault();
    localStorage.setItem(COUNT_KEY, String(count()));
    worker.postMessage({ type: "learners", learners: count() });
  };
  byId("count-form").addEventListener("submit", update);
  input.addEventListener("change", update);
  setInterval(() => refreshBrief(token), 60000);
  addEventListener("pagehide", () => {
    worker.postMessage({ type: "stop" });
    leave(token);
  });
}

main();
