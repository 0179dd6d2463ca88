/**
 * `ServiceClient` (internal API, service key) and `UserClient` (user API, a user's token) on
 * `fetch`, with idempotent retries and problem errors.
 *
 * Every money-moving call sends an `Idempotency-Key` (yours, or a fresh UUID v4) that stays
 * the same on its retries, so Coinpurse applies it at most once.
 */
import { randomUUID } from "node:crypto";

import { CoinpurseError, CoinpurseNetworkError, UnexpectedResponse, errorFor } from "./errors.js";
import type { Problem } from "./errors.js";
import {
  DEFAULT_RETRY, nextDelayMs, parseRetryAfter,
} from "./retry.js";
import type { Outcome, RetryEvent, RetryPolicy } from "./retry.js";
import type {
  Method, MethodsOf, Page, Path, PathParams, QueryParams, RequestBody, ResponseBody,
} from "./types.js";

export const PAGE_SIZE = 100; // the server's largest page: fewest round trips when iterating
const VERSION = "0.1.0";

export interface ClientOptions {
  /** Per attempt, in milliseconds (default 10 s). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  onRetry?: (event: RetryEvent) => void;
  /** Another fetch (a proxy agent, a test double); default the global one. */
  fetch?: typeof fetch;
}

export interface RequestOptions<P extends Path, M extends Method> {
  params?: PathParams<P, M>;
  query?: QueryParams<P, M>;
  body?: RequestBody<P, M>;
  /** Send an Idempotency-Key: `idempotencyKey`, or a fresh UUID v4. */
  idempotent?: boolean;
  idempotencyKey?: string;
  /** Whether sending it twice is harmless; default: reads, PUTs and idempotent calls. */
  replaySafe?: boolean;
}

/** Options of a money-moving call. */
export interface MoneyOptions {
  /** Reused on every retry; default a fresh UUID v4 per call. */
  idempotencyKey?: string;
}

type Query = Record<string, string | number | boolean | null | undefined>;

interface Answer {
  status: number;
  contentType: string;
  text: string;
  retryAfterS: number | undefined;
}

function fillPath(template: string, params: Record<string, string> | undefined): string {
  return template.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const value = params?.[name];
    if (value === undefined) throw new TypeError(`missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
}

/** Refuse amounts JSON cannot carry exactly: a float, or an integer past 2^53. */
function checkAmounts(value: unknown): void {
  if (Array.isArray(value)) {
    value.forEach(checkAmounts);
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (key === "metadata" || key === "destination") continue; // opaque to Coinpurse
      if (key === "amount" && typeof item === "number" && !Number.isSafeInteger(item)) {
        throw new RangeError(`amount ${item} is not a safe integer number of minor units`);
      }
      checkAmounts(item);
    }
  }
}

function problemCode(answer: Answer): string | undefined {
  if (!answer.contentType.includes("json")) return undefined;
  try {
    const body: unknown = JSON.parse(answer.text);
    const code = (body as { code?: unknown } | null)?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

function errorFrom(answer: Answer, idempotencyKey: string | undefined): CoinpurseError {
  const context = { status: answer.status, idempotencyKey, retryAfterS: answer.retryAfterS };
  if (problemCode(answer) !== undefined) {
    return errorFor(JSON.parse(answer.text) as Problem, context);
  }
  return new UnexpectedResponse(
    { title: `HTTP ${answer.status}`, detail: answer.text.slice(0, 500) }, context);
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Every item of every page, newest first, from `fetchPage(cursor)`. */
export async function* paginate<T>(
  fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
): AsyncGenerator<T, void, undefined> {
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    yield* page.data;
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
}

export abstract class BaseClient {
  protected readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  private readonly fetchImpl: typeof fetch;

  protected constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.onRetry = options.onRetry;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  protected abstract authHeaders(): Record<string, string>;

  /** Any operation of the API, by method and path, typed from the OpenAPI document. */
  async request<P extends Path, M extends MethodsOf<P>>(
    method: M, path: P, options: RequestOptions<P, M> = {},
  ): Promise<ResponseBody<P, M>> {
    const idempotencyKey = options.idempotencyKey
      ?? (options.idempotent ? randomUUID() : undefined);
    const replaySafe = options.replaySafe
      ?? (method !== "post" || idempotencyKey !== undefined);
    let url = this.baseUrl + fillPath(path, options.params as Record<string, string>);
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries((options.query ?? {}) as Query)) {
      if (value !== undefined && value !== null) query.set(key, String(value));
    }
    if ([...query].length > 0) url += `?${query}`;
    checkAmounts(options.body);
    const headers: Record<string, string> = {
      accept: "application/json, application/problem+json",
      "user-agent": `coinpurse-client-typescript/${VERSION}`,
      ...this.authHeaders(),
    };
    if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const answer = await this.send(method.toUpperCase(), url, path, headers, body,
                                   idempotencyKey, replaySafe);
    if (answer.status >= 200 && answer.status < 300) {
      return (answer.text ? JSON.parse(answer.text) : undefined) as ResponseBody<P, M>;
    }
    throw errorFrom(answer, idempotencyKey);
  }

  private async send(method: string, url: string, path: string, headers: Record<string, string>,
                     body: string | undefined, idempotencyKey: string | undefined,
                     replaySafe: boolean): Promise<Answer> {
    const started = Date.now();
    for (let attempt = 1; ; attempt += 1) {
      let outcome: Outcome;
      let answer: Answer | undefined;
      try {
        const response = await this.fetchImpl(url, {
          method, headers, body, signal: AbortSignal.timeout(this.timeoutMs),
        });
        answer = {
          status: response.status,
          contentType: response.headers.get("content-type") ?? "",
          text: await response.text(),
          retryAfterS: parseRetryAfter(response.headers.get("retry-after")),
        };
        outcome = { kind: "answer", status: answer.status, code: problemCode(answer),
                    retryAfterS: answer.retryAfterS };
      } catch (error) {
        outcome = { kind: "error", error };
      }
      const delay = nextDelayMs(this.retry, outcome, attempt, Date.now() - started, replaySafe);
      if (delay === undefined) {
        if (answer !== undefined) return answer;
        const error = outcome.kind === "error" ? outcome.error : undefined;
        let message = `${method} ${path} got no answer after ${attempt} attempt(s): ${error}`;
        if (idempotencyKey !== undefined) {
          message += `; retry with Idempotency-Key ${idempotencyKey} to learn the outcome`;
        }
        throw new CoinpurseNetworkError(message, idempotencyKey, attempt, error);
      }
      const event: RetryEvent = { method, path, attempt, delayMs: delay, idempotencyKey };
      if (outcome.kind === "answer") {
        event.status = outcome.status;
        if (outcome.code !== undefined) event.code = outcome.code;
      } else {
        event.error = outcome.error;
      }
      this.onRetry?.(event);
      await sleep(delay);
    }
  }
}

// Request and answer types, by route.
type In<P extends Path, M extends Method> = RequestBody<P, M>;
type Out<P extends Path, M extends Method> = ResponseBody<P, M>;
type Q<P extends Path, M extends Method> = QueryParams<P, M>;

export type CreditRequest = In<"/internal/v1/wallet/credit", "post">;
export type WalletTransaction = Out<"/internal/v1/wallet/credit", "post">;
export type TransferRequest = In<"/internal/v1/transfers", "post">;
export type Transaction = Out<"/internal/v1/transfers", "post">;
export type BatchRequest = In<"/internal/v1/transfers/batch", "post">;
export type BatchOutcome = Out<"/internal/v1/transfers/batch", "post">;
export type Wallets = Out<"/internal/v1/wallet/balance/{user_id}", "get">;
export type Account = Out<"/internal/v1/accounts/{address}", "get">;
export type TransactionAudit = Out<"/internal/v1/transactions/{transaction_id}", "get">;
export type AuditHistoryPage = Out<"/internal/v1/wallet/transactions/{user_id}", "get">;
export type AuditHistoryEntry = AuditHistoryPage["data"][number];
export type HoldRequest = In<"/internal/v1/holds", "post">;
export type Hold = Out<"/internal/v1/holds", "post">;
export type Agency = Out<"/internal/v1/users/{user_id}/agency", "get">;
export type HistoryPage = Out<"/api/v1/wallet/transactions", "get">;
export type HistoryEntry = HistoryPage["data"][number];
export type GiftCatalog = Out<"/api/v1/gifts/catalog", "get">;
export type GiftRequest = In<"/api/v1/gifts", "post">;
export type SentGift = Out<"/api/v1/gifts", "post">;
export type Gift = Out<"/api/v1/gifts", "get">["data"][number];
export type Packages = Out<"/api/v1/topup/packages", "get">;
export type TopupRequest = In<"/api/v1/topups", "post">;
export type TopupOrder = Out<"/api/v1/topups", "post">;
export type VerifyRequest = Exclude<In<"/api/v1/topups/{order_id}/verify", "post">, null>;
export type WithdrawalRequest = In<"/api/v1/withdrawals", "post">;
export type Withdrawal = Out<"/api/v1/withdrawals/{withdrawal_id}", "get">;
/** A new withdrawal, with the wallet after its hold. */
export type WithdrawalCreated = Out<"/api/v1/withdrawals", "post">;
export type KycRequest = In<"/api/v1/kyc", "post">;
export type KycSubmission = Out<"/api/v1/kyc", "post">;
export type KycStatus = Out<"/api/v1/kyc", "get">;
export type Me = Out<"/api/v1/me", "get">;

type HistoryQuery = Omit<Q<"/internal/v1/wallet/transactions/{user_id}", "get">, "cursor">;
type MyHistoryQuery = Omit<Q<"/api/v1/wallet/transactions", "get">, "cursor">;
type GiftQuery = Omit<Q<"/api/v1/gifts", "get">, "cursor">;
type PageQuery = { limit?: number };

/** The internal service API, authenticated with a service key (`X-API-Key`). */
export class ServiceClient extends BaseClient {
  private readonly headers: Record<string, string>;

  constructor(baseUrl: string, apiKey: string,
              options: ClientOptions & { serviceName?: string } = {}) {
    super(baseUrl, options);
    this.headers = { "x-api-key": apiKey };
    if (options.serviceName !== undefined) this.headers["x-service-name"] = options.serviceName;
  }

  protected authHeaders(): Record<string, string> {
    return this.headers;
  }

  /** Move `amount` from your service's account to the user's wallet. */
  credit(body: CreditRequest, options: MoneyOptions = {}): Promise<WalletTransaction> {
    return this.request("post", "/internal/v1/wallet/credit",
                        { body, idempotent: true, ...options });
  }

  /** Move `amount` from the user's wallet back to your service; `InsufficientFunds` if short. */
  debit(body: CreditRequest, options: MoneyOptions = {}): Promise<WalletTransaction> {
    return this.request("post", "/internal/v1/wallet/debit",
                        { body, idempotent: true, ...options });
  }

  /** One atomic transaction of up to 64 postings between any addresses. */
  transfer(body: TransferRequest, options: MoneyOptions = {}): Promise<Transaction> {
    return this.request("post", "/internal/v1/transfers", { body, idempotent: true, ...options });
  }

  /** Up to 1,000 transfers, one idempotency key, one result each (refusals are results). */
  transferBatch(body: BatchRequest, options: MoneyOptions = {}): Promise<BatchOutcome> {
    return this.request("post", "/internal/v1/transfers/batch",
                        { body, idempotent: true, ...options });
  }

  balance(userId: string): Promise<Wallets> {
    return this.request("get", "/internal/v1/wallet/balance/{user_id}",
                        { params: { user_id: userId } });
  }

  account(address: string): Promise<Account> {
    return this.request("get", "/internal/v1/accounts/{address}", { params: { address } });
  }

  getTransaction(transactionId: string): Promise<TransactionAudit> {
    return this.request("get", "/internal/v1/transactions/{transaction_id}",
                        { params: { transaction_id: transactionId } });
  }

  /** One page of the user's history (audit view), newest first. */
  listTransactions(userId: string,
                   query: Q<"/internal/v1/wallet/transactions/{user_id}", "get"> = {},
  ): Promise<AuditHistoryPage> {
    return this.request("get", "/internal/v1/wallet/transactions/{user_id}",
                        { params: { user_id: userId }, query });
  }

  /** Every entry of the user's history, newest first (`limit`: the page size). */
  iterTransactions(userId: string, query: HistoryQuery = {}): AsyncGenerator<AuditHistoryEntry> {
    return paginate((cursor) => this.listTransactions(
      userId, { ...query, limit: query.limit ?? PAGE_SIZE, cursor }));
  }

  placeHold(body: HoldRequest, options: MoneyOptions = {}): Promise<Hold> {
    return this.request("post", "/internal/v1/holds", { body, idempotent: true, ...options });
  }

  /** Move `amount` (default: all) of the hold to its destination; the rest is released. */
  captureHold(holdId: string, amount?: number, options: MoneyOptions = {}): Promise<Hold> {
    return this.request("post", "/internal/v1/holds/{hold_id}/capture", {
      params: { hold_id: holdId }, body: amount === undefined ? {} : { amount },
      idempotent: true, ...options,
    });
  }

  voidHold(holdId: string, options: MoneyOptions = {}): Promise<Hold> {
    return this.request("post", "/internal/v1/holds/{hold_id}/void",
                        { params: { hold_id: holdId }, idempotent: true, ...options });
  }

  getHold(holdId: string): Promise<Hold> {
    return this.request("get", "/internal/v1/holds/{hold_id}", { params: { hold_id: holdId } });
  }

  setAgency(userId: string, agencyId: string | null): Promise<Agency> {
    return this.request("put", "/internal/v1/users/{user_id}/agency",
                        { params: { user_id: userId }, body: { agency_id: agencyId } });
  }

  getAgency(userId: string): Promise<Agency> {
    return this.request("get", "/internal/v1/users/{user_id}/agency",
                        { params: { user_id: userId } });
  }
}

/** The user API, authenticated with a user's token; `token` may be a function (refresh). */
export class UserClient extends BaseClient {
  private readonly token: string | (() => string);

  constructor(baseUrl: string, token: string | (() => string), options: ClientOptions = {}) {
    super(baseUrl, options);
    this.token = token;
  }

  protected authHeaders(): Record<string, string> {
    const token = typeof this.token === "function" ? this.token() : this.token;
    return { authorization: `Bearer ${token}` };
  }

  balance(): Promise<Wallets> {
    return this.request("get", "/api/v1/wallet/balance");
  }

  listTransactions(query: Q<"/api/v1/wallet/transactions", "get"> = {}): Promise<HistoryPage> {
    return this.request("get", "/api/v1/wallet/transactions", { query });
  }

  iterTransactions(query: MyHistoryQuery = {}): AsyncGenerator<HistoryEntry> {
    return paginate((cursor) => this.listTransactions(
      { ...query, limit: query.limit ?? PAGE_SIZE, cursor }));
  }

  async giftCatalog(): Promise<GiftCatalog["data"]> {
    return (await this.request("get", "/api/v1/gifts/catalog")).data;
  }

  /** A catalog gift (`gift_type`) or an `amount` of a `currency`. */
  sendGift(body: GiftRequest, options: MoneyOptions = {}): Promise<SentGift> {
    return this.request("post", "/api/v1/gifts", { body, idempotent: true, ...options });
  }

  listGifts(query: Q<"/api/v1/gifts", "get"> = {}): Promise<Page<Gift>> {
    return this.request("get", "/api/v1/gifts", { query });
  }

  iterGifts(query: GiftQuery = {}): AsyncGenerator<Gift> {
    return paginate((cursor) => this.listGifts(
      { ...query, limit: query.limit ?? PAGE_SIZE, cursor }));
  }

  topupPackages(): Promise<Packages> {
    return this.request("get", "/api/v1/topup/packages");
  }

  /** Start a top-up; send the user to `checkout_url` (or use `client_params`). */
  createTopup(body: TopupRequest, options: MoneyOptions = {}): Promise<TopupOrder> {
    return this.request("post", "/api/v1/topups", { body, idempotent: true, ...options });
  }

  listTopups(query: Q<"/api/v1/topups", "get"> = {}): Promise<Page<TopupOrder>> {
    return this.request("get", "/api/v1/topups", { query });
  }

  iterTopups(query: PageQuery = {}): AsyncGenerator<TopupOrder> {
    return paginate((cursor) => this.listTopups({ limit: query.limit ?? PAGE_SIZE, cursor }));
  }

  getTopup(orderId: string): Promise<TopupOrder> {
    return this.request("get", "/api/v1/topups/{order_id}", { params: { order_id: orderId } });
  }

  /** Confirm a payment with what the checkout returned; safe to repeat (it credits once). */
  verifyTopup(orderId: string, proof: VerifyRequest = {}): Promise<TopupOrder> {
    return this.request("post", "/api/v1/topups/{order_id}/verify",
                        { params: { order_id: orderId }, body: proof, replaySafe: true });
  }

  requestWithdrawal(body: WithdrawalRequest,
                    options: MoneyOptions = {}): Promise<WithdrawalCreated> {
    return this.request("post", "/api/v1/withdrawals", { body, idempotent: true, ...options });
  }

  listWithdrawals(query: Q<"/api/v1/withdrawals", "get"> = {}): Promise<Page<Withdrawal>> {
    return this.request("get", "/api/v1/withdrawals", { query });
  }

  iterWithdrawals(query: PageQuery = {}): AsyncGenerator<Withdrawal> {
    return paginate((cursor) => this.listWithdrawals({ limit: query.limit ?? PAGE_SIZE, cursor }));
  }

  getWithdrawal(withdrawalId: string): Promise<Withdrawal> {
    return this.request("get", "/api/v1/withdrawals/{withdrawal_id}",
                        { params: { withdrawal_id: withdrawalId } });
  }

  /** Cancel a pending withdrawal; cancelling twice answers the cancelled one again. */
  cancelWithdrawal(withdrawalId: string): Promise<Withdrawal> {
    return this.request("post", "/api/v1/withdrawals/{withdrawal_id}/cancel",
                        { params: { withdrawal_id: withdrawalId }, replaySafe: true });
  }

  kycStatus(): Promise<KycStatus> {
    return this.request("get", "/api/v1/kyc");
  }

  /** Ask for a higher tier (not retried after a lost answer: a repeat would be refused). */
  submitKyc(body: KycRequest): Promise<KycSubmission> {
    return this.request("post", "/api/v1/kyc", { body });
  }

  me(): Promise<Me> {
    return this.request("get", "/api/v1/me");
  }
}
