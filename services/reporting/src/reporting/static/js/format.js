// Numbers, shares, times and durations, in the current language. Times are shown in Viet Nam's
// zone whatever the zone of the machine showing the page.

import { locale, t } from "./i18n.js";

export const TIME_ZONE = "Asia/Ho_Chi_Minh";

const cache = new Map();

function formatter(kind, make) {
  const key = `${kind}:${locale()}`;
  if (!cache.has(key)) cache.set(key, make(locale()));
  return cache.get(key);
}

export function number(value) {
  if (value === null || value === undefined) return "—";
  return formatter("int", (l) => new Intl.NumberFormat(l, { maximumFractionDigits: 0 })).format(value);
}

/** A share 0..1 (above 1 when rooms are fuller than planned) as a percentage. */
export function percent(share) {
  if (share === null || share === undefined) return "—";
  return formatter(
    "pct",
    (l) => new Intl.NumberFormat(l, { style: "percent", maximumFractionDigits: 1 }),
  ).format(share);
}

export function compact(value) {
  return formatter(
    "compact",
    (l) => new Intl.NumberFormat(l, { notation: "compact", maximumFractionDigits: 1 }),
  ).format(value);
}

/** "08:15:20" in Viet Nam's time; "—" without a time. */
export function clock(iso) {
  if (!iso) return "—";
  return formatter(
    "clock",
    (l) =>
      new Intl.DateTimeFormat(l, {
        timeZone: TIME_ZONE,
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        hourCycle: "h23",
      }),
  ).format(new Date(iso));
}

/** "08:15" in Viet Nam's time, from seconds since the epoch (chart axes). */
export function hourMinute(seconds) {
  return formatter(
    "hm",
    (l) =>
      new Intl.DateTimeFormat(l, {
        timeZone: TIME_ZONE,
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      }),
  ).format(new Date(seconds * 1000));
}

/** "08:15:20" in Viet Nam's time, from seconds since the epoch (chart axes of short spans). */
export function hourMinuteSecond(seconds) {
  return clock(new Date(seconds * 1000).toISOString());
}

/** "23/11 08:00" in Viet Nam's time (the session picker). */
export function dayAndTime(iso) {
  const parts = formatter(
    "day",
    (l) => new Intl.DateTimeFormat(l, { timeZone: TIME_ZONE, day: "2-digit", month: "2-digit" }),
  ).formatToParts(new Date(iso));
  const part = (type) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("day")}/${part("month")} ${hourMinute(Date.parse(iso) / 1000)}`;
}

/** How long, from milliseconds: "07:42" (mm:ss) under an hour, "1:05 h" (h:mm) past it. */
export function duration(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const pad = (n) => String(n).padStart(2, "0");
  if (seconds < 3600) return `${pad(Math.floor(seconds / 60))}:${pad(seconds % 60)}`;
  const hours = Math.floor(seconds / 3600);
  return `${hours}:${pad(Math.floor((seconds % 3600) / 60))} ${t("hours")}`;
}

/** Tone of a share of points connected: the colour band of tiles and figures. */
export function tone(share, registered) {
  if (!registered) return "none";
  if (share >= 0.9) return "good";
  if (share >= 0.7) return "warn";
  return "bad";
}
