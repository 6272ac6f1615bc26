// The registry's pages: log in, pick or create a course, its sessions, import its points from a
// CSV (a dry run first: every bad row with its line and reason, and what the import would do),
// print the token sheets, and find, deactivate and re-token points. Everything goes through the
// registry's own API, the login's cookie saying who asks.

const TEXTS = {
  vi: {
    title: "Chuẩn bị khoá học", course: "Khoá học", logout: "Đăng xuất", lang: "English",
    loginTitle: "Đăng nhập", token: "Mã truy cập", login: "Đăng nhập",
    loginRefused: "Mã truy cập không đúng hoặc đã bị thu hồi.", loginThrottled: "Thử sai quá nhiều lần: chờ một phút.",
    newCourse: "Khoá học mới", code: "Mã", courseTitle: "Tên khoá học", create: "Tạo",
    sessions: "Các phiên", sessionTitle: "Tên phiên", topic: "Chuyên đề", starts: "Bắt đầu", ends: "Kết thúc",
    import: "Nhập điểm cầu từ tệp CSV", drop: "Thả tệp CSV vào đây, hoặc bấm để chọn tệp",
    line: "Dòng", reason: "Lý do",
    wouldDo: "{file}: {rows} dòng, {valid} hợp lệ — sẽ tạo {created}, cập nhật {updated}, giữ nguyên {unchanged}.",
    badRows: " {errors} dòng lỗi (bên dưới): sửa tệp rồi thả lại, hoặc chỉ nhập các dòng hợp lệ.",
    importAll: "Nhập {valid} điểm cầu", importGood: "Chỉ nhập {valid} dòng hợp lệ",
    imported: "Đã nhập: tạo {created}, cập nhật {updated}, giữ nguyên {unchanged}. In phiếu kết nối để trao mã cho từng điểm cầu.",
    sheets: "In phiếu kết nối", provinceCode: "Mã tỉnh (để trống: cả nước)", again: "In lại cả phiếu đã in", print: "In phiếu",
    printed: "Đã in {printed} phiếu ({replaced} phiếu in lại); {skipped} điểm cầu đã có phiếu nên không in lại.",
    againConfirm: "In lại sẽ thay mã của các phiếu đã phát: đường dẫn trên phiếu cũ không còn dùng được. Tiếp tục?",
    download: "Tải tệp PDF: {name}",
    points: "Điểm cầu", search: "Tìm: tên, mã hoặc người phụ trách", name: "Tên", province: "Tỉnh", state: "Trạng thái",
    active: "Đang dùng", inactive: "Đã tắt", noToken: "chưa có mã",
    deactivate: "Tắt", activate: "Bật", rotate: "Cấp mã mới", revoke: "Thu hồi mã",
    rotateConfirm: "Cấp mã mới cho {code}? Mã cũ ngừng hoạt động ngay.",
    revokeConfirm: "Thu hồi mã của {code}? Điểm cầu không gửi tín hiệu được nữa cho đến khi có mã mới.",
    newToken: "Mã mới của {code} (chỉ hiện một lần): {token}",
    page: "{from}–{to} / {total}", failed: "Không thực hiện được ({status}): {detail}",
    provinceShort: "Mã tỉnh", anyChannel: "Mọi kênh", videoBridge: "Cầu truyền hình", otherChannel: "Khác",
    anyLevel: "Mọi cấp", levelProvince: "Tỉnh", levelCommune: "Xã", levelWard: "Phường", levelZone: "Đặc khu",
    levelOther: "Khác", anyState: "Mọi trạng thái",
    edit: "Sửa", editTitle: "Sửa điểm cầu {code}", host: "Người phụ trách", phone: "Điện thoại",
    expected: "Học viên dự kiến", courses: "Khoá học (mã, cách nhau bằng dấu phẩy)",
    relaysFor: "Chuyển tiếp tín hiệu cho các tỉnh (mã, cách nhau bằng dấu phẩy)", cancel: "Huỷ", save: "Lưu",
    gateway: "chuyển tiếp cho {provinces}",
    levelLabel: "Cấp", channelLabel: "Kênh", unitCode: "Mã xã, phường, đặc khu",
    printing: "Đang tạo tệp PDF ({scope})… cả nước mất khoảng một phút.", wholeCountry: "cả nước",
  },
  en: {
    title: "Course preparation", course: "Course", logout: "Log out", lang: "Tiếng Việt",
    loginTitle: "Log in", token: "Access token", login: "Log in",
    loginRefused: "That token is wrong or was revoked.", loginThrottled: "Too many failed tries: wait a minute.",
    newCourse: "New course", code: "Code", courseTitle: "Course title", create: "Create",
    sessions: "Sessions", sessionTitle: "Session title", topic: "Topic", starts: "Starts", ends: "Ends",
    import: "Import points from a CSV file", drop: "Drop a CSV file here, or click to choose one",
    line: "Line", reason: "Reason",
    wouldDo: "{file}: {rows} rows, {valid} valid — would create {created}, update {updated}, leave {unchanged} unchanged.",
    badRows: " {errors} bad rows (below): fix the file and drop it again, or import the good rows only.",
    importAll: "Import {valid} points", importGood: "Import the {valid} good rows only",
    imported: "Imported: {created} created, {updated} updated, {unchanged} unchanged. Print the sheets to hand each point its link.",
    sheets: "Print the token sheets", provinceCode: "Province code (empty: the whole country)", again: "Also reprint sheets printed before", print: "Print",
    printed: "{printed} sheets printed ({replaced} reprinted); {skipped} points already had a sheet and were left out.",
    againConfirm: "Reprinting replaces the tokens of sheets handed out: their links stop working. Go on?",
    download: "Download the PDF: {name}",
    points: "Points", search: "Search: name, code or host", name: "Name", province: "Province", state: "State",
    active: "Active", inactive: "Deactivated", noToken: "no token",
    deactivate: "Deactivate", activate: "Activate", rotate: "New token", revoke: "Revoke token",
    rotateConfirm: "A new token for {code}? The old one stops working at once.",
    revokeConfirm: "Revoke the token of {code}? It cannot send heartbeats until it gets a new one.",
    newToken: "New token of {code} (shown once): {token}",
    page: "{from}–{to} of {total}", failed: "Not done ({status}): {detail}",
    provinceShort: "Province", anyChannel: "Any channel", videoBridge: "Video bridge", otherChannel: "Other",
    anyLevel: "Any level", levelProvince: "Province", levelCommune: "Commune", levelWard: "Ward",
    levelZone: "Special zone", levelOther: "Other", anyState: "Any state",
    edit: "Edit", editTitle: "Edit point {code}", host: "Host", phone: "Phone",
    expected: "Expected learners", courses: "Courses (codes, separated by commas)",
    relaysFor: "Relays heartbeats for the provinces (codes, separated by commas)", cancel: "Cancel", save: "Save",
    gateway: "relays for {provinces}",
    levelLabel: "Level", channelLabel: "Channel", unitCode: "Commune, ward or zone code",
    printing: "Making the PDF ({scope})… the whole country takes about a minute.", wholeCountry: "whole country",
  },
};
const PAGE = 50;

let lang = localStorage.getItem("registry.lang") === "en" ? "en" : "vi";
const state = { course: null, offset: 0, filters: {}, file: null, preview: null, editing: null };
const byId = (id) => document.getElementById(id);

function t(key, params = {}) {
  return (TEXTS[lang][key] ?? key).replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

class Refusal extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, { method = "GET", json, body, type, query } = {}) {
  const target = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  const init = { method, cache: "no-store", headers: {} };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.headers["Content-Type"] = type;
    init.body = body;
  }
  const response = await fetch(target, init);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const answer = await response.json();
      detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail ?? answer);
    } catch {
      // the status says it
    }
    throw new Refusal(response.status, detail);
  }
  return response;
}

const json = async (path, options) => (await api(path, options)).json();

function say(text) {
  const box = byId("message");
  box.textContent = text;
  box.hidden = !text;
}

function failed(error) {
  say(t("failed", { status: error.status ?? "—", detail: error.detail ?? error.message }));
}

function translate() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  for (const node of document.querySelectorAll("[data-tp]")) node.placeholder = t(node.dataset.tp);
  byId("lang").textContent = t("lang");
}

// ---- login ---------------------------------------------------------------------------------

async function who() {
  try {
    return await json("v1/me");
  } catch {
    return null;
  }
}

function showLogin(problem = "") {
  byId("app").hidden = true;
  byId("logout").hidden = true;
  byId("account").textContent = "";
  byId("login").hidden = false;
  say(problem);
}

async function logIn(event) {
  event.preventDefault();
  try {
    await json("v1/login", { method: "POST", json: { token: byId("login-token").value.trim() } });
  } catch (error) {
    showLogin(t(error.status === 429 ? "loginThrottled" : "loginRefused"));
    return;
  }
  byId("login-token").value = "";
  await start();
}

// ---- courses and sessions --------------------------------------------------------------------

async function loadCourses(pick) {
  const courses = await json("v1/courses");
  const select = byId("course-select");
  select.replaceChildren(...courses.map((c) => el("option", `${c.code} — ${c.title}`, { value: c.code })));
  const wanted = pick ?? new URLSearchParams(location.search).get("course") ?? courses[0]?.code;
  if (wanted) select.value = wanted;
  await openCourse(select.value || null);
}

async function openCourse(code) {
  state.course = code;
  state.offset = 0;
  const params = new URLSearchParams(location.search);
  if (code) params.set("course", code);
  history.replaceState(null, "", `${location.pathname}?${params}`);
  await Promise.all([loadSessions(), loadPoints()]);
}

const inVietnam = (iso) =>
  new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: "Asia/Ho_Chi_Minh", dateStyle: "short", timeStyle: "short",
  }).format(new Date(iso));

async function loadSessions() {
  const rows = state.course ? await json("v1/sessions", { query: { course: state.course } }) : [];
  byId("session-rows").replaceChildren(
    ...rows.map((s) => {
      const row = el("tr");
      row.append(el("td", s.code), el("td", s.title), el("td", inVietnam(s.starts_at)), el("td", inVietnam(s.ends_at)));
      return row;
    }),
  );
}

async function createCourse(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await json("v1/courses", { method: "POST", json: { code: form.get("code"), title: form.get("title") } });
  } catch (error) {
    failed(error);
    return;
  }
  say("");
  event.target.reset();
  await loadCourses(form.get("code"));
}

async function createSession(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  // The times typed are Viet Nam's, whatever this computer's zone.
  const vietnam = (local) => `${local}:00+07:00`;
  const body = {
    code: form.get("code"),
    course_code: state.course,
    title: form.get("title"),
    topic: form.get("topic"),
    starts_at: vietnam(form.get("starts_at")),
    ends_at: vietnam(form.get("ends_at")),
  };
  try {
    await json("v1/sessions", { method: "POST", json: body });
  } catch (error) {
    failed(error);
    return;
  }
  say("");
  event.target.reset();
  await loadSessions();
}

// ---- import ------------------------------------------------------------------------------------

async function importFile(file, { dryRun, partial = false }) {
  const answer = await api("v1/points/import", {
    method: "POST",
    body: await file.arrayBuffer(),
    type: "text/csv",
    query: { course: state.course, dry_run: dryRun, partial },
  });
  return answer.json();
}

async function preview(file) {
  state.file = file;
  byId("import-result").hidden = true;
  let report;
  try {
    report = await importFile(file, { dryRun: true });
  } catch (error) {
    failed(error);
    return;
  }
  say("");
  state.preview = report;
  const box = byId("preview");
  box.hidden = false;
  const bad = report.errors.length > 0;
  box.toggleAttribute("data-bad", bad);
  byId("preview-counts").textContent =
    t("wouldDo", { file: file.name, ...report }) + (bad ? t("badRows", { errors: report.errors.length }) : "");
  byId("preview-errors-table").hidden = !bad;
  byId("preview-errors").replaceChildren(
    ...report.errors.map((e) => {
      const row = el("tr");
      row.append(el("td", e.line), el("td", e.code), el("td", e.reason));
      return row;
    }),
  );
  const button = byId("import-button");
  button.textContent = t(bad ? "importGood" : "importAll", report);
  button.hidden = report.valid === 0;
}

async function importPreviewed() {
  const partial = state.preview.errors.length > 0;
  let report;
  try {
    report = await importFile(state.file, { dryRun: false, partial });
  } catch (error) {
    failed(error);
    return;
  }
  byId("preview").hidden = true;
  const result = byId("import-result");
  result.textContent = t("imported", report);
  result.hidden = false;
  await loadPoints();
}

function watchDrop() {
  const drop = byId("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.dataset.over = "";
  });
  drop.addEventListener("dragleave", () => delete drop.dataset.over);
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    delete drop.dataset.over;
    const [file] = event.dataTransfer.files;
    if (file) preview(file);
  });
  byId("file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) preview(file);
    event.target.value = ""; // the same file, fixed, can be chosen again
  });
  byId("import-button").addEventListener("click", importPreviewed);
}

// ---- sheets ------------------------------------------------------------------------------------

async function printSheets(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const again = form.get("again") === "on";
  if (again && !confirm(t("againConfirm"))) return;
  const button = event.target.querySelector("button[type=submit]");
  const result = byId("sheets-result");
  result.textContent = t("printing", { scope: form.get("province") || t("wholeCountry") });
  result.hidden = false;
  button.disabled = true; // one printing at a time: each one issues new tokens
  let answer;
  try {
    answer = await api(`v1/courses/${encodeURIComponent(state.course)}/sheets`, {
      method: "POST",
      query: { province: form.get("province"), again },
    });
  } catch (error) {
    result.hidden = true;
    failed(error);
    return;
  } finally {
    button.disabled = false;
  }
  say("");
  const counts = Object.fromEntries(
    ["Printed", "Replaced", "Skipped"].map((h) => [h.toLowerCase(), answer.headers.get(`X-Sheets-${h}`)]),
  );
  result.textContent = t("printed", counts);
  result.hidden = false;
  const name = (answer.headers.get("Content-Disposition") ?? "").match(/filename="([^"]+)"/)?.[1] ?? "sheets.pdf";
  const link = byId("sheets-link");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(await answer.blob());
  link.download = name;
  link.textContent = t("download", { name });
  link.hidden = false;
  await loadPoints();
}

// ---- points ------------------------------------------------------------------------------------

async function loadPoints() {
  if (!state.course) {
    byId("point-rows").replaceChildren();
    return;
  }
  const page = await json("v1/points", {
    query: { ...state.filters, course: state.course, offset: state.offset, limit: PAGE },
  });
  byId("point-rows").replaceChildren(...page.items.map(pointRow));
  const to = Math.min(page.total, state.offset + page.items.length);
  byId("page").textContent = t("page", { from: page.total ? state.offset + 1 : 0, to, total: page.total });
  byId("prev").disabled = state.offset === 0;
  byId("next").disabled = to >= page.total;
}

function pointRow(point) {
  const row = el("tr", null, { "data-code": point.code });
  const relays = point.relays_for?.length ? t("gateway", { provinces: point.relays_for.join(", ") }) : null;
  const standing = [t(point.active ? "active" : "inactive"), point.has_token ? null : t("noToken"), relays];
  const status = el("td", standing.filter(Boolean).join(" · "), { class: point.active ? "" : "state--inactive" });
  const actions = el("td", null, { class: "actions" });
  const act = (key, handler) => {
    const button = el("button", t(key), { type: "button", "data-action": key });
    button.addEventListener("click", handler);
    actions.append(button);
  };
  act("edit", () => edit(point));
  act(point.active ? "deactivate" : "activate", () => change(point, { active: !point.active }));
  act("rotate", () => rotate(point));
  if (point.has_token) act("revoke", () => revoke(point));
  row.append(el("td", point.code), el("td", point.name), el("td", point.province_code ?? ""), status, actions);
  return row;
}

async function change(point, fields) {
  try {
    await json(`v1/points/${encodeURIComponent(point.code)}`, { method: "PATCH", json: fields });
  } catch (error) {
    failed(error);
    return false;
  }
  await loadPoints();
  return true;
}

const codes = (text) => text.split(",").map((code) => code.trim()).filter(Boolean);

function edit(point) {
  state.editing = point;
  const form = byId("edit-form");
  byId("edit-title").textContent = t("editTitle", point);
  for (const name of ["name", "level", "channel", "province_code", "unit_code", "host", "phone", "expected_learners"]) {
    form.elements[name].value = point[name] ?? "";
  }
  form.elements.courses.value = point.courses.join(", ");
  form.elements.relays_for.value = (point.relays_for ?? []).join(", ");
  byId("edit-error").hidden = true;
  byId("edit-dialog").showModal();
}

async function saveEdit(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const fields = {
    name: form.get("name"),
    level: form.get("level"),
    channel: form.get("channel"),
    province_code: form.get("province_code").trim() || null,
    unit_code: form.get("unit_code").trim() || null,
    host: form.get("host"),
    phone: form.get("phone"),
    expected_learners: Number(form.get("expected_learners")) || 0,
    courses: codes(form.get("courses")),
    relays_for: codes(form.get("relays_for")),
  };
  try {
    await json(`v1/points/${encodeURIComponent(state.editing.code)}`, { method: "PATCH", json: fields });
  } catch (error) {
    const box = byId("edit-error");
    box.textContent = t("failed", { status: error.status, detail: error.detail });
    box.hidden = false;
    return;
  }
  byId("edit-dialog").close();
  await loadPoints();
}

async function rotate(point) {
  if (!confirm(t("rotateConfirm", point))) return;
  try {
    const issued = await json(`v1/points/${encodeURIComponent(point.code)}/token`, { method: "POST" });
    say(t("newToken", issued));
  } catch (error) {
    failed(error);
  }
  await loadPoints();
}

async function revoke(point) {
  if (!confirm(t("revokeConfirm", point))) return;
  try {
    await api(`v1/points/${encodeURIComponent(point.code)}/token`, { method: "DELETE" });
  } catch (error) {
    failed(error);
  }
  await loadPoints();
}

// ---- start ---------------------------------------------------------------------------------------

async function start() {
  const me = await who();
  if (!me) {
    showLogin();
    return;
  }
  byId("login").hidden = true;
  byId("app").hidden = false;
  byId("logout").hidden = false;
  byId("account").textContent = `${me.name} · ${me.role}`;
  await loadCourses();
}

function main() {
  translate();
  byId("lang").addEventListener("click", () => {
    lang = lang === "vi" ? "en" : "vi";
    localStorage.setItem("registry.lang", lang);
    translate();
    loadPoints();
  });
  byId("login").addEventListener("submit", logIn);
  byId("logout").addEventListener("click", async () => {
    await api("v1/logout", { method: "POST" }).catch(() => null);
    showLogin();
  });
  byId("course-select").addEventListener("change", (event) => openCourse(event.target.value));
  byId("course-form").addEventListener("submit", createCourse);
  byId("session-form").addEventListener("submit", createSession);
  byId("sheets-form").addEventListener("submit", printSheets);
  let typing = null;
  const filtersChanged = () => {
    clearTimeout(typing);
    // once typing pauses: a request per key would race its own answers
    typing = setTimeout(() => {
      state.filters = Object.fromEntries(
        [...new FormData(byId("filters"))].map(([name, value]) => [name, value.trim()]),
      );
      state.offset = 0;
      loadPoints();
    }, 300);
  };
  byId("filters").addEventListener("input", filtersChanged);
  byId("filters").addEventListener("submit", (event) => event.preventDefault());
  byId("edit-form").addEventListener("submit", saveEdit);
  byId("edit-cancel").addEventListener("click", () => byId("edit-dialog").close());
  byId("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    loadPoints();
  });
  byId("next").addEventListener("click", () => {
    state.offset += PAGE;
    loadPoints();
  });
  watchDrop();
  start();
}

main();
