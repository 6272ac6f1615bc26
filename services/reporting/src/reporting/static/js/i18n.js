// Every text the user sees, in Vietnamese (first) and English. `{name}` marks a parameter.

const STORAGE_KEY = "dashboard.lang";

export const MESSAGES = {
  vi: {
    pageTitle: "Giám sát điểm cầu trực tuyến",
    heading: "Giám sát điểm cầu",
    session: "Phiên",
    states: "Trạng thái điểm cầu",
    live: "Trực tiếp",
    connecting: "Đang kết nối…",
    reconnecting: "Đang kết nối lại…",
    asOf: "Cập nhật",
    report: "Báo cáo",
    switchLanguage: "English",
    switchLanguageTitle: "Switch to English",
    pointsConnected: "Điểm cầu đang kết nối",
    learnersPresent: "Học viên có mặt",
    of: "trên",
    registered: "đăng ký",
    expected: "dự kiến",
    peak: "Cao nhất",
    at: "lúc",
    late: "Trễ",
    disconnected: "Mất kết nối",
    neverConnected: "Chưa kết nối",
    connected: "Đang kết nối",
    byProvince: "Theo tỉnh, thành phố",
    legendGood: "≥ 90 %",
    legendWarn: "70–90 %",
    legendBad: "< 70 %",
    legendNone: "Không đăng ký",
    provinceTile: "{name}: {connected}/{registered} điểm cầu đang kết nối",
    byChannel: "Theo kênh kết nối",
    "channel.video_bridge": "Cầu truyền hình",
    "channel.teams": "Microsoft Teams",
    "channel.other": "Khác",
    channelPoints: "{connected}/{registered} điểm",
    channelLearners: "{present}/{expected} học viên",
    channelEmpty: "không có điểm cầu",
    timeline: "Diễn biến",
    seriesConnected: "Điểm cầu kết nối",
    seriesLearners: "Học viên có mặt",
    problems: "Điểm cầu trễ hoặc mất kết nối",
    noProblems: "Không có điểm cầu nào trễ hoặc mất kết nối",
    searchPoints: "Tìm điểm cầu: tên, mã hoặc người phụ trách",
    found: "Điểm cầu tìm thấy",
    noneFound: "Không tìm thấy điểm cầu nào",
    moreProblems: "… và {count} điểm cầu khác",
    filterProvince: "{name} ✕",
    filterProvinceTitle: "Bỏ lọc theo tỉnh",
    lastHeartbeat: "Tín hiệu cuối lúc {time}",
    reconnects: "{count} lần kết nối lại",
    incidentProvince: "{group}: {count} điểm cầu mất kết nối từ {time}",
    incidentChannel: "Kênh {group}: {count} điểm cầu mất kết nối từ {time}",
    moreIncidents: "+{count} sự cố khác",
    noSessions: "Chưa có phiên nào.",
    loadFailed: "Không tải được dữ liệu (mã {status}).",
    unauthorized: "Cần mã truy cập: mở trang với ?token=… được cấp.",
    hours: "giờ",
    unknownSince:
      "Chưa rõ trạng thái từ {time}: hệ thống chưa nhận được tín hiệu mới. Không điểm cầu nào bị tính là mất kết nối trong lúc này.",
    unknownNever: "Chưa rõ trạng thái: hệ thống giám sát chưa bắt đầu đánh giá kết nối.",
  },
  en: {
    pageTitle: "Live connection-point monitor",
    heading: "Connection points",
    session: "Session",
    states: "Point states",
    live: "Live",
    connecting: "Connecting…",
    reconnecting: "Reconnecting…",
    asOf: "Updated",
    report: "Report",
    switchLanguage: "Tiếng Việt",
    switchLanguageTitle: "Chuyển sang tiếng Việt",
    pointsConnected: "Points connected",
    learnersPresent: "Learners present",
    of: "of",
    registered: "registered",
    expected: "expected",
    peak: "Peak",
    at: "at",
    late: "Late",
    disconnected: "Disconnected",
    neverConnected: "Never connected",
    connected: "Connected",
    byProvince: "By province",
    legendGood: "≥ 90%",
    legendWarn: "70–90%",
    legendBad: "< 70%",
    legendNone: "None registered",
    provinceTile: "{name}: {connected} of {registered} points connected",
    byChannel: "By channel",
    "channel.video_bridge": "Video bridge",
    "channel.teams": "Microsoft Teams",
    "channel.other": "Other",
    channelPoints: "{connected}/{registered} points",
    channelLearners: "{present}/{expected} learners",
    channelEmpty: "no points",
    timeline: "Timeline",
    seriesConnected: "Points connected",
    seriesLearners: "Learners present",
    problems: "Points late or disconnected",
    noProblems: "No point is late or disconnected",
    searchPoints: "Find a point: name, code or host",
    found: "Points found",
    noneFound: "No point found",
    moreProblems: "… and {count} more",
    filterProvince: "{name} ✕",
    filterProvinceTitle: "Clear the province filter",
    lastHeartbeat: "Last heartbeat at {time}",
    reconnects: "{count} reconnects",
    incidentProvince: "{group}: {count} points dropped since {time}",
    incidentChannel: "{group} channel: {count} points dropped since {time}",
    moreIncidents: "+{count} more incidents",
    noSessions: "No session yet.",
    loadFailed: "Could not load the data (status {status}).",
    unauthorized: "An access token is needed: open the page with the ?token=… you were given.",
    hours: "h",
    unknownSince:
      "States unknown since {time}: the monitor is not receiving heartbeats. No point is counted as dropped meanwhile.",
    unknownNever: "States unknown: the monitor has not started judging connections yet.",
  },
};

export const LOCALES = { vi: "vi-VN", en: "en-GB" };

let current = readStoredLanguage();

function readStoredLanguage() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    return stored in MESSAGES ? stored : "vi";
  } catch {
    return "vi"; // storage disabled: Vietnamese, without memory
  }
}

export function language() {
  return current;
}

export function locale() {
  return LOCALES[current];
}

export function setLanguage(lang) {
  current = lang in MESSAGES ? lang : "vi";
  try {
    localStorage.setItem(STORAGE_KEY, current);
  } catch {
    // the choice just is not remembered
  }
}

/** The text of `key` in the current language, with `{name}` parameters filled in. */
export function t(key, params = {}) {
  const text = MESSAGES[current][key] ?? MESSAGES.vi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : ""));
}

/** Relabel the static parts of the page: `data-i18n` (text), `data-i18n-aria` (aria-label) and
 * `data-i18n-placeholder`. */
export function translateStatic(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of root.querySelectorAll("[data-i18n-aria]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nAria));
  }
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.setAttribute("placeholder", t(node.dataset.i18nPlaceholder));
  }
}
