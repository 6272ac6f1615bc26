// The split by channel: video bridge, Teams, other; a bar of the points' states for each.

import { byId, el } from "./dom.js";
import { number, percent, tone } from "./format.js";
import { stateText, t } from "./i18n.js";

const CHANNELS = ["video_bridge", "teams", "other"];
const STATES = ["connected", "late", "disconnected", "never_connected"];

function stateBar(counts) {
  const bar = el("div", { className: "stack", attrs: { role: "img" } });
  const parts = [];
  for (const state of STATES) {
    const value = counts[state] ?? 0;
    if (!value) continue;
    const segment = el("span", { className: `stack__part stack__part--${state}` });
    segment.style.flexGrow = String(value);
    bar.append(segment);
    parts.push(`${stateText(state)} ${number(value)}`);
  }
  bar.setAttribute("aria-label", parts.join(", "));
  bar.title = parts.join(" · ");
  return bar;
}

/** The channel's name in the current language; an unknown channel goes by its own name. */
export function channelLabel(channel) {
  const key = `channel.${channel}`;
  const label = t(key);
  return label === key ? channel : label;
}

function channelHead(channel, counts) {
  const registered = counts.registered ?? 0;
  return el("div", { className: "channel__head" }, [
    el("span", { className: "channel__name", text: channelLabel(channel) }),
    el("span", {
      className: "channel__share",
      text: registered ? percent(counts.connected_share) : t("channelEmpty"),
      dataset: { tone: tone(counts.connected_share, registered) },
    }),
  ]);
}

function channelDetail(counts) {
  return el("div", { className: "channel__detail" }, [
    el("span", {
      text: t("channelPoints", {
        connected: number(counts.connected),
        registered: number(counts.registered),
      }),
    }),
    el("span", {
      text: t("channelLearners", {
        present: number(counts.learners_present),
        expected: number(counts.learners_expected),
      }),
    }),
  ]);
}

function channelRow(channel, counts) {
  const row = el("div", { className: "channel", dataset: { channel } }, [
    channelHead(channel, counts),
  ]);
  if (counts.registered) row.append(stateBar(counts), channelDetail(counts));
  else row.classList.add("channel--empty");
  return row;
}

export function renderChannels(byChannel = {}) {
  const known = [...CHANNELS, ...Object.keys(byChannel).filter((c) => !CHANNELS.includes(c))];
  byId("channel-list").replaceChildren(
    ...known.map((channel) => channelRow(channel, byChannel[channel] ?? {})),
  );
}
