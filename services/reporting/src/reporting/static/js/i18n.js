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
    provincePoints: "Các điểm cầu của tỉnh",
    noneInProvince: "Tỉnh này không có điểm cầu nào trong phiên",
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
    unauthorized: "Cần đăng nhập: bấm «Đăng nhập» và nhập mã truy cập được cấp.",
    login: "Đăng nhập",
    logout: "Đăng xuất",
    loginTitle: "Đăng nhập bằng mã truy cập",
    loginToken: "Mã truy cập",
    loginRefused: "Mã truy cập không đúng hoặc đã bị thu hồi.",
    loginThrottled: "Thử sai quá nhiều lần: chờ một phút rồi thử lại.",
    cancel: "Huỷ",
    confirm: "Ghi nhận",
    accountOf: "{name} · {role}",
    role_administrator: "quản trị",
    role_operator: "trực ban",
    role_coordinator: "điều phối tỉnh",
    role_viewer: "chỉ xem",
    respond_acknowledge: "Nhận xử lý",
    respond_assign: "Giao",
    respond_annotate: "Ghi chú",
    respond_resolve: "Đã xử lý",
    handledAcknowledged: "Đã nhận: {by} lúc {time}",
    handledAssigned: "Giao cho {to}",
    handledNote: "{by} lúc {time}: {note}",
    handledResolved: "Đã xử lý: {by} lúc {time}",
    actTitle_assign: "Giao cho người theo dõi",
    actTitle_annotate: "Thêm ghi chú",
    assignTo: "Tên tài khoản",
    noteLabel: "Ghi chú",
    actRefused: "Tài khoản này chỉ được xem.",
    actNotFound: "Không có gì của bạn để xử lý ở đây.",
    actNoAccount: "Không có tài khoản nào tên như vậy.",
    actNotRecorded: "Chưa ghi nhận được (Kafka không sẵn sàng): hãy thử lại.",
    actFailed: "Không ghi nhận được (mã {status}).",
    learnersOf: "{present}/{expected} học viên",
    pointClose: "Đóng",
    pointLearners: "Học viên",
    pointRange: "thấp nhất {min}, cao nhất {max}",
    pointReconnects: "Kết nối lại",
    pointFirstConnected: "Kết nối lần đầu",
    pointLastHeartbeat: "Tín hiệu cuối",
    pointMoments: "Diễn biến trong phiên",
    pointNoMoments: "Chưa có tín hiệu nào trong phiên.",
    pointActions: "Bàn trực đã làm",
    pointNoActions: "Chưa có ai xử lý.",
    pointMissing: "Không có điểm cầu này trong phiên (hoặc ngoài tỉnh được giao).",
    momentLearners: "{count} học viên",
    actionDone_acknowledge: "{by} nhận xử lý",
    actionDone_assign: "{by} giao cho {to}",
    actionDone_annotate: "{by}: {note}",
    actionDone_resolve: "{by} đánh dấu đã xử lý",
    hours: "giờ",
    unknownSince:
      "Chưa rõ trạng thái từ {time}: hệ thống chưa nhận được tín hiệu mới. Không điểm cầu nào bị tính là mất kết nối trong lúc này.",
    unknownNever: "Chưa rõ trạng thái: hệ thống giám sát chưa bắt đầu đánh giá kết nối.",
    staleAsOf:
      "Số liệu lúc {time}, trước khi hệ thống báo cáo khởi động lại; đang cập nhật số liệu hiện tại.",
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
    provincePoints: "The province's points",
    noneInProvince: "No point of this province is in the session",
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
    unauthorized: "Please log in: press “Log in” and enter the access token you were given.",
    login: "Log in",
    logout: "Log out",
    loginTitle: "Log in with your access token",
    loginToken: "Access token",
    loginRefused: "That token is wrong or was revoked.",
    loginThrottled: "Too many failed tries: wait a minute and try again.",
    cancel: "Cancel",
    confirm: "Save",
    accountOf: "{name} · {role}",
    role_administrator: "administrator",
    role_operator: "desk operator",
    role_coordinator: "province coordinator",
    role_viewer: "viewer",
    respond_acknowledge: "Acknowledge",
    respond_assign: "Assign",
    respond_annotate: "Note",
    respond_resolve: "Resolve",
    handledAcknowledged: "Acknowledged by {by} at {time}",
    handledAssigned: "Assigned to {to}",
    handledNote: "{by} at {time}: {note}",
    handledResolved: "Resolved by {by} at {time}",
    actTitle_assign: "Assign to someone",
    actTitle_annotate: "Add a note",
    assignTo: "Account name",
    noteLabel: "Note",
    actRefused: "This account only reads.",
    actNotFound: "Nothing of yours to act on here.",
    actNoAccount: "No account has that name.",
    actNotRecorded: "Not recorded (Kafka is away): try again.",
    actFailed: "Could not record it (status {status}).",
    learnersOf: "{present}/{expected} learners",
    pointClose: "Close",
    pointLearners: "Learners",
    pointRange: "lowest {min}, highest {max}",
    pointReconnects: "Reconnects",
    pointFirstConnected: "First connected",
    pointLastHeartbeat: "Last heartbeat",
    pointMoments: "During the session",
    pointNoMoments: "No heartbeat in this session yet.",
    pointActions: "What the desk did",
    pointNoActions: "Nobody has acted yet.",
    pointMissing: "No such point in this session (or not in your provinces).",
    momentLearners: "{count} learners",
    actionDone_acknowledge: "{by} acknowledged",
    actionDone_assign: "{by} assigned to {to}",
    actionDone_annotate: "{by}: {note}",
    actionDone_resolve: "{by} resolved",
    hours: "h",
    unknownSince:
      "States unknown since {time}: the monitor is not receiving heartbeats. No point is counted as dropped meanwhile.",
    unknownNever: "States unknown: the monitor has not started judging connections yet.",
    staleAsOf: "Figures as of {time}, before reporting restarted; the current ones are on their way.",
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

/** A point's state in words: "connected", "late", "disconnected", "never_connected". */
export function stateText(state) {
  return t(state === "never_connected" ? "neverConnected" : state);
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
