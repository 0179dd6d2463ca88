/**
 * When to send a request again, and how long to wait first.
 *
 * Retries are safe because every money-moving call carries an `Idempotency-Key` that stays
 * the same on every attempt: Coinpurse applies the call once and replays its answer. A
 * request without that guarantee (`replaySafe: false`) is retried only when it certainly
 * never reached the server (no connection, or refused by the rate limiter).
 */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** No wait starts that would end later than this after the first attempt. */
  totalTimeoutMs: number;
  /** Full jitter: a random wait in [0, min(backoffMaxMs, backoffBaseMs * 2^(n-1))]. */
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  totalTimeoutMs: 30_000,
  backoffBaseMs: 200,
  backoffMaxMs: 5_000,
};

/** Passed to `onRetry` before each wait: for logs and metrics. */
export interface RetryEvent {
  method: string;
  path: string;
  attempt: number;
  delayMs: number;
  idempotencyKey: string | undefined;
  status?: number;
  code?: string;
  error?: unknown;
}

/** What one attempt ended with: an answer (status, code, Retry-After), or an error. */
export type Outcome =
  | { kind: "answer"; status: number; code: string | undefined; retryAfterS: number | undefined }
  | { kind: "error"; error: unknown };

// Errors of Node's fetch (undici) that mean the connection was never made.
const NOT_SENT_CODES = new Set([
  "ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);
const UNAVAILABLE = new Set([502, 503, 504]);

function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === "string") return code;
    current = (current as Error & { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether the request certainly never reached the server. */
export function notSent(error: unknown): boolean {
  const code = causeCode(error);
  return code !== undefined && NOT_SENT_CODES.has(code);
}

/** Sent, maybe processed, no answer: a network failure or a timeout (not the caller's abort). */
export function noAnswer(error: unknown): boolean {
  if (error instanceof Error && error.name === "AbortError") return false;
  return (error instanceof TypeError) || (error instanceof Error && error.name === "TimeoutError")
    || causeCode(error) !== undefined;
}

export function isRetryable(outcome: Outcome, replaySafe: boolean): boolean {
  if (outcome.kind === "error") {
    return notSent(outcome.error) || (replaySafe && noAnswer(outcome.error));
  }
  if (outcome.status === 429) return true; // refused before anything ran
  if (outcome.status === 409) return replaySafe && outcome.code === "idempotency_key_in_use";
  return replaySafe && UNAVAILABLE.has(outcome.status);
}

/** Milliseconds to wait before the next attempt, or undefined to give up with this outcome. */
export function nextDelayMs(policy: RetryPolicy, outcome: Outcome, attempt: number,
                            elapsedMs: number, replaySafe: boolean,
                            random: () => number = Math.random): number | undefined {
  if (attempt >= policy.maxAttempts || !isRetryable(outcome, replaySafe)) return undefined;
  const jitter = random() * Math.min(policy.backoffMaxMs,
                                     policy.backoffBaseMs * 2 ** (attempt - 1));
  const serverWaitS = outcome.kind === "answer" ? outcome.retryAfterS : undefined;
  // The server knows when to come back; the small jitter keeps clients out of step.
  const delay = serverWaitS !== undefined ? serverWaitS * 1000 + jitter * 0.1 : jitter;
  if (elapsedMs + delay > policy.totalTimeoutMs) return undefined;
  return delay;
}

/** `Retry-After` in seconds: delta-seconds or an HTTP date; undefined if absent or bad. */
export function parseRetryAfter(value: string | null, now: number = Date.now()):
    number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const when = Date.parse(trimmed);
  return Number.isNaN(when) ? undefined : Math.max(0, (when - now) / 1000);
}
