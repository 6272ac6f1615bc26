// Open incidents (a province or a channel losing many points at once) as banners on top.

import { channelLabel } from "./channels.js";
import { byId, el } from "./dom.js";
import { clock, number } from "./format.js";
import { handlingRow } from "./handling.js";
import { t } from "./i18n.js";

const MAX_BANNERS = 3;

function incidentText(incident, provinceNames) {
  const params = { count: number(incident.points), time: clock(incident.opened_at) };
  if (incident.kind === "province") {
    return t("incidentProvince", { ...params, group: provinceNames[incident.group] ?? incident.group });
  }
  return t("incidentChannel", { ...params, group: channelLabel(incident.group) });
}

/** One row of banners at most: the first few incidents, then a count of the others. */
export function renderIncidents(incidents, provinceNames, mayRespond = false) {
  const shown = incidents
    .slice(0, MAX_BANNERS)
    .map((incident) => banner(incident, provinceNames, mayRespond));
  const hidden = incidents.length - shown.length;
  if (hidden > 0) {
    shown.push(el("div", { className: "incident incident--more", text: t("moreIncidents", { count: hidden }) }));
  }
  byId("incidents").replaceChildren(...shown);
}

function banner(incident, provinceNames, mayRespond) {
  const text = incidentText(incident, provinceNames);
  return el(
    "div",
    {
      className: "incident",
      title: text,
      attrs: { role: "alert" },
      dataset: { kind: incident.kind, group: incident.group, subject: incident.subject, label: text },
    },
    [
      el("span", { className: "incident__icon", text: "⚠", attrs: { "aria-hidden": "true" } }),
      el("span", { className: "incident__text", text }),
      handlingRow(incident.handling, mayRespond),
    ],
  );
}
