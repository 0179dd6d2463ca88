// Widgets both pages share: labelled fields, messages, tables, paged lists, the sign-in form.

import { api, ApiError, get, problemText, signIn } from './api.js';
import { clear, h, nextId } from './dom.js';

export function field(label, input, hint) {
  const id = input.id || nextId('f');
  input.id = id;
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

export const input = (props) => h('input', { type: 'text', ...props });

export function select(name, options, props = {}) {
  return h('select', { name, ...props },
    options.map(([value, text]) => h('option', { value }, text)));
}

export function message() {
  const el = h('div', { class: 'message', 'aria-live': 'polite' });
  el.ok = (text) => clear(el, h('p', { class: 'ok', role: 'status' }, text));
  el.error = (err) => clear(el, h('p', { class: 'error', role: 'alert' },
    typeof err === 'string' ? err : problemText(err)));
  el.reset = () => clear(el);
  return el;
}

export function button(text, onclick, props = {}) {
  return h('button', { type: 'button', onclick, ...props }, text);
}

// Disable the form's controls while its request runs, so one click sends one request.
export async function busy(form, fn) {
  const controls = [...form.querySelectorAll('button, input, select, textarea')];
  const was = controls.map((c) => c.disabled);
  controls.forEach((c) => { c.disabled = true; });
  form.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    controls.forEach((c, i) => { c.disabled = was[i]; });
    form.removeAttribute('aria-busy');
  }
}

export function table(columns, rows, caption) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'group',
                    'aria-label': caption || 'table' },
    h('table', {},
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class || null }, c.label)))),
      h('tbody', {}, rows.map((row) => h('tr', {},
        columns.map((c) => h('td', { class: c.class || null }, c.cell(row))))))));
}

// A list that loads page after page of an API list (cursor pagination) into one table.
export function pagedTable({ columns, load, caption, empty = 'Nothing yet.' }) {
  const wrap = h('div', { class: 'paged' });
  const msg = message();
  let rows = [];
  let cursor = null;
  async function more(first) {
    try {
      const page = await load(first ? null : cursor);
      rows = first ? page.data : rows.concat(page.data);
      cursor = page.next_cursor;
      draw();
    } catch (err) {
      msg.error(err);
    }
  }
  function draw() {
    clear(wrap,
      rows.length ? table(columns, rows, caption) : h('p', { class: 'muted' }, empty),
      cursor ? button('Load more', () => more(false), { class: 'secondary' }) : null,
      msg);
  }
  wrap.reload = () => more(true);
  wrap.reload();
  return wrap;
}

export function heading(text, level = 2) {
  return h(`h${level}`, { tabindex: '-1', class: 'view-title' }, text);
}

export function dl(pairs) {
  return h('dl', { class: 'pairs' },
    pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// The sign-in form. Asks for "Authentication code" when the account uses 2FA.
export function signInForm({ title, onDone, note }) {
  const email = input({ type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = input({ type: 'password', name: 'password',
                           autocomplete: 'current-password', required: true });
  const code = input({ name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code',
                       maxlength: '32' });
  const codeField = field('Authentication code', code,
                          'From your authenticator app (or a recovery code).');
  codeField.hidden = true;
  const msg = message();
  const form = h('form', { class: 'card signin', novalidate: true },
    h('h1', {}, title),
    note ? h('p', { class: 'muted' }, note) : null,
    field('Email', email), field('Password', password), codeField,
    h('button', { type: 'submit' }, 'Sign in'), msg);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    msg.reset();
    await busy(form, async () => {
      try {
        const session = await signIn(email.value.trim(), password.value,
                                     codeField.hidden ? '' : code.value.trim());
        await onDone(session);
      } catch (err) {
        if (err instanceof ApiError && err.code === 'mfa_required') {
          codeField.hidden = false;
          msg.error('This account uses two-factor authentication: enter your code.');
          setTimeout(() => code.focus());
        } else {
          msg.error(err);
        }
      }
    });
  });
  setTimeout(() => email.focus());
  return form;
}

export { api, get };
