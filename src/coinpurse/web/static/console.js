// The admin console: dashboard, transactions, a user's ledger, approvals, service keys,
// payments, shop orders and the audit log. Admins act; auditors see everything and get no controls
// (and the API refuses them anyway). Every action is a call to /admin/v1.

import { api, ApiError, get, newKey, onSignedOut, problemText, query, signOut } from './api.js';
import { dailyChart } from './chart.js';
import { clear, h } from './dom.js';
import { formatAmount, formatDate, formatPrice, parseAmount } from './format.js';
import { refundForm } from './shop.js';
import {
  busy, button, dl, field, heading, input, message, pagedTable, select, signInForm, table,
} from './ui.js';

const root = document.getElementById('app');
const s = { me: null, scales: {}, currencies: [] };
const VIEWS = {
  '': viewDashboard, transactions: viewTransactions, users: viewUsers,
  approvals: viewApprovals, keys: viewKeys, payments: viewPayments, orders: viewOrders,
  audit: viewAudit,
};
const NAV = [['Dashboard', ''], ['Transactions', 'transactions'], ['Users', 'users'],
  ['Approvals', 'approvals'], ['Keys', 'keys'], ['Payments', 'payments'], ['Orders', 'orders'],
  ['Audit log', 'audit']];

const canWrite = () => s.me && s.me.role === 'admin';
const money = (amount, currency) => `${formatAmount(amount, s.scales[currency] ?? 0)} ${currency}`;
const json = (value) => JSON.stringify(value, null, 2);

function route() {
  const parts = location.pathname.replace(/^\/console\/?/, '').split('/');
  return { name: parts[0] in VIEWS ? parts[0] : '', arg: decodeURIComponent(parts[1] || '') };
}

function go(name, arg = '') {
  history.pushState({}, '', `/console${name ? '/' + name : ''}${arg ? '/' + encodeURIComponent(arg) : ''}`);
  show();
}

window.addEventListener('popstate', () => show());
onSignedOut(() => signedOut());

async function start() {
  try {
    s.me = await api('GET', '/api/v1/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signedOut();
    return fatal(problemText(err));
  }
  if (!['admin', 'auditor'].includes(s.me.role)) {
    return fatal('The console is for admins and auditors. Your wallet is at /wallet.', true);
  }
  if (!s.me.mfa) {
    return fatal(s.me.totp_enabled
      ? 'Sign in again with your authentication code to use the console.'
      : 'Admins and auditors need two-factor authentication: set it up on the wallet\'s '
        + 'Security page, then sign in here again with a code.', true);
  }
  const cur = await get('/api/v1/currencies');
  s.currencies = cur.data;
  s.scales = Object.fromEntries(cur.data.map((c) => [c.code, c.scale]));
  layout();
}

function fatal(text, withSignOut) {
  clear(root, h('main', { id: 'main', class: 'narrow' },
    h('div', { class: 'card' }, h('h1', {}, 'Coinpurse console'), h('p', { role: 'alert' }, text),
      h('p', {}, h('a', { href: '/wallet/security' }, 'Security page')),
      withSignOut ? button('Sign out', doSignOut) : null)));
}

function signedOut() {
  s.me = null;
  // Already asking (a 401 signs out twice: in api() and in its caller): keep what was typed.
  if (root.querySelector('form.signin')) return;
  clear(root, h('main', { id: 'main', class: 'narrow' }, signInForm({
    title: 'Coinpurse console',
    note: 'For admins and auditors, with two-factor authentication.',
    onDone: () => start(),
  })));
}

async function doSignOut() {
  try {
    await signOut();
  } catch (err) {
    // Already signed out.
  }
  history.replaceState({}, '', '/console');
  signedOut();
}

let viewEl;

function layout() {
  viewEl = h('div', { class: 'view' });
  const nav = h('nav', { 'aria-label': 'Console' }, NAV.map(([text, name]) =>
    h('a', { href: `/console${name ? '/' + name : ''}`, 'data-view': name,
             onclick: (e) => { e.preventDefault(); go(name); } }, text)));
  clear(root,
    h('header', { class: 'bar' },
      h('a', { class: 'brand', href: '/console' }, 'Coinpurse console'), nav,
      h('span', { class: 'who' }, s.me.email || s.me.id, ' ',
        h('span', { class: 'role' }, s.me.role)),
      button('Sign out', doSignOut, { class: 'secondary' })),
    h('main', { id: 'main' },
      canWrite() ? null : h('p', { class: 'readonly-note', role: 'note' },
        'Auditor: you can see everything and change nothing.'),
      viewEl));
  show();
}

function show() {
  const { name, arg } = route();
  clear(viewEl);
  for (const a of root.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  VIEWS[name](viewEl, arg);
  const title = viewEl.querySelector('.view-title');
  if (title && document.activeElement && document.activeElement !== document.body) title.focus();
}

const badge = (status) => h('span', { class: `badge ${status}` }, status);
const currencyOptions = (all = 'All currencies') => [['', all],
  ...s.currencies.map((c) => [c.code, c.code])];

// ---------------------------------------------------------------- dashboard

function viewDashboard(el) {
  const msg = message();
  const pending = h('div', { class: 'stats' });
  const charts = h('div', { class: 'charts' });
  const days = select('days', [['30', '30 days'], ['7', '7 days'], ['90', '90 days']]);
  el.append(heading('Dashboard'), h('h3', {}, 'Waiting for a decision'), pending,
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field('Period', days)),
    charts, msg);
  days.addEventListener('change', drawCharts);

  get('/admin/v1/stats/pending').then((p) => {
    const stat = (label, n, href) => h('div', { class: 'card stat' },
      h('p', { class: 'big' }, String(n)),
      h('a', { href, onclick: (e) => { e.preventDefault(); go('approvals'); } }, label));
    clear(pending, stat('Withdrawals', p.withdrawals, '/console/approvals'),
      stat('KYC submissions', p.kyc_submissions, '/console/approvals'),
      stat('Adjustments', p.adjustments, '/console/approvals'));
  }, (err) => msg.error(err));

  async function drawCharts() {
    let daily;
    let totals;
    try {
      [daily, totals] = await Promise.all([
        get('/admin/v1/stats/daily', { days: days.value }), get('/admin/v1/stats')]);
    } catch (err) {
      return msg.error(err);
    }
    const index = Object.fromEntries(daily.days.map((d, i) => [d, i]));
    const zero = () => daily.days.map(() => 0);
    const perCurrency = {};
    const of = (c) => (perCurrency[c] ||= { volume: zero(), topup: zero(), withdrawal: zero(), gift: zero(), purchase: zero(), fees: zero() });
    for (const r of daily.volume) {
      const i = index[r.date];
      if (i === undefined) continue;
      const series = of(r.currency);
      series.volume[i] += r.amount;
      if (r.kind in series) series[r.kind][i] += r.amount;
    }
    for (const r of daily.fees) {
      if (index[r.date] !== undefined) of(r.currency).fees[index[r.date]] += r.amount;
    }
    const cards = s.currencies.map((c) => {
      const t = totals.currencies[c.code];
      const series = perCurrency[c.code] || of(c.code);
      const fmt = (v) => formatAmount(v, c.scale);
      const quiet = !series.volume.some((v) => v) && !series.fees.some((v) => v);
      return [
        quiet ? h('div', { class: 'card' }, h('h3', {}, `${c.code}: volume per day`),
          h('p', { class: 'muted' }, `No activity in the last ${daily.days.length} days.`)) : dailyChart({
          title: `${c.code}: volume per day`, days: daily.days, format: fmt,
          bars: { name: 'All volume', values: series.volume, cls: 's-volume' },
          lines: [{ name: 'Top-ups', values: series.topup, cls: 's-topup' },
            { name: 'Withdrawals', values: series.withdrawal, cls: 's-withdrawal' },
            { name: 'Gifts', values: series.gift, cls: 's-gift' },
            { name: 'Shop sales', values: series.purchase, cls: 's-purchase' },
            { name: 'Fees', values: series.fees, cls: 's-fees' }],
        }),
        t ? h('div', { class: 'card' }, h('h3', {}, `${c.code} now`), dl([
          ['In users\' wallets', fmt(t.in_user_wallets)], ['Held', fmt(t.held)],
          ['Volume, 24 h', fmt(Object.values(t.volume_24h).reduce((a, b) => a + b, 0))],
          ['Transactions, 24 h', String(Object.values(t.count_24h).reduce((a, b) => a + b, 0))]])) : null,
      ];
    });
    clear(charts, cards, h('div', { class: 'card' }, h('h3', {}, 'Users'),
      dl([['Users with a wallet', String(totals.users_with_wallet)]])));
  }
  drawCharts();
}

// ---------------------------------------------------------------- transactions

const isoFromLocal = (value) => (value ? new Date(value).toISOString() : '');

function viewTransactions(el) {
  const f = {
    user_id: input({ name: 'user_id', maxlength: '128' }),
    address: input({ name: 'address', maxlength: '255' }),
    currency: select('currency', currencyOptions()),
    kind: input({ name: 'kind', maxlength: '32' }),
    service: input({ name: 'service', maxlength: '64' }),
    reference_id: input({ name: 'reference_id', maxlength: '64' }),
    created_from: input({ name: 'created_from', type: 'datetime-local' }),
    created_to: input({ name: 'created_to', type: 'datetime-local' }),
    amount_min: input({ name: 'amount_min', inputmode: 'numeric' }),
    amount_max: input({ name: 'amount_max', inputmode: 'numeric' }),
  };
  const msg = message();
  const results = h('div', {});
  const form = h('form', { class: 'filters card' },
    field('User id', f.user_id), field('Address', f.address), field('Currency', f.currency),
    field('Kind', f.kind), field('Service', f.service), field('Reference', f.reference_id),
    field('From', f.created_from), field('To', f.created_to),
    field('Min amount', f.amount_min, 'Minor units'), field('Max amount', f.amount_max, 'Minor units'),
    h('button', { type: 'submit' }, 'Search'));
  el.append(heading('Transactions'), form, msg, results);

  function params() {
    const p = {};
    for (const [k, inp] of Object.entries(f)) {
      const v = inp.value.trim();
      if (v) p[k] = k.startsWith('created_') ? isoFromLocal(v) : v;
    }
    return p;
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); search(); });

  let searches = 0;
  async function search() {
    msg.reset();
    const p = params();
    const mine = ++searches;
    let first;
    try {
      first = await get('/admin/v1/transactions', { ...p, limit: 50 });
    } catch (err) {
      return msg.error(err);
    }
    if (mine !== searches) return; // a newer search has started: its answer wins
    const list = pagedTable({
      caption: 'Transactions', empty: 'No transaction matches.',
      load: async (cursor) => (cursor ? get('/admin/v1/transactions', { ...p, limit: 50, cursor }) : first),
      columns: [
        { label: 'When', cell: (t) => formatDate(t.created_at) },
        { label: 'Kind', cell: (t) => t.kind },
        { label: 'Amount', class: 'num', cell: (t) => Object.entries(t.amounts).map(([c, a]) => money(a, c)).join(', ') },
        { label: 'Description', cell: (t) => h('span', {}, t.description,
          t.internal_notes ? h('small', { class: 'block muted' }, `Note: ${t.internal_notes}`) : null) },
        { label: 'Postings', cell: (t) => t.postings.map((p2) => h('small', { class: 'block' },
          `${p2.source} → ${p2.destination} ${money(p2.amount, p2.currency)}`)) },
        { label: 'Reference', cell: (t) => t.reference_id },
        { label: 'By', cell: (t) => t.service || t.initiator },
        { label: 'Id', cell: (t) => h('code', {}, t.id) },
      ],
    });
    clear(results,
      h('h3', {}, 'Totals for the whole search'),
      table([{ label: 'Kind', cell: (r) => r.kind }, { label: 'Currency', cell: (r) => r.currency },
        { label: 'Count', class: 'num', cell: (r) => String(r.count) },
        { label: 'Total', class: 'num', cell: (r) => money(r.total, r.currency) }],
      first.summary, 'Totals'),
      h('p', {}, h('a', { class: 'button secondary', href: `/admin/v1/transactions/export.csv?${query(p)}`,
                          download: 'transactions.csv' }, 'Export CSV')),
      list);
  }
  search();
}

// ---------------------------------------------------------------- a user's ledger

function viewUsers(el, arg) {
  const id = input({ name: 'user_id', maxlength: '128', value: arg || '' });
  const form = h('form', { class: 'filters' }, field('User id', id),
    h('button', { type: 'submit' }, 'Open ledger'));
  const body = h('div', {});
  el.append(heading('A user\'s ledger'), form, body);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (id.value.trim()) go('users', id.value.trim());
  });
  if (arg) openUser(body, arg);
}

async function openUser(body, userId) {
  const msg = message();
  let account;
  let kyc;
  try {
    [account, kyc] = await Promise.all([get(`/admin/v1/accounts/${encodeURIComponent('user:' + userId)}`),
      get(`/admin/v1/kyc/users/${encodeURIComponent(userId)}`)]);
  } catch (err) {
    return clear(body, h('p', { role: 'alert' }, problemText(err)));
  }
  const entries = pagedTable({
    caption: 'Entries', empty: 'No entries.',
    load: async (cursor) => {
      const page = await get(`/admin/v1/users/${encodeURIComponent(userId)}/ledger`, { limit: 50, cursor });
      drawTotals(page.totals);
      return page;
    },
    columns: [
      { label: 'When', cell: (e) => formatDate(e.created_at) },
      { label: 'Account', cell: (e) => e.address },
      { label: 'Kind', cell: (e) => e.kind },
      { label: 'Amount', class: 'num', cell: (e) => money(e.amount, e.currency) },
      { label: 'Balance after', class: 'num', cell: (e) => money(e.balance_after, e.currency) },
      { label: 'Description', cell: (e) => h('span', {}, e.description,
        e.internal_notes ? h('small', { class: 'block muted' }, `Note: ${e.internal_notes}`) : null) },
      { label: 'By', cell: (e) => e.service || e.initiator },
    ],
  });
  const totalsEl = h('div', {});
  function drawTotals(totals) {
    clear(totalsEl, table([{ label: 'Kind', cell: (t) => t.kind }, { label: 'Currency', cell: (t) => t.currency },
      { label: 'In', class: 'num', cell: (t) => money(t.in, t.currency) },
      { label: 'Out', class: 'num', cell: (t) => money(t.out, t.currency) },
      { label: 'Entries', class: 'num', cell: (t) => String(t.entries) }], totals, 'Totals'));
  }
  clear(body,
    h('h3', {}, `Balances of ${userId}`),
    table([{ label: 'Currency', cell: ([c]) => c },
      { label: 'Balance', class: 'num', cell: ([c, b]) => money(b.balance, c) },
      { label: 'Held', class: 'num', cell: ([c, b]) => money(b.held, c) },
      { label: 'Available', class: 'num', cell: ([c, b]) => money(b.available, c) }],
    Object.entries(account.balances), 'Balances'),
    h('p', {}, `KYC tier ${kyc.tier}`, kyc.submission ? [' · latest submission ', badge(kyc.submission.status)] : ''),
    canWrite() ? adjustForm(userId, () => entries.reload()) : null,
    h('h3', {}, 'Totals in and out'), totalsEl,
    h('h3', {}, 'Entries'), entries, msg);
}

function adjustForm(userId, done) {
  const currency = select('currency', currencyOptions('Choose').slice(1));
  const amount = input({ name: 'amount', inputmode: 'decimal', required: true });
  const direction = select('direction', [['credit', 'Credit (add)'], ['debit', 'Debit (take)']]);
  const reason = input({ name: 'reason', minlength: '3', maxlength: '500', required: true });
  const msg = message();
  const form = h('form', { class: 'card' }, h('h3', {}, 'Adjust the balance'),
    h('div', { class: 'inline-form' }, field('Currency', currency), field('Amount', amount),
      field('Direction', direction), field('Reason', reason),
      h('button', { type: 'submit' }, 'Create adjustment')),
    h('p', { class: 'muted small' }, 'Large adjustments wait for a second admin\'s approval.'), msg);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let units;
    try {
      units = parseAmount(amount.value, s.scales[currency.value] ?? 0);
    } catch (err) {
      return msg.error(`Amount: ${err.message}`);
    }
    await busy(form, async () => {
      try {
        const a = await api('POST', '/admin/v1/adjustments', {
          user_id: userId, currency: currency.value, amount: units,
          direction: direction.value, reason: reason.value.trim(),
        }, { idempotencyKey: newKey() });
        msg.ok(a.status === 'pending'
          ? 'Waiting for a second admin: see Approvals.' : `Adjustment ${a.status}.`);
        done();
      } catch (err) {
        msg.error(err);
      }
    });
  });
  return form;
}

// ---------------------------------------------------------------- approvals

function viewApprovals(el) {
  const msg = message();
  const w = h('section', { 'aria-labelledby': 'q-w' });
  const k = h('section', { 'aria-labelledby': 'q-k' });
  const a = h('section', { 'aria-labelledby': 'q-a' });
  el.append(heading('Approvals'), msg, w, k, a);
  drawWithdrawals();
  drawKyc();
  drawAdjustments();

  function decide(label, path, { withReason, reasonRequired, onDone }) {
    // A control per decision; rejecting asks for a reason in a small inline form.
    if (!canWrite()) return '';
    if (!withReason) {
      return button(label, async (e) => {
        e.target.disabled = true;
        try {
          await api('POST', path);
          msg.ok(`${label}: done.`);
        } catch (err) {
          msg.error(err);
        }
        onDone();
      });
    }
    const reason = input({ name: 'reason', maxlength: '500' });
    const form = h('form', { class: 'inline-form' }, field(`${label} reason`, reason),
      h('button', { type: 'submit', class: 'secondary' }, label));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (reasonRequired && !reason.value.trim()) return msg.error('A reason is needed.');
      await busy(form, async () => {
        try {
          await api('POST', path, reason.value.trim() ? { reason: reason.value.trim() } : undefined);
          msg.ok(`${label}: done.`);
        } catch (err) {
          msg.error(err);
        }
      });
      onDone();
    });
    return form;
  }

  function drawWithdrawals() {
    clear(w, h('h3', { id: 'q-w' }, 'Withdrawals waiting'), pagedTable({
      caption: 'Withdrawals waiting', empty: 'No withdrawal is waiting.',
      load: (cursor) => get('/admin/v1/withdrawals', { status: 'pending', limit: 20, cursor }),
      columns: [
        { label: 'When', cell: (r) => formatDate(r.created_at) },
        { label: 'User', cell: (r) => userLink(r.user_id) },
        { label: 'Amount', class: 'num', cell: (r) => money(r.amount, r.currency) },
        { label: 'Destination', class: 'pre', cell: (r) => json(r.destination) },
        { label: 'Decision', cell: (r) => (canWrite() ? h('div', {},
          decide('Approve', `/admin/v1/withdrawals/${r.id}/approve`, { onDone: drawWithdrawals }),
          decide('Reject', `/admin/v1/withdrawals/${r.id}/reject`, { withReason: true, reasonRequired: true, onDone: drawWithdrawals }))
          : badge(r.status)) },
      ],
    }), h('h3', {}, 'Recent withdrawals'), pagedTable({
      caption: 'Recent withdrawals', empty: 'None.',
      load: (cursor) => get('/admin/v1/withdrawals', { limit: 10, cursor }),
      columns: [
        { label: 'When', cell: (r) => formatDate(r.updated_at) },
        { label: 'User', cell: (r) => userLink(r.user_id) },
        { label: 'Amount', class: 'num', cell: (r) => money(r.amount, r.currency) },
        { label: 'Status', cell: (r) => h('span', {}, badge(r.status),
          r.payout_error ? h('small', { class: 'block muted' }, r.payout_error) : null) },
        { label: 'Decided by', cell: (r) => r.decided_by || '' },
      ],
    }));
  }

  function drawKyc() {
    clear(k, h('h3', { id: 'q-k' }, 'KYC submissions waiting'), pagedTable({
      caption: 'KYC submissions waiting', empty: 'No submission is waiting.',
      load: (cursor) => get('/admin/v1/kyc/submissions', { status: 'pending', limit: 20, cursor }),
      columns: [
        { label: 'When', cell: (r) => formatDate(r.created_at) },
        { label: 'User', cell: (r) => userLink(r.user_id) },
        { label: 'Tier', cell: (r) => String(r.tier) },
        { label: 'Submitted', cell: (r) => dl(Object.entries(r.data).map(([key, v]) => [key, String(v)])) },
        { label: 'Decision', cell: (r) => (canWrite() ? h('div', {},
          decide('Approve', `/admin/v1/kyc/submissions/${r.id}/approve`, { onDone: drawKyc }),
          decide('Reject', `/admin/v1/kyc/submissions/${r.id}/reject`, { withReason: true, reasonRequired: true, onDone: drawKyc }))
          : badge(r.status)) },
      ],
    }));
  }

  async function drawAdjustments() {
    let pending;
    let recent;
    try {
      [pending, recent] = await Promise.all([get('/admin/v1/adjustments', { status: 'pending' }),
        get('/admin/v1/adjustments', { limit: 20 })]);
    } catch (err) {
      return msg.error(err);
    }
    clear(a, h('h3', { id: 'q-a' }, 'Large adjustments waiting (four eyes)'),
      h('p', { class: 'muted small' }, 'An adjustment above the threshold needs a second admin: '
        + 'the one who asked cannot approve it.'),
      pending.data.length ? table([
        { label: 'When', cell: (r) => formatDate(r.created_at) },
        { label: 'User', cell: (r) => userLink(r.user_id) },
        { label: 'Amount', class: 'num', cell: (r) => `${r.direction === 'debit' ? '−' : '+'}${money(r.amount, r.currency)}` },
        { label: 'Reason', cell: (r) => r.reason },
        { label: 'Requested by', cell: (r) => r.requested_by },
        { label: 'Decision', cell: (r) => {
          if (!canWrite()) return badge(r.status);
          if (r.requested_by === s.me.id || r.requested_by === `admin:${s.me.id}`) {
            return h('span', { class: 'muted' }, 'You asked for it: another admin decides.');
          }
          return h('div', {},
            decide('Approve', `/admin/v1/adjustments/${r.id}/approve`, { onDone: drawAdjustments }),
            decide('Reject', `/admin/v1/adjustments/${r.id}/reject`, { withReason: false, onDone: drawAdjustments }));
        } },
      ], pending.data, 'Adjustments waiting') : h('p', { class: 'muted' }, 'No adjustment is waiting.'),
      h('h3', {}, 'Recent adjustments'),
      recent.data.length ? table([
        { label: 'When', cell: (r) => formatDate(r.created_at) },
        { label: 'User', cell: (r) => userLink(r.user_id) },
        { label: 'Amount', class: 'num', cell: (r) => `${r.direction === 'debit' ? '−' : '+'}${money(r.amount, r.currency)}` },
        { label: 'Status', cell: (r) => badge(r.status) },
        { label: 'Four eyes', cell: (r) => `asked by ${r.requested_by}` + (r.decided_by ? `, decided by ${r.decided_by}` : '') },
      ], recent.data, 'Recent adjustments') : h('p', { class: 'muted' }, 'None.'));
  }
}

function userLink(userId) {
  return h('a', { href: `/console/users/${encodeURIComponent(userId)}`,
                  onclick: (e) => { e.preventDefault(); go('users', userId); } }, userId);
}

// ---------------------------------------------------------------- service keys

function viewKeys(el) {
  const msg = message();
  const secretEl = h('div', {});
  const list = h('div', {});
  el.append(heading('Service keys'), secretEl, msg);
  if (canWrite()) {
    const service = input({ name: 'service', required: true, maxlength: '64' });
    const scopes = input({ name: 'scopes', required: true, value: 'wallet:read' });
    const form = h('form', { class: 'card' }, h('h3', {}, 'New key'),
      h('div', { class: 'inline-form' }, field('Service', service),
        field('Scopes', scopes, 'Comma-separated, e.g. wallet:read,wallet:credit:points'),
        h('button', { type: 'submit' }, 'Create key')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      await busy(form, async () => {
        try {
          const key = await api('POST', '/admin/v1/keys', {
            service: service.value.trim(),
            scopes: scopes.value.split(',').map((x) => x.trim()).filter(Boolean),
          });
          showSecret(key, 'New key');
          draw();
        } catch (err) {
          msg.error(err);
        }
      });
    });
    el.append(form);
  }
  el.append(list);
  draw();

  function showSecret(key, title) {
    clear(secretEl, h('div', { class: 'card once', role: 'alert' },
      h('h3', {}, `${title} for ${key.service}`),
      h('p', {}, 'Copy it now: it is not stored and will not be shown again.'),
      h('p', {}, h('code', { class: 'secret', 'data-secret': 'true' }, key.key)),
      key.previous && key.previous.expires_at
        ? h('p', { class: 'muted' }, `The old key works until ${formatDate(key.previous.expires_at)}.`) : null,
      button('I have copied it', () => clear(secretEl), { class: 'secondary' })));
  }

  async function draw() {
    let keys;
    try {
      keys = await get('/admin/v1/keys');
    } catch (err) {
      return msg.error(err);
    }
    clear(list, table([
      { label: 'Service', cell: (k) => k.service },
      { label: 'Key', cell: (k) => h('code', {}, `${k.key_prefix}…`) },
      { label: 'Scopes', cell: (k) => k.scopes.join(' ') },
      { label: 'Created', cell: (k) => formatDate(k.created_at) },
      { label: 'State', cell: (k) => (k.revoked_at ? badge('revoked')
        : k.expires_at ? h('span', {}, badge('rotated'), h('small', { class: 'block muted' }, `until ${formatDate(k.expires_at)}`))
          : badge('active')) },
      { label: '', cell: (k) => (canWrite() && !k.revoked_at ? h('div', { class: 'row' },
        k.expires_at ? null : button('Rotate', () => rotate(k), { class: 'secondary', 'aria-label': `Rotate ${k.service} key ${k.key_prefix}` }),
        revokeButton(k)) : '') },
    ], keys.data, 'Keys issued'));
  }

  async function rotate(k) {
    try {
      const out = await api('POST', `/admin/v1/keys/${k.id}/rotate`, {});
      showSecret(out, 'Rotated key');
      draw();
    } catch (err) {
      msg.error(err);
    }
  }

  function revokeButton(k) {
    const b = button('Revoke', async () => {
      if (b.dataset.armed !== 'yes') {
        b.dataset.armed = 'yes';
        b.textContent = 'Confirm revoke';
        b.setAttribute('aria-label', `Confirm revoke ${k.service} key ${k.key_prefix}`);
        return;
      }
      try {
        await api('POST', `/admin/v1/keys/${k.id}/revoke`);
        msg.ok(`Revoked the ${k.service} key ${k.key_prefix}….`);
        draw();
      } catch (err) {
        msg.error(err);
      }
    }, { class: 'danger', 'aria-label': `Revoke ${k.service} key ${k.key_prefix}` });
    return b;
  }
}

// ---------------------------------------------------------------- payments

function viewPayments(el) {
  const status = select('status', [['', 'Any status'], ...['created', 'pending', 'succeeded', 'failed', 'refunded', 'disputed'].map((x) => [x, x])]);
  const provider = select('provider', [['', 'Any provider'], ['mock', 'mock'], ['stripe', 'stripe'], ['razorpay', 'razorpay']]);
  const user = input({ name: 'user_id', maxlength: '128' });
  const orders = h('div', {});
  const form = h('form', { class: 'filters' }, field('Status', status), field('Provider', provider),
    field('User id', user), h('button', { type: 'submit' }, 'Filter'));
  const evStatus = select('event_status', [['', 'Any status'], ...['received', 'processed', 'ignored', 'failed'].map((x) => [x, x])]);
  const events = h('div', {});
  const detail = h('div', {});
  const msg = message();
  const evForm = h('form', { class: 'filters' }, field('Event status', evStatus),
    h('button', { type: 'submit' }, 'Filter events'));
  el.append(heading('Payments'), h('h3', {}, 'Payment orders'), form, orders,
    h('h3', {}, 'Provider events'), evForm, msg, detail, events);
  form.addEventListener('submit', (e) => { e.preventDefault(); drawOrders(); });
  evForm.addEventListener('submit', (e) => { e.preventDefault(); drawEvents(); });
  drawOrders();
  drawEvents();

  function drawOrders() {
    clear(orders, pagedTable({
      caption: 'Payment orders', empty: 'No order matches.',
      load: (cursor) => get('/admin/v1/payment-orders', { status: status.value, provider: provider.value, user_id: user.value.trim(), limit: 25, cursor }),
      columns: [
        { label: 'When', cell: (o) => formatDate(o.created_at) },
        { label: 'User', cell: (o) => userLink(o.user_id) },
        { label: 'Coins', class: 'num', cell: (o) => money(o.amount + o.bonus, o.currency) },
        { label: 'Price', class: 'num', cell: (o) => formatPrice(o.price) },
        { label: 'Provider', cell: (o) => o.provider },
        { label: 'Status', cell: (o) => h('span', {}, badge(o.status), o.error ? h('small', { class: 'block muted' }, o.error) : null) },
        { label: 'Id', cell: (o) => h('code', {}, o.id) },
      ],
    }));
  }

  function drawEvents() {
    clear(events, pagedTable({
      caption: 'Provider events', empty: 'No event matches.',
      load: (cursor) => get('/admin/v1/webhook-events', { status: evStatus.value, limit: 25, cursor }),
      columns: [
        { label: 'Received', cell: (v) => formatDate(v.received_at) },
        { label: 'Provider', cell: (v) => v.provider },
        { label: 'Type', cell: (v) => v.event_type },
        { label: 'Status', cell: (v) => h('span', {}, badge(v.status), ` ${v.attempts} attempt(s)`,
          v.last_error ? h('small', { class: 'block muted' }, v.last_error) : null) },
        { label: 'Order', cell: (v) => (v.order_id ? h('code', {}, v.order_id) : '') },
        { label: '', cell: (v) => h('div', { class: 'row' },
          button('View', () => view(v.id), { class: 'secondary', 'aria-label': `View event ${v.event_id}` }),
          canWrite() && v.status === 'failed' ? button('Retry', () => retry(v.id)) : null) },
      ],
    }));
  }

  async function view(id) {
    try {
      const ev = await get(`/admin/v1/webhook-events/${id}`);
      clear(detail, h('div', { class: 'card' }, h('h3', {}, `Event ${ev.event_id}`),
        h('pre', {}, json(ev.body)), button('Close', () => clear(detail), { class: 'secondary' })));
    } catch (err) {
      msg.error(err);
    }
  }

  async function retry(id) {
    try {
      await api('POST', `/admin/v1/webhook-events/${id}/retry`);
      msg.ok('The event is queued again.');
      drawEvents();
    } catch (err) {
      msg.error(err);
    }
  }
}

// ---------------------------------------------------------------- shop orders

function viewOrders(el) {
  const buyer = input({ name: 'buyer_id', maxlength: '128' });
  const merchant = input({ name: 'merchant_id', maxlength: '128' });
  const status = select('status', [['', 'Any status'], ['paid', 'paid'],
    ['partially_refunded', 'partially refunded'], ['refunded', 'refunded']]);
  const currency = select('currency', currencyOptions());
  const form = h('form', { class: 'filters' }, field('Buyer', buyer), field('Merchant', merchant),
    field('Status', status), field('Currency', currency), h('button', { type: 'submit' }, 'Filter'));
  const msg = message();
  const refund = h('div', {});
  const list = h('div', {});
  el.append(heading('Shop orders'), form, msg, refund, list);
  form.addEventListener('submit', (e) => { e.preventDefault(); draw(); });
  draw();

  function draw() {
    clear(list, pagedTable({
      caption: 'Orders', empty: 'No order matches.',
      load: (cursor) => get('/admin/v1/orders', {
        buyer_id: buyer.value.trim(), merchant_id: merchant.value.trim(), status: status.value,
        currency: currency.value, limit: 25, cursor,
      }),
      columns: [
        { label: 'When', cell: (o) => formatDate(o.created_at) },
        { label: 'Buyer', cell: (o) => userLink(o.buyer_id) },
        { label: 'Merchant', cell: (o) => userLink(o.merchant_id) },
        { label: 'Product', cell: (o) => `${o.quantity} × ${o.product_name}` },
        { label: 'Paid', class: 'num', cell: (o) => money(o.amount, o.currency) },
        { label: 'Fee', class: 'num', cell: (o) => money(o.fee, o.currency) },
        { label: 'Status', cell: (o) => h('span', {}, badge(o.status),
          o.refunded_amount ? h('small', { class: 'block muted' }, `refunded ${money(o.refunded_amount, o.currency)}`) : null) },
        { label: 'Id', cell: (o) => h('code', {}, o.id) },
        { label: '', cell: (o) => (canWrite() && o.status !== 'refunded' ? button('Refund', () => {
          clear(refund, refundForm(o, {
            money, scale: (c) => s.scales[c] ?? 0, msg,
            onDone: () => { clear(refund); draw(); },
            onCancel: () => clear(refund),
          }));
        }, { class: 'secondary', 'aria-label': `Refund ${o.product_name} bought by ${o.buyer_id}` }) : '') },
      ],
    }));
  }
}

// ---------------------------------------------------------------- audit log

function viewAudit(el) {
  const actor = input({ name: 'actor', maxlength: '160' });
  const action = input({ name: 'action', maxlength: '64' });
  const list = h('div', {});
  const form = h('form', { class: 'filters' }, field('Actor', actor), field('Action', action),
    h('button', { type: 'submit' }, 'Filter'));
  el.append(heading('Audit log'), form, list);
  form.addEventListener('submit', (e) => { e.preventDefault(); draw(); });
  draw();
  function draw() {
    clear(list, pagedTable({
      caption: 'Audit log', empty: 'Nothing matches.',
      load: (cursor) => get('/admin/v1/audit-log', { actor: actor.value.trim(), action: action.value.trim(), limit: 50, cursor }),
      columns: [
        { label: 'When', cell: (r) => formatDate(r.at) },
        { label: 'Who', cell: (r) => `${r.actor}${r.actor_role ? ` (${r.actor_role})` : ''}` },
        { label: 'Action', cell: (r) => r.action },
        { label: 'Target', cell: (r) => r.target || '' },
        { label: 'Details', class: 'pre', cell: (r) => (Object.keys(r.details).length ? json(r.details) : '') },
        { label: 'From', cell: (r) => r.ip || '' },
      ],
    }));
  }
}

start();
