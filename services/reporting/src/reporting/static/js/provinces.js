// The 34 provinces as tiles, coloured by the share of their points connected. A click on a tile
// narrows the list of late and disconnected points to that province.

import { byId, el } from "./dom.js";
import { number, percent, tone } from "./format.js";
import { t } from "./i18n.js";

const tiles = new Map(); // province code -> {tile, name, counts, share}

/** "Thành phố Hồ Chí Minh" -> "Hồ Chí Minh": the tiles are small, and every name is unique. */
export function shortName(name) {
  return name.replace(/^Thành phố /, "");
}

function makeTile(code, name, onPick) {
  const parts = {
    name: el("span", { className: "tile__name", text: shortName(name) }),
    counts: el("span", { className: "tile__counts", text: "—" }),
    share: el("span", { className: "tile__share", text: "" }),
  };
  const tile = el("button", { className: "tile", attrs: { type: "button" }, dataset: { code } }, [
    parts.name,
    el("span", { className: "tile__figures" }, [parts.counts, parts.share]),
  ]);
  tile.dataset.tone = "none";
  tile.addEventListener("click", () => onPick(code));
  return { tile, name, ...parts };
}

export function buildProvinceGrid(names, onPick) {
  const grid = byId("province-grid");
  grid.replaceChildren();
  tiles.clear();
  for (const code of Object.keys(names).sort()) {
    const parts = makeTile(code, names[code], onPick);
    tiles.set(code, parts);
    grid.append(parts.tile);
  }
}

export function renderProvinces(byProvince = {}) {
  for (const [code, parts] of tiles) {
    const counts = byProvince[code];
    const registered = counts ? counts.registered : 0;
    const connected = counts ? counts.connected : 0;
    const share = counts ? counts.connected_share : 0;
    parts.tile.dataset.tone = tone(share, registered);
    parts.counts.textContent = registered ? `${number(connected)}/${number(registered)}` : "—";
    parts.share.textContent = registered ? percent(share) : "";
    parts.tile.title = t("provinceTile", {
      name: parts.name,
      connected: number(connected),
      registered: number(registered),
    });
  }
}

export function markPickedProvince(code) {
  for (const [tileCode, parts] of tiles) {
    parts.tile.classList.toggle("tile--picked", tileCode === code);
  }
}
