/**
 * Check that a webhook really comes from Coinpurse, and is not an old one replayed.
 *
 *     Coinpurse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * During a secret rotation the header carries one `v1` per live secret, and a receiver may
 * likewise accept several secrets. Pass the raw body exactly as received (a re-serialised JSON
 * body does not match its signature).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "Coinpurse-Signature";
export const EVENT_ID_HEADER = "Coinpurse-Event-Id";
export const DEFAULT_TOLERANCE_S = 300;

/** The delivery is not authentic or too old: answer 400 and do not process it. */
export class WebhookSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookSignatureError";
  }
}

export interface VerifyOptions {
  toleranceS?: number;
  /** Unix seconds; default the clock. */
  now?: number;
}

function parse(header: string): { timestamp: number; signatures: string[] } {
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at < 0) continue;
    const name = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (name === "t") {
      if (!/^\d+$/.test(value)) throw new WebhookSignatureError("the timestamp is not a number");
      timestamp = Number(value);
    } else if (name === "v1") {
      signatures.push(value);
    }
  }
  if (timestamp === undefined) {
    throw new WebhookSignatureError(`no timestamp (t=) in the ${SIGNATURE_HEADER} header`);
  }
  if (signatures.length === 0) {
    throw new WebhookSignatureError(`no v1 signature in the ${SIGNATURE_HEADER} header`);
  }
  return { timestamp, signatures };
}

/** The hex `v1` value of `payload` signed at `timestamp`. */
export function expectedSignature(secret: string, timestamp: number,
                                  payload: string | Uint8Array): string {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(payload).digest("hex");
}

/**
 * Throw `WebhookSignatureError` unless `header` signs `payload` with one of the secrets within
 * `toleranceS` seconds of now; return the signed timestamp. Constant-time comparisons, and
 * every candidate is compared.
 */
export function verifySignature(payload: string | Uint8Array, header: string | null | undefined,
                                secret: string | string[], options: VerifyOptions = {}): number {
  if (!header) throw new WebhookSignatureError(`the ${SIGNATURE_HEADER} header is missing`);
  const secrets = typeof secret === "string" ? [secret] : secret;
  if (secrets.length === 0 || secrets.some((s) => !s)) {
    throw new TypeError("a webhook secret must not be empty");
  }
  const { timestamp, signatures } = parse(header);
  const tolerance = options.toleranceS ?? DEFAULT_TOLERANCE_S;
  const now = options.now ?? Date.now() / 1000;
  if (Math.abs(now - timestamp) > tolerance) {
    throw new WebhookSignatureError(
      `the signature timestamp is ${Math.trunc(now - timestamp)} s from now, outside the `
      + `${tolerance} s tolerance (a replayed or delayed delivery)`);
  }
  let matched = false;
  for (const candidate of secrets) {
    const expected = Buffer.from(expectedSignature(candidate, timestamp, payload));
    for (const signature of signatures) {
      const given = Buffer.from(signature);
      // Lengths are public (a hex SHA-256 is 64 characters); contents are compared in
      // constant time.
      if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
    }
  }
  if (!matched) throw new WebhookSignatureError("no signature matches the payload and secret");
  return timestamp;
}

/** Verify the delivery, then return its event (`id`, `type`, `created_at`, `data`). */
export function constructEvent<T = Record<string, unknown>>(
  payload: string | Uint8Array, header: string | null | undefined, secret: string | string[],
  options: VerifyOptions = {},
): T {
  verifySignature(payload, header, secret, options);
  const text = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
  const event: unknown = JSON.parse(text);
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    throw new WebhookSignatureError("the payload is not a JSON object");
  }
  return event as T;
}
