// Building the page from data safely: text always goes in through textContent, never as HTML.

export function byId(id) {
  return document.getElementById(id);
}

/** An element with a class, text, attributes and children: `el("li", {className, text}, [...])`. */
export function el(tag, { className, text, title, attrs = {}, dataset = {} } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (title) node.title = title;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  Object.assign(node.dataset, dataset);
  for (const child of children) if (child) node.append(child);
  return node;
}

/** Set a figure's text and its raw value (`data-value`, for machines and tests). */
export function setFigure(id, value, text) {
  const node = byId(id);
  node.dataset.value = value === null || value === undefined ? "" : String(value);
  node.textContent = text;
}

export function setText(id, text) {
  byId(id).textContent = text;
}
