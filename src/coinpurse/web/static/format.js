// Amounts are integers in minor units; a currency's scale says where the point goes.

export function formatAmount(amount, scale = 0) {
  const negative = amount < 0;
  let digits = String(Math.abs(amount));
  let fraction = '';
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    fraction = '.' + digits.slice(-scale);
    digits = digits.slice(0, -scale);
  }
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (negative ? '−' : '') + grouped + fraction;
}

export function formatMoney(amount, currency, scales) {
  return `${formatAmount(amount, scales[currency] ?? 0)} ${currency}`;
}

// "12.5" with scale 2 -> 1250. Refuses more decimals than the currency has.
export function parseAmount(text, scale = 0) {
  const t = String(text).trim().replace(/,/g, '');
  const m = /^(\d+)(?:\.(\d*))?$/.exec(t);
  if (!m) throw new Error('enter a positive number, such as 12 or 12.50');
  const fraction = m[2] || '';
  if (fraction.length > scale) {
    throw new Error(scale ? `at most ${scale} digits after the point` : 'a whole number');
  }
  const units = Number(m[1] + fraction.padEnd(scale, '0'));
  if (!Number.isSafeInteger(units) || units <= 0) throw new Error('enter an amount above zero');
  return units;
}

// A price in an ISO currency's minor units (999 usd -> $9.99).
export function formatPrice(price) {
  try {
    const code = price.currency.toUpperCase();
    const probe = new Intl.NumberFormat(undefined, { style: 'currency', currency: code });
    const digits = probe.resolvedOptions().maximumFractionDigits;
    return probe.format(price.amount / 10 ** digits);
  } catch {
    return `${price.amount} ${price.currency} (minor units)`;
  }
}

export function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
