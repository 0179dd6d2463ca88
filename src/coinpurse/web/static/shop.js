// The shop in the wallet: the catalog and buying, my orders, and the merchant area (my
// products, sales and refunds); and the refund form the console uses too. Every action is a
// call to the shop's API (/api/v1/products, /api/v1/orders, /api/v1/merchant/...).
// Product names and descriptions come from merchants: they only ever become text nodes.

import { api, ApiError, get, newKey, problemText } from './api.js';
import { clear, h, nextId } from './dom.js';
import { formatAmount, formatDate, parseAmount } from './format.js';
import {
  busy, button, dl, field, heading, input, message, pagedTable, select, table,
} from './ui.js';

const badge = (status) => h('span', { class: `badge ${status}` }, status.replace('_', ' '));

export function checkbox(label, props = {}) {
  const box = h('input', { type: 'checkbox', id: nextId('c'), ...props });
  const wrap = h('div', { class: 'field check' }, box, h('label', { for: box.id }, label));
  wrap.input = box;
  return wrap;
}

// "Refunded 40 of 500 points" under an order's status, when something was paid back.
function refundedNote(o, money) {
  return o.refunded_amount
    ? h('small', { class: 'block muted' }, `refunded ${money(o.refunded_amount, o.currency)}`)
    : null;
}

// Why a purchase was refused, in the buyer's words; nothing was charged in any of these.
function purchaseRefusal(err, money, quantity) {
  if (!(err instanceof ApiError)) return problemText(err);
  const p = err.problem;
  if (err.code === 'price_changed' && p.unit_price !== undefined) {
    return `The price changed: it is now ${money(p.unit_price, p.currency)}. Nothing was `
      + 'charged; check the new price and confirm again.';
  }
  if (err.code === 'out_of_stock' && p.stock !== undefined) {
    return p.stock ? `Only ${p.stock} left (you asked for ${quantity}). Nothing was charged.`
      : 'Sold out. Nothing was charged.';
  }
  if (err.code === 'insufficient_funds') return `Not enough money in your wallet: ${problemText(err)}`;
  return problemText(err);
}

// ---------------------------------------------------------------- the catalog

export function viewShop(el, ctx) {
  const { money } = ctx;
  const q = input({ type: 'search', name: 'q', maxlength: '100', autocomplete: 'off' });
  const currency = select('currency', [['', 'All currencies'],
    ...ctx.currencies().map((c) => [c.code, c.code])]);
  const inStock = checkbox('In stock only', { name: 'in_stock', checked: true });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Products' },
    field('Search products', q), field('Currency', currency), inStock,
    h('button', { type: 'submit' }, 'Search'));
  const msg = message();
  const list = h('div', {});
  el.append(heading('Shop'), filters, msg, list);
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(); });

  let products = [];
  let cursor = null;
  let open = null; // the product whose purchase panel is open
  async function load(more = false) {
    try {
      const page = await get('/api/v1/products', {
        q: q.value.trim(), currency: currency.value, in_stock: inStock.input.checked ? 'true' : '',
        limit: 24, cursor: more ? cursor : null,
      });
      products = more ? products.concat(page.data) : page.data;
      cursor = page.next_cursor;
      draw();
    } catch (err) {
      msg.error(err);
    }
  }

  function draw() {
    clear(list,
      products.length
        ? h('ul', { class: 'packages products' }, products.map((p) => h('li', {}, card(p))))
        : h('p', { class: 'muted' }, 'No product matches.'),
      cursor ? button('Load more', () => load(true), { class: 'secondary' }) : null);
  }

  function card(p) {
    const mine = ctx.me().id === p.merchant_id;
    const panel = h('div', {});
    const buy = button('Buy', () => { open = p.id; showPanel(p, panel); }, {
      'aria-label': `Buy ${p.name}`, disabled: !p.in_stock,
    });
    const article = h('article', { class: 'card product', 'aria-label': p.name },
      h('h3', {}, p.name),
      p.description ? h('p', { class: 'description' }, p.description) : null,
      h('p', { class: 'price' }, money(p.price, p.currency)),
      h('p', { class: 'muted small' }, p.in_stock ? `${p.stock} in stock` : 'Sold out',
        ' · sold by ', p.merchant_id),
      mine ? h('p', { class: 'muted small' }, 'Your product.') : buy,
      panel);
    if (open === p.id && p.in_stock && !mine) showPanel(p, panel);
    return article;
  }

  function showPanel(p, panel) {
    const max = Math.min(p.stock, 100);
    const quantity = input({ type: 'number', name: 'quantity', min: '1', max: String(max),
                             step: '1', value: '1', inputmode: 'numeric', required: true });
    const total = h('span', {}, money(p.price, p.currency));
    const available = ctx.available(p.currency);
    let key = newKey();
    const confirmBtn = h('button', { type: 'submit' }, 'Confirm purchase');
    const titleId = nextId('buy');
    const form = h('form', { class: 'confirm', role: 'group', 'aria-labelledby': titleId },
      h('h4', { id: titleId }, 'Confirm your purchase'),
      field('Quantity', quantity, `1 to ${max}`),
      dl([['Unit price', money(p.price, p.currency)], ['Total', total],
          available !== null ? ['In your wallet', money(available, p.currency)] : null]),
      h('div', { class: 'row' }, confirmBtn,
        button('Cancel', () => { open = null; clear(panel); }, { class: 'secondary' })));
    quantity.addEventListener('input', () => {
      const n = Number(quantity.value);
      total.textContent = Number.isInteger(n) && n > 0 ? money(p.price * n, p.currency) : '—';
      key = newKey(); // another request: a key of its own
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      msg.reset();
      const n = Number(quantity.value);
      if (!Number.isInteger(n) || n < 1 || n > max) {
        return msg.error(`Quantity: a whole number from 1 to ${max}.`);
      }
      await busy(form, async () => {
        try {
          const order = await api('POST', '/api/v1/orders', {
            product_id: p.id, quantity: n, expected_unit_price: p.price,
          }, { idempotencyKey: key });
          open = null;
          msg.ok(`Bought ${order.quantity} × ${order.product_name} for `
            + `${money(order.amount, order.currency)}. Your ${order.currency} balance: `
            + `${money(order.buyer_wallet.available, order.currency)}.`);
          ctx.refresh();
          load();
        } catch (err) {
          if (err instanceof ApiError) key = newKey(); // refused: a retry is a new request
          msg.error(purchaseRefusal(err, money, n));
          if (err instanceof ApiError && ['price_changed', 'out_of_stock',
            'product_inactive', 'not_found'].includes(err.code)) load();
        }
      });
    });
    clear(panel, form);
    quantity.focus();
  }

  load();
}

// ---------------------------------------------------------------- my orders

export function viewOrders(el, ctx) {
  const { money } = ctx;
  const status = select('status', [['', 'Any status'], ['paid', 'paid'],
    ['partially_refunded', 'partially refunded'], ['refunded', 'refunded']]);
  const form = h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
    field('Status', status));
  const list = pagedTable({
    caption: 'Your orders', empty: 'No orders yet: visit the shop.',
    load: (cursor) => get('/api/v1/orders', { status: status.value, limit: 20, cursor }),
    columns: [
      { label: 'When', cell: (o) => formatDate(o.created_at) },
      { label: 'Product', cell: (o) => h('span', {}, o.product_name,
        h('small', { class: 'block muted' }, `from ${o.merchant_id}`)) },
      { label: 'Quantity', class: 'num', cell: (o) => String(o.quantity) },
      { label: 'Paid', class: 'num', cell: (o) => money(o.amount, o.currency) },
      { label: 'Status', cell: (o) => h('span', {}, badge(o.status), refundedNote(o, money)) },
    ],
  });
  status.addEventListener('change', () => list.reload());
  el.refresh = () => list.reload();
  el.append(heading('My orders'), form, list);
}

// ---------------------------------------------------------------- my products (merchants)

export function viewProducts(el, ctx) {
  const { money } = ctx;
  const msg = message();
  const editor = h('div', {});
  const sellable = ctx.currencies().filter((c) => c.sellable);
  const name = input({ name: 'name', maxlength: '120', required: true, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', maxlength: '2000', rows: '2' });
  const price = input({ name: 'price', inputmode: 'decimal', required: true });
  const currency = select('currency', sellable.map((c) => [c.code, c.code]));
  const stock = input({ type: 'number', name: 'stock', min: '0', step: '1', value: '1',
                        inputmode: 'numeric', required: true });
  const active = checkbox('For sale now', { name: 'active', checked: true });
  const form = h('form', { class: 'card', 'aria-label': 'New product' },
    h('h3', {}, 'New product'),
    field('Name', name), field('Description', description, 'Optional, shown in the shop.'),
    field('Price', price, 'Per unit.'), field('Currency', currency),
    field('Stock', stock, 'Units for sale.'), active,
    h('button', { type: 'submit' }, 'Add product'));
  const list = pagedTable({
    caption: 'Your products', empty: 'No products yet.',
    load: (cursor) => get('/api/v1/merchant/products', { limit: 20, cursor }),
    columns: [
      { label: 'Product', cell: (p) => h('span', {}, p.name,
        p.description ? h('small', { class: 'block muted' }, p.description) : null) },
      { label: 'Price', class: 'num', cell: (p) => money(p.price, p.currency) },
      { label: 'Stock', class: 'num', cell: (p) => String(p.stock) },
      { label: 'Status', cell: (p) => badge(p.active ? 'active' : 'inactive') },
      { label: '', cell: (p) => h('div', { class: 'row' },
        button('Edit', () => edit(p), { class: 'secondary', 'aria-label': `Edit ${p.name}` }),
        deleteButton(p)) },
    ],
  });
  el.refresh = () => list.reload();
  el.append(heading('My products'),
    sellable.length ? form : h('p', {}, 'No currency may be used for products here.'),
    msg, editor, list);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    msg.reset();
    let units;
    try {
      units = parseAmount(price.value, ctx.scale(currency.value));
    } catch (err) {
      return msg.error(`Price: ${err.message}`);
    }
    const count = Number(stock.value);
    if (!name.value.trim()) return msg.error('Name: enter the product\'s name.');
    if (!Number.isSafeInteger(count) || count < 0) return msg.error('Stock: a whole number, 0 or more.');
    await busy(form, async () => {
      try {
        const p = await api('POST', '/api/v1/products', {
          name: name.value.trim(), description: description.value.trim(), price: units,
          currency: currency.value, stock: count, active: active.input.checked,
        });
        msg.ok(`Added ${p.name}: ${money(p.price, p.currency)}, ${p.stock} in stock.`);
        name.value = '';
        description.value = '';
        price.value = '';
        list.reload();
      } catch (err) {
        msg.error(err);
      }
    });
  });

  function edit(p) {
    msg.reset();
    const eName = input({ name: 'name', maxlength: '120', required: true, value: p.name });
    const eDescription = h('textarea', { name: 'description', maxlength: '2000', rows: '2' });
    eDescription.value = p.description;
    const ePrice = input({ name: 'price', inputmode: 'decimal', required: true,
                           value: formatAmount(p.price, ctx.scale(p.currency)).replace(/,/g, '') });
    const eStock = input({ type: 'number', name: 'stock', min: '0', step: '1',
                           value: String(p.stock), inputmode: 'numeric', required: true });
    const eActive = checkbox('For sale', { name: 'active', checked: p.active });
    const titleId = nextId('edit');
    const eForm = h('form', { class: 'card confirm', role: 'group', 'aria-labelledby': titleId },
      h('h3', { id: titleId }, `Edit ${p.name}`),
      field('Name', eName), field('Description', eDescription),
      field(`Price (${p.currency})`, ePrice), field('Stock', eStock, 'The units for sale from now on.'),
      eActive,
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save changes'),
        button('Cancel', () => clear(editor), { class: 'secondary' })));
    eForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      let units;
      try {
        units = parseAmount(ePrice.value, ctx.scale(p.currency));
      } catch (err) {
        return msg.error(`Price: ${err.message}`);
      }
      const count = Number(eStock.value);
      if (!Number.isSafeInteger(count) || count < 0) return msg.error('Stock: a whole number, 0 or more.');
      const changes = {};
      if (eName.value.trim() !== p.name) changes.name = eName.value.trim();
      if (eDescription.value.trim() !== p.description) changes.description = eDescription.value.trim();
      if (units !== p.price) changes.price = units;
      if (count !== p.stock) changes.stock = count;
      if (eActive.input.checked !== p.active) changes.active = eActive.input.checked;
      if (!Object.keys(changes).length) return msg.error('Nothing to save: change a field first.');
      await busy(eForm, async () => {
        try {
          // If-Match: the version this form was filled from; a sale since then is not
          // overwritten (412), the merchant sees the new stock and decides again.
          const saved = await api('PATCH', `/api/v1/products/${p.id}`, changes,
                                  { headers: { 'If-Match': `"v${p.version}"` } });
          clear(editor);
          msg.ok(`Saved ${saved.name}.`);
          list.reload();
        } catch (err) {
          if (err instanceof ApiError && err.code === 'precondition_failed') {
            clear(editor);
            list.reload();
            return msg.error('The product changed since you opened it (a sale or another '
              + 'edit): the list is up to date again; edit it once more.');
          }
          msg.error(err);
        }
      });
    });
    clear(editor, eForm);
    eName.focus();
  }

  function deleteButton(p) {
    const b = button('Delete', async () => {
      if (b.dataset.armed !== 'yes') {
        b.dataset.armed = 'yes';
        b.textContent = 'Confirm delete';
        b.setAttribute('aria-label', `Confirm delete ${p.name}`);
        return;
      }
      try {
        await api('DELETE', `/api/v1/products/${p.id}`, undefined,
                  { headers: { 'If-Match': `"v${p.version}"` } });
        msg.ok(`Deleted ${p.name}: it has left the shop; its orders still show it.`);
        list.reload();
      } catch (err) {
        msg.error(err);
        list.reload();
      }
    }, { class: 'danger', 'aria-label': `Delete ${p.name}` });
    return b;
  }
}

// ---------------------------------------------------------------- refunds (merchants, admins)

// An inline form that refunds one order, in full or in part, through the shop's API (its
// merchant or an admin may). ``onDone`` runs after a refund went through.
export function refundForm(order, { money, scale, msg, onDone, onCancel }) {
  const left = order.amount - order.refunded_amount;
  const amount = input({ name: 'amount', inputmode: 'decimal' });
  const reason = input({ name: 'reason', maxlength: '500', required: true, autocomplete: 'off' });
  const restock = checkbox('Put the units back in stock', { name: 'restock' });
  const key = newKey();
  const titleId = nextId('refund');
  const form = h('form', { class: 'card confirm', role: 'group', 'aria-labelledby': titleId },
    h('h3', { id: titleId }, `Refund ${order.product_name} to ${order.buyer_id}`),
    dl([['Paid', money(order.amount, order.currency)],
        ['Already refunded', money(order.refunded_amount, order.currency)]]),
    field('Amount', amount, `Empty: everything left, ${money(left, order.currency)}.`),
    field('Reason', reason), restock,
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Confirm refund'),
      button('Cancel', onCancel, { class: 'secondary' })));
  let sent = key;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    msg.reset();
    const body = { restock: restock.input.checked, reason: reason.value.trim() };
    if (!body.reason) return msg.error('Reason: say why, the buyer sees it in the order.');
    if (amount.value.trim()) {
      try {
        body.amount = parseAmount(amount.value, scale(order.currency));
      } catch (err) {
        return msg.error(`Amount: ${err.message}`);
      }
    }
    await busy(form, async () => {
      try {
        const r = await api('POST', `/api/v1/orders/${order.id}/refund`, body,
                            { idempotencyKey: sent });
        msg.ok(`Refunded ${money(r.amount, order.currency)} to ${order.buyer_id}`
          + (r.restock_quantity ? `; ${r.restock_quantity} back in stock.` : '.'));
        onDone(r);
      } catch (err) {
        if (err instanceof ApiError && err.code !== 'insufficient_funds') sent = newKey();
        msg.error(err);
      }
    });
  });
  setTimeout(() => reason.focus());
  return form;
}

// ---------------------------------------------------------------- sales (merchants)

export function viewSales(el, ctx) {
  const { money } = ctx;
  const msg = message();
  const totals = h('div', {});
  const refund = h('div', {});
  const list = pagedTable({
    caption: 'Your sales', empty: 'No sales yet.',
    load: async (cursor) => {
      const page = await get('/api/v1/merchant/sales', { limit: 20, cursor });
      if (!cursor) drawTotals(page.totals);
      return page;
    },
    columns: [
      { label: 'When', cell: (o) => formatDate(o.created_at) },
      { label: 'Buyer', cell: (o) => o.buyer_id },
      { label: 'Product', cell: (o) => `${o.quantity} × ${o.product_name}` },
      { label: 'Paid', class: 'num', cell: (o) => money(o.amount, o.currency) },
      { label: 'Fee', class: 'num', cell: (o) => money(o.fee, o.currency) },
      { label: 'Status', cell: (o) => h('span', {}, badge(o.status), refundedNote(o, money)) },
      { label: '', cell: (o) => (o.status === 'refunded' ? '' : button('Refund', () => {
        clear(refund, refundForm(o, {
          money, scale: ctx.scale, msg,
          onDone: () => { clear(refund); list.reload(); ctx.refresh(); },
          onCancel: () => clear(refund),
        }));
      }, { class: 'secondary', 'aria-label': `Refund ${o.product_name} bought by ${o.buyer_id}` })) },
    ],
  });
  function drawTotals(rows) {
    clear(totals, rows.length ? table([
      { label: 'Product', cell: (t) => t.product_name },
      { label: 'Orders', class: 'num', cell: (t) => String(t.orders) },
      { label: 'Units', class: 'num', cell: (t) => String(t.quantity) },
      { label: 'Sold', class: 'num', cell: (t) => money(t.amount, t.currency) },
      { label: 'Fees', class: 'num', cell: (t) => money(t.fee, t.currency) },
      { label: 'Refunded', class: 'num', cell: (t) => money(t.refunded_amount, t.currency) },
      { label: 'You kept', class: 'num', cell: (t) => money(t.net_amount, t.currency) },
    ], rows, 'Totals per product') : null);
  }
  el.refresh = () => list.reload();
  el.append(heading('Sales'),
    h('p', { class: 'muted small' }, 'What your products sold, less the platform\'s fee. '
      + 'A refund pays the buyer back from your wallet; the fee is returned pro rata.'),
    totals, msg, refund, list);
}
