// The web wallet: balances (live), history, buy coins, gifts, withdrawals, KYC, 2FA, the
// shop and my orders, and for merchants their products and sales (shop.js).
// Every action is a call to the public user API (/api/v1), nothing more.

import { api, ApiError, get, newKey, onSignedOut, problemText, signOut } from './api.js';
import { clear, h } from './dom.js';
import { formatAmount, formatDate, formatPrice, parseAmount } from './format.js';
import { startLive } from './live.js';
import { viewOrders, viewProducts, viewSales, viewShop } from './shop.js';
import {
  busy, button, dl, field, heading, input, message, pagedTable, select, signInForm, table,
} from './ui.js';

const root = document.getElementById('app');
const s = { me: null, scales: {}, currencies: [], wallets: {}, live: null };
const money = (amount, currency) => `${formatAmount(amount, s.scales[currency] ?? 0)} ${currency}`;
// What the shop's views need of the wallet.
const ctx = {
  money,
  scale: (currency) => s.scales[currency] ?? 0,
  currencies: () => s.currencies,
  me: () => s.me,
  available: (currency) => (s.wallets[currency] ? s.wallets[currency].available : null),
  refresh: () => s.live && s.live.now(),
};
const VIEWS = {
  '': viewHistory, buy: viewBuy, gift: viewGift, withdraw: viewWithdraw,
  verify: viewVerify, security: viewSecurity, 'topup-return': viewTopupReturn,
  shop: (el) => viewShop(el, ctx), orders: (el) => viewOrders(el, ctx),
  products: (el) => viewProducts(el, ctx), sales: (el) => viewSales(el, ctx),
};
const MERCHANT_VIEWS = new Set(['products', 'sales']);
const isMerchant = () => s.me && s.me.role === 'merchant';

function route() {
  const rest = location.pathname.replace(/^\/wallet\/?/, '').split('/')[0];
  if (MERCHANT_VIEWS.has(rest) && !isMerchant()) return '';
  return rest in VIEWS ? rest : '';
}

export function go(name, search = '') {
  history.pushState({}, '', `/wallet${name ? '/' + name : ''}${search}`);
  show();
}

window.addEventListener('popstate', () => show());
onSignedOut(() => signedOut());

async function start() {
  try {
    s.me = await api('GET', '/api/v1/me');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signedOut();
    return clear(root, h('main', { id: 'main' }, h('p', { role: 'alert' }, problemText(err))));
  }
  const cur = await get('/api/v1/currencies');
  s.currencies = cur.data;
  s.scales = Object.fromEntries(cur.data.map((c) => [c.code, c.scale]));
  layout();
}

function signedOut() {
  if (s.live) s.live.stop();
  s.me = null;
  // Already asking (a 401 signs out twice: in api() and in its caller): keep what was typed.
  if (root.querySelector('form.signin')) return;
  clear(root, h('main', { id: 'main', class: 'narrow' }, signInForm({
    title: 'Coinpurse wallet',
    onDone: () => start(),
  }), h('p', { class: 'muted center' }, 'Operators: ', h('a', { href: '/console' }, 'console'))));
}

// ---------------------------------------------------------------- layout and balances

let balancesEl;
let viewEl;
let announceEl;

function layout() {
  balancesEl = h('div', { class: 'cards' });
  viewEl = h('section', { id: 'view', class: 'view' });
  announceEl = h('p', { class: 'sr-only', 'aria-live': 'polite', id: 'announce' });
  const nav = h('nav', { 'aria-label': 'Wallet' },
    navLink('Wallet', ''), navLink('Shop', 'shop'), navLink('My orders', 'orders'),
    isMerchant() ? [navLink('My products', 'products'), navLink('Sales', 'sales')] : null,
    navLink('Verify identity', 'verify'), navLink('Security', 'security'));
  clear(root,
    h('header', { class: 'bar' },
      h('a', { class: 'brand', href: '/wallet' }, 'Coinpurse'),
      nav,
      h('span', { class: 'who' }, s.me.email || s.me.id),
      button('Sign out', doSignOut, { class: 'secondary' })),
    h('main', { id: 'main' },
      h('section', { 'aria-labelledby': 'balances-title', class: 'balances' },
        h('h2', { id: 'balances-title' }, 'Balances'),
        balancesEl,
        h('p', { class: 'muted small' }, 'Your user id (for gifts): ',
          h('code', { id: 'my-id' }, s.me.id))),
      h('div', { class: 'actions' },
        button('Buy coins', () => go('buy')),
        button('Send gift', () => go('gift')),
        button('Withdraw', () => go('withdraw'))),
      viewEl, announceEl));
  for (const a of nav.querySelectorAll('a')) {
    a.addEventListener('click', (event) => {
      event.preventDefault();
      go(a.dataset.view);
    });
  }
  s.live = startLive({ load: loadBalances, onChange: balancesChanged });
  show();
}

function navLink(text, view) {
  return h('a', { href: `/wallet${view ? '/' + view : ''}`, 'data-view': view }, text);
}

async function loadBalances() {
  const out = await api('GET', '/api/v1/wallet/balance');
  return out.wallets;
}

function balancesChanged(wallets, before) {
  s.wallets = wallets;
  const cards = Object.entries(wallets).map(([currency, w]) => {
    const changed = before && before[currency] && before[currency].balance !== w.balance;
    return h('article', { class: 'card balance' + (changed ? ' changed' : ''),
                          'aria-label': currency, 'data-currency': currency },
      h('h3', {}, currency),
      h('p', { class: 'big', 'data-field': 'available' }, formatAmount(w.available, s.scales[currency] ?? 0)),
      dl([['Balance', h('span', { 'data-field': 'balance' }, formatAmount(w.balance, s.scales[currency] ?? 0))],
          ['Held', h('span', { 'data-field': 'held' }, formatAmount(w.held, s.scales[currency] ?? 0))],
          ['Available', formatAmount(w.available, s.scales[currency] ?? 0)],
          // Bonus money (not in the balance): spent after cash, converted once wagered.
          w.bonus ? ['Bonus', h('span', { 'data-field': 'bonus' }, formatAmount(w.bonus, s.scales[currency] ?? 0))] : null]));
  });
  clear(balancesEl, cards.length ? cards : h('p', { class: 'muted' }, 'No currencies.'));
  if (before) {
    announceEl.textContent = 'Balances updated.';
    if (viewEl.refresh) viewEl.refresh();
  }
}

async function doSignOut() {
  try {
    await signOut();
  } catch (err) {
    // The cookies may already be gone; the sign-in form is what matters now.
  }
  signedOut();
  history.replaceState({}, '', '/wallet');
}

function show() {
  const name = route();
  viewEl.refresh = null;
  clear(viewEl);
  for (const a of root.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  VIEWS[name](viewEl);
  const title = viewEl.querySelector('.view-title');
  if (title && document.activeElement && document.activeElement !== document.body
      && !viewEl.contains(document.activeElement)) {
    title.focus();
  }
}

// ---------------------------------------------------------------- history

function viewHistory(el) {
  const filter = select('currency', [['', 'All currencies'],
    ...s.currencies.map((c) => [c.code, c.code])]);
  const columns = [
    { label: 'When', cell: (r) => formatDate(r.created_at) },
    { label: 'What', cell: (r) => h('span', {}, r.description,
      h('small', { class: 'muted block' }, r.kind)) },
    { label: 'Amount', class: 'num', cell: (r) => h('span', { class: r.amount < 0 ? 'out' : 'in' },
      (r.amount > 0 ? '+' : '') + money(r.amount, r.currency)) },
    { label: 'Balance after', class: 'num', cell: (r) => money(r.balance_after, r.currency) },
  ];
  const list = pagedTable({
    columns, caption: 'History',
    empty: 'No transactions yet: buy coins or wait for a gift.',
    load: (cursor) => get('/api/v1/wallet/transactions',
                          { limit: 20, cursor, currency: filter.value }),
  });
  filter.addEventListener('change', () => list.reload());
  el.refresh = () => list.reload();
  el.append(heading('History'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      field('Currency', filter)),
    list);
}

// ---------------------------------------------------------------- buy coins

function viewBuy(el) {
  const msg = message();
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading packages…'));
  el.append(heading('Buy coins'), body, msg);
  get('/api/v1/topup/packages').then((out) => {
    const provider = select('provider', out.providers.map((p) => [p, p === 'mock'
      ? 'Mock checkout (development)' : p[0].toUpperCase() + p.slice(1)]));
    const packages = out.data.map((p) => h('li', { class: 'card package' },
      h('h3', {}, `${formatAmount(p.total, s.scales[p.currency] ?? 0)} ${p.currency}`),
      p.bonus ? h('p', { class: 'muted' }, `${formatAmount(p.amount, s.scales[p.currency] ?? 0)} + ${formatAmount(p.bonus, s.scales[p.currency] ?? 0)} bonus`) : null,
      h('p', { class: 'price' }, formatPrice(p.price)),
      button(`Buy ${p.id}`, (event) => buy(event.target, { package_id: p.id }), {
        'aria-label': `Buy ${formatAmount(p.total, s.scales[p.currency] ?? 0)} ${p.currency} for ${formatPrice(p.price)}`,
      })));
    async function buy(btn, what) {
      msg.reset();
      btn.disabled = true;
      try {
        const order = await api('POST', '/api/v1/topups', { ...what, provider: provider.value },
                                { idempotencyKey: newKey() });
        if (order.checkout_url && /^https?:\/\//.test(order.checkout_url)) {
          location.assign(order.checkout_url);
        } else {
          msg.error('This provider has no checkout page the wallet can open.');
        }
      } catch (err) {
        msg.error(err);
      } finally {
        btn.disabled = false;
      }
    }
    clear(body,
      out.providers.length > 1 ? field('Payment provider', provider) : null,
      out.data.length ? h('ul', { class: 'packages' }, packages)
        : h('p', { class: 'muted' }, 'No packages are on sale.'),
      h('h3', {}, 'Your top-ups'),
      pagedTable({
        caption: 'Your top-ups',
        empty: 'No top-ups yet.',
        load: (cursor) => get('/api/v1/topups', { limit: 10, cursor }),
        columns: [
          { label: 'When', cell: (o) => formatDate(o.created_at) },
          { label: 'Coins', cell: (o) => money(o.amount + o.bonus, o.currency) },
          { label: 'Price', cell: (o) => formatPrice(o.price) },
          { label: 'Status', cell: (o) => statusBadge(o.status) },
        ],
      }));
  }, (err) => msg.error(err));
}

function statusBadge(status) {
  return h('span', { class: `badge ${status}` }, status);
}

function viewTopupReturn(el) {
  const params = new URLSearchParams(location.search);
  const ok = params.get('status') === 'success';
  const orderId = params.get('order_id') || '';
  const msg = message();
  el.append(heading(ok ? 'Payment received' : 'Payment cancelled'), msg);
  const back = button('Back to the wallet', () => go(''), { class: 'secondary' });
  if (!ok) {
    el.append(h('p', {}, 'Nothing was charged. You can try again at any time.'), back);
    return;
  }
  el.append(h('p', { class: 'muted' }, 'Confirming your payment…'));
  const proof = {};
  for (const k of ['payment_id', 'signature', 'razorpay_order_id', 'razorpay_payment_id',
                   'razorpay_signature']) {
    if (params.get(k)) proof[k] = params.get(k);
  }
  const confirm = /^[0-9a-f-]{1,36}$/.test(orderId)
    ? api('POST', `/api/v1/topups/${orderId}/verify`, proof)
      .catch(() => get(`/api/v1/topups/${orderId}`))
    : Promise.reject(new Error('no order in the address'));
  confirm.then(async (order) => {
    const done = order.status === 'succeeded';
    el.querySelector('p.muted').textContent = done
      ? `${money(order.amount + order.bonus, order.currency)} added to your wallet.`
      : `Order status: ${order.status}. Your balance updates when the payment is confirmed.`;
    if (done) msg.ok('Your coins have arrived.');
    el.append(back);
    s.live.now();
  }, (err) => {
    msg.error(err);
    el.append(back);
  });
}

// ---------------------------------------------------------------- gifts

function viewGift(el) {
  const msg = message();
  const recipient = input({ name: 'to_user_id', required: true, autocomplete: 'off',
                            maxlength: '128' });
  const gift = select('gift_type', []);
  const note = h('textarea', { name: 'message', maxlength: '500', rows: '3' });
  const review = h('div', { class: 'review' });
  const form = h('form', { class: 'card' },
    field('Recipient', recipient, 'Their user id.'),
    field('Gift', gift), field('Message', note, 'Optional, at most 500 characters.'),
    h('button', { type: 'submit' }, 'Review gift'));
  const lists = h('div', { class: 'gift-lists' });
  el.append(heading('Send a gift'), form, review, msg, lists);

  get('/api/v1/gifts/catalog').then((out) => {
    clear(gift, out.data.map((g) => h('option', { value: g.gift_type },
      `${g.gift_type} — ${money(g.price, g.currency)}`)));
  }, (err) => msg.error(err));

  const request = () => ({
    to_user_id: recipient.value.trim(), gift_type: gift.value,
    ...(note.value.trim() ? { message: note.value } : {}),
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    msg.reset();
    clear(review);
    if (!recipient.value.trim()) return msg.error('Enter the recipient\'s user id.');
    const body = request();
    await busy(form, async () => {
      try {
        const q = await api('POST', '/api/v1/gifts/quote', body);
        showReview(body, q);
      } catch (err) {
        msg.error(err);
      }
    });
  });

  function showReview(body, q) {
    const key = newKey();
    const confirmBtn = button('Confirm gift', send);
    clear(review, h('div', { class: 'card confirm', role: 'group',
                             'aria-labelledby': 'confirm-title' },
      h('h3', { id: 'confirm-title' }, 'Confirm your gift'),
      dl([['To', q.to_user_id], ['Gift', q.gift_type || ''],
          ['You pay', money(q.amount, q.currency)],
          ['They receive', money(q.receiver_amount, q.currency)],
          q.agency_commission ? ['Their agency', money(q.agency_commission, q.currency)] : null,
          ['Platform fee', money(q.platform_fee, q.currency)],
          body.message ? ['Message', body.message] : null]),
      h('div', { class: 'row' }, confirmBtn,
        button('Change', () => { clear(review); recipient.focus(); }, { class: 'secondary' }))));
    confirmBtn.focus();

    async function send() {
      confirmBtn.disabled = true;
      try {
        const g = await api('POST', '/api/v1/gifts', body, { idempotencyKey: key });
        clear(review);
        note.value = '';
        msg.ok(`Gift sent: ${g.to_user_id} received ${money(g.receiver_amount, g.currency)}`
          + ` (platform fee ${money(g.platform_fee, g.currency)}`
          + (g.agency_commission ? `, agency ${money(g.agency_commission, g.currency)}` : '')
          + `). Your ${g.currency} balance: ${money(g.giver_wallet.available, g.currency)}.`);
        s.live.now();
        giftLists();
      } catch (err) {
        confirmBtn.disabled = false;
        msg.error(err);
      }
    }
  }

  const giftColumns = (who) => [
    { label: 'When', cell: (g) => formatDate(g.created_at) },
    { label: who === 'from' ? 'From' : 'To', cell: (g) => (who === 'from' ? g.from_user_id : g.to_user_id) },
    { label: 'Gift', cell: (g) => (g.gift_type || '') + ' ' + money(who === 'from' ? g.receiver_amount : g.amount, g.currency) },
    { label: 'Message', class: 'message-text', cell: (g) => g.message || '' },
  ];
  function giftLists() {
    clear(lists,
      h('h3', {}, 'Gifts received'),
      pagedTable({ caption: 'Gifts received', columns: giftColumns('from'),
                   empty: 'No gifts received yet.',
                   load: (cursor) => get('/api/v1/gifts', { direction: 'received', limit: 10, cursor }) }),
      h('h3', {}, 'Gifts sent'),
      pagedTable({ caption: 'Gifts sent', columns: giftColumns('to'), empty: 'No gifts sent yet.',
                   load: (cursor) => get('/api/v1/gifts', { direction: 'sent', limit: 10, cursor }) }));
  }
  giftLists();
  el.refresh = giftLists;
}

// ---------------------------------------------------------------- withdrawals

function viewWithdraw(el) {
  const msg = message();
  const explain = h('div', { class: 'card explain' }, h('p', { class: 'muted' }, 'Loading…'));
  const currency = select('currency', []);
  const amount = input({ name: 'amount', inputmode: 'decimal', required: true });
  const details = input({ name: 'destination', required: true, maxlength: '500',
                          autocomplete: 'off' });
  const form = h('form', { class: 'card' },
    field('Currency', currency), field('Amount', amount),
    field('Payout details', details, 'Where to send the money, e.g. an IBAN or a UPI id.'),
    h('button', { type: 'submit' }, 'Request payout'));
  const mine = pagedTable({
    caption: 'Your withdrawals', empty: 'No withdrawals yet.',
    load: (cursor) => get('/api/v1/withdrawals', { limit: 10, cursor }),
    columns: [
      { label: 'When', cell: (w) => formatDate(w.created_at) },
      { label: 'Amount', class: 'num', cell: (w) => money(w.amount, w.currency) },
      { label: 'Status', cell: (w) => h('span', {}, statusBadge(w.status),
        w.reason ? h('small', { class: 'block muted' }, w.reason) : null) },
      { label: '', cell: (w) => (w.status === 'pending'
        ? button('Cancel', () => cancel(w.id), { class: 'secondary', 'aria-label': `Cancel the payout of ${money(w.amount, w.currency)}` })
        : '') },
    ],
  });
  el.append(heading('Withdraw'), explain, form, msg, h('h3', {}, 'Your withdrawals'), mine);
  el.refresh = () => mine.reload();

  async function cancel(id) {
    try {
      await api('POST', `/api/v1/withdrawals/${id}/cancel`);
      msg.ok('Withdrawal cancelled: the amount is available again.');
      mine.reload();
      s.live.now();
    } catch (err) {
      msg.error(err);
    }
  }

  get('/api/v1/withdrawals/limits').then((lim) => {
    const rows = lim.currencies;
    clear(currency, rows.map((c) => h('option', { value: c.currency }, c.currency)));
    const status = lim.allowed
      ? h('p', {}, `Verification tier ${lim.tier}: you can withdraw.`)
      : h('p', {}, `Verification tier ${lim.tier}: withdrawals need tier ${lim.required_tier ?? '—'}. `,
          h('a', { href: '/wallet/verify', onclick: (e) => { e.preventDefault(); go('verify'); } },
            'Verify your identity'), '.');
    const fmt = (c, v) => (v === null || v === undefined ? 'no limit' : money(v, c));
    clear(explain, h('h3', {}, 'What you can withdraw'), status,
      lim.debt ? h('p', { role: 'note' }, `A refunded top-up left a debt of ${lim.debt}: withdrawals wait until your next top-ups repay it.`) : null,
      rows.length ? table([
        { label: 'Currency', cell: (c) => c.currency },
        { label: 'Per withdrawal', cell: (c) => `${fmt(c.currency, c.min_amount)} to ${fmt(c.currency, c.max_amount)}` },
        { label: 'Today', cell: (c) => `${money(c.daily.used, c.currency)} used of ${fmt(c.currency, c.daily.limit)}` },
        { label: 'This month', cell: (c) => `${money(c.monthly.used, c.currency)} used of ${fmt(c.currency, c.monthly.limit)}` },
      ], rows, 'Withdrawal limits') : h('p', {}, 'No currency can be withdrawn here.'),
      h('p', { class: 'muted small' }, 'The amount is held while an operator reviews the request; you can cancel until then.'));
    if (!rows.length) form.hidden = true;
  }, (err) => clear(explain, h('p', { role: 'alert' }, problemText(err))));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    msg.reset();
    let units;
    try {
      units = parseAmount(amount.value, s.scales[currency.value] ?? 0);
    } catch (err) {
      return msg.error(`Amount: ${err.message}`);
    }
    if (!details.value.trim()) return msg.error('Enter the payout details.');
    await busy(form, async () => {
      try {
        const w = await api('POST', '/api/v1/withdrawals', {
          currency: currency.value, amount: units, destination: { details: details.value.trim() },
        }, { idempotencyKey: newKey() });
        msg.ok(`Requested: ${money(w.amount, w.currency)} is held until an operator decides.`);
        amount.value = '';
        mine.reload();
        s.live.now();
      } catch (err) {
        msg.error(explainRefusal(err));
      }
    });
  });
}

function explainRefusal(err) {
  if (!(err instanceof ApiError)) return problemText(err);
  const p = err.problem;
  if (err.code === 'kyc_required') {
    return `Verify your identity first (tier ${p.required_tier ?? '?'} is needed).`;
  }
  if (err.code === 'limit_exceeded' && p.limit) {
    const c = p.currency;
    const names = { withdraw_daily: 'daily limit', withdraw_monthly: 'monthly limit',
                    min_amount: 'minimum', max_amount: 'maximum' };
    const label = names[p.limit] || p.limit;
    return c ? `Over the ${label}: ${money(p.limit_value, c)}` +
      (p.used !== undefined ? `, ${money(p.used, c)} already used.` : '.') : problemText(err);
  }
  return problemText(err);
}

// ---------------------------------------------------------------- KYC

const KYC_FIELDS = {
  full_name: ['Full name', { autocomplete: 'name', maxlength: '200' }],
  date_of_birth: ['Date of birth', { type: 'date', autocomplete: 'bday' }],
  country: ['Country', { maxlength: '2', autocomplete: 'country', pattern: '[A-Za-z]{2}' },
            'Two letters, e.g. GB or IN.'],
  id_document_ref: ['ID document reference', { maxlength: '500' },
                    'A reference to your ID document, kept by the app that sent you here.'],
  selfie_ref: ['Selfie reference', { maxlength: '500' }],
};

function viewVerify(el) {
  const msg = message();
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  el.append(heading('Verify your identity'), body, msg);
  load();
  async function load() {
    let k;
    try {
      k = await get('/api/v1/kyc');
    } catch (err) {
      return msg.error(err);
    }
    const limits = (tier) => table([
      { label: 'Currency', cell: ([c]) => c },
      { label: 'Top-up max', cell: ([c, l]) => lim(c, l.topup_max) },
      { label: 'Top-ups per day', cell: ([c, l]) => lim(c, l.topup_daily) },
      { label: 'Withdrawals per day', cell: ([c, l]) => (tier.withdrawals ? lim(c, l.withdraw_daily) : 'not allowed') },
      { label: 'Withdrawals per month', cell: ([c, l]) => (tier.withdrawals ? lim(c, l.withdraw_monthly) : 'not allowed') },
    ], Object.entries(tier.limits), `Tier ${tier.tier} limits`);
    const sub = k.submission;
    const parts = [h('p', {}, `Your tier: ${k.tier}. `,
      k.withdrawals ? 'You can withdraw.' : 'Withdrawals are not allowed at this tier.'),
    limits(k)];
    if (sub) {
      parts.push(h('p', {}, `Your latest request (tier ${sub.tier}): `, statusBadge(sub.status),
        sub.reason ? ` — ${sub.reason}` : ''));
    }
    if (k.next_tier && !(sub && sub.status === 'pending')) {
      const next = k.next_tier;
      const inputs = {};
      const form = h('form', { class: 'card' }, h('h3', {}, `Apply for tier ${next.tier}`),
        next.requires.map((name) => {
          const [label, props, hint] = KYC_FIELDS[name];
          inputs[name] = input({ name, required: true, ...props });
          return field(label, inputs[name], hint);
        }),
        h('button', { type: 'submit' }, 'Submit for review'));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        msg.reset();
        const data = { tier: next.tier };
        for (const [name, inp] of Object.entries(inputs)) {
          data[name] = name === 'country' ? inp.value.trim().toUpperCase() : inp.value.trim();
          if (!data[name]) return msg.error(`${KYC_FIELDS[name][0]} is required.`);
        }
        await busy(form, async () => {
          try {
            await api('POST', '/api/v1/kyc', data);
            msg.ok('Submitted: an operator reviews it soon.');
            load();
          } catch (err) {
            msg.error(err);
          }
        });
      });
      parts.push(h('h3', {}, `Tier ${next.tier}`), limits(next), form);
    }
    clear(body, parts);
  }
  const lim = (c, v) => (v === null || v === undefined ? 'no limit' : money(v, c));
}

// ---------------------------------------------------------------- 2FA

function viewSecurity(el) {
  const msg = message();
  const body = h('div', {});
  el.append(heading('Two-factor authentication'), body, msg);
  draw();

  async function draw() {
    const me = await api('GET', '/api/v1/me');
    s.me = me;
    if (me.totp_enabled) {
      const code = input({ name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code' });
      const form = h('form', { class: 'card' },
        h('p', {}, 'Two-factor authentication is on.'),
        field('Authentication code', code, 'A current code or a recovery code, to turn it off.'),
        h('button', { type: 'submit', class: 'secondary' }, 'Turn off'));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const v = code.value.trim();
        await busy(form, async () => {
          try {
            await api('POST', '/api/v1/auth/2fa/disable',
                      /^[0-9]{6,10}$/.test(v) ? { totp_code: v } : { recovery_code: v });
            msg.ok('Two-factor authentication is off.');
            draw();
          } catch (err) {
            msg.error(err);
          }
        });
      });
      return clear(body, form);
    }
    clear(body, h('div', { class: 'card' },
      h('p', {}, 'Protect your wallet with a code from an authenticator app at every sign-in.'),
      button('Set up two-factor authentication', enroll)));
  }

  async function enroll() {
    msg.reset();
    let out;
    try {
      out = await api('POST', '/api/v1/auth/2fa/enroll');
    } catch (err) {
      return msg.error(err);
    }
    const code = input({ name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code',
                         required: true });
    const form = h('form', { class: 'card' },
      h('p', {}, 'Scan this code with your authenticator app, or type the key below.'),
      h('img', { src: out.qr_code.startsWith('data:image/svg+xml') ? out.qr_code : '',
                 alt: 'QR code for your authenticator app', class: 'qr', width: '200', height: '200' }),
      h('p', {}, 'Key: ', h('code', { class: 'secret' }, out.secret)),
      field('Authentication code', code, 'The 6-digit code the app shows now.'),
      h('button', { type: 'submit' }, 'Turn on'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      await busy(form, async () => {
        try {
          const done = await api('POST', '/api/v1/auth/2fa/confirm', { code: code.value.trim() });
          clear(body, h('div', { class: 'card' },
            h('p', {}, 'Two-factor authentication is on. Keep these recovery codes somewhere safe: each works once, and they are shown only now.'),
            h('ul', { class: 'codes' }, done.recovery_codes.map((c) => h('li', {}, h('code', {}, c)))),
            h('p', { class: 'muted' }, 'Sign in again with a code to use the console.')));
        } catch (err) {
          msg.error(err);
        }
      });
    });
    clear(body, form);
    code.focus();
  }
}

start();
