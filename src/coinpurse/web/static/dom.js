// The only way our pages build DOM: elements and text nodes, never HTML strings, so text
// from users (gift messages, descriptions, KYC fields) can never become markup or script.

export function h(tag, props, ...children) {
  const el = tag.includes(':')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.split(':')[1])
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.setAttribute('class', value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'href' && !/^(\/|https?:|#|blob:)/.test(String(value))) {
      throw new Error('refusing a link that is not http(s) or same-site');
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  add(el, children);
  return el;
}

export const svg = (tag, props, ...children) => h('svg:' + tag, props, ...children);

function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;
