/**
 * The TypeScript client against a real `coinpurse serve` (started by pytest on SQLite and on
 * PostgreSQL): dropped connections, a request genuinely in flight, the server's rate limiter,
 * a gateway's 503, refusals, pagination and every operation.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import {
  CoinpurseError, CoinpurseNetworkError, HoldNotOpen, IdempotencyKeyReused, InsufficientFunds,
  InvalidSignature, KycSubmissionPending, NotFound, RateLimited, ServiceClient,
  ServiceUnavailable, UnexpectedResponse, UnknownCurrency, UserClient, ValidationFailed,
} from "../src/index.js";
import type { ClientOptions, CreditRequest, RetryEvent } from "../src/index.js";
import { DbLock, env, freshUser, userToken } from "./support/env.js";
import { FaultProxy } from "./support/proxy.js";

const CREDIT = "/internal/v1/wallet/credit";
const FAST: ClientOptions["retry"] = {
  maxAttempts: 5, totalTimeoutMs: 20_000, backoffBaseMs: 50, backoffMaxMs: 500,
};

function service(baseUrl = env.baseUrl, options: ClientOptions = {}, apiKey = env.apiKey) {
  return new ServiceClient(baseUrl, apiKey, { retry: FAST, ...options });
}

function credit(userId: string, amount = 50): CreditRequest {
  return { user_id: userId, currency: "points", amount, description: "Quest reward",
           reference_id: `quest-${randomUUID().slice(0, 8)}` };
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

async function points(userId: string): Promise<number> {
  return (await service().balance(userId)).wallets.points?.balance ?? 0;
}

const PROBLEM_503 = JSON.stringify({ type: "/problems/service_unavailable", title: "Unavailable",
                                     status: 503, detail: "try later",
                                     code: "service_unavailable" });
const unavailable = (retryAfter: string) => ({
  status: 503, headers: { "retry-after": retryAfter, "content-type": "application/problem+json" },
  body: PROBLEM_503,
});

async function withProxy(run: (proxy: FaultProxy) => Promise<void>): Promise<void> {
  const proxy = await FaultProxy.start(env.upstreamPort);
  try {
    await run(proxy);
  } finally {
    await proxy.close();
  }
}

describe("idempotent retries", () => {
  test("a credit whose answer is lost is retried with its key and applied once", () =>
    withProxy(async (proxy) => {
      const user = freshUser();
      const events: RetryEvent[] = [];
      proxy.plan("drop");
      const tx = await service(proxy.baseUrl, { onRetry: (e) => events.push(e) })
        .credit(credit(user));

      const sent = proxy.requests(CREDIT);
      assert.deepEqual(sent.map((s) => s.action), ["drop", "forward"]);
      assert.deepEqual(new Set(sent.map((s) => s.headers["idempotency-key"])),
                       new Set([tx.idempotency_key]));
      assert.match(tx.idempotency_key ?? "", /^[0-9a-f-]{36}$/);
      assert.equal(events.length, 1);
      assert.ok(events[0]?.error instanceof TypeError); // fetch failed: the socket closed
      assert.equal(await points(user), 50);
      const history = await collect(service().iterTransactions(user));
      assert.deepEqual(history.map((h) => h.transaction_id), [tx.id]);
    }));

  test("a 409 while the first request is in flight is waited out; the replay is returned",
    async () => {
      const user = freshUser();
      const key = `race-${randomUUID()}`;
      let sawInUse!: () => void;
      const inUse = new Promise<void>((resolve) => { sawInUse = resolve; });
      const events: RetryEvent[] = [];
      // Patient enough for the lock's release and the first request's commit on a busy machine.
      const client = service(env.baseUrl, {
        retry: { maxAttempts: 8, totalTimeoutMs: 30_000, backoffBaseMs: 200, backoffMaxMs: 2_000 },
        onRetry: (e) => {
          events.push(e);
          if (e.code === "idempotency_key_in_use") sawInUse();
        },
      });
      const body = credit(user, 70);
      const lock = await DbLock.take(); // the first request to arrive waits inside the ledger
      let both;
      try {
        both = Promise.all([client.credit(body, { idempotencyKey: key }),
                            client.credit(body, { idempotencyKey: key })]);
        await inUse;
      } finally {
        await lock.release();
      }
      const [a, b] = await both;
      assert.equal(a.id, b.id);
      assert.equal(a.idempotency_key, key);
      const inUseEvents = events.filter((e) => e.code === "idempotency_key_in_use");
      assert.ok(inUseEvents.length > 0);
      assert.ok(inUseEvents.every((e) => e.status === 409 && e.idempotencyKey === key));
      assert.equal(await points(user), 70);
      assert.equal((await collect(service().iterTransactions(user))).length, 1);
    });

  test("a 503 with Retry-After is retried after that wait", () =>
    withProxy(async (proxy) => {
      const user = freshUser();
      const events: RetryEvent[] = [];
      proxy.plan(unavailable("1"));
      const tx = await service(proxy.baseUrl, { onRetry: (e) => events.push(e) })
        .credit(credit(user, 5));
      assert.deepEqual(proxy.requests(CREDIT).map((s) => s.action), ["503", "forward"]);
      assert.equal(new Set(proxy.requests(CREDIT).map((s) => s.headers["idempotency-key"])).size,
                   1);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.status, 503);
      assert.ok((events[0]?.delayMs ?? 0) >= 1000 && (events[0]?.delayMs ?? 0) < 1100);
      assert.equal(tx.wallet.balance, 5);
    }));

  test("retries stop at maxAttempts and throw the last error", () =>
    withProxy(async (proxy) => {
      proxy.plan(...Array.from({ length: 10 }, () => unavailable("0")));
      const client = service(proxy.baseUrl, { retry: { maxAttempts: 3, backoffBaseMs: 10 } });
      const error = await client.credit(credit(freshUser())).catch((e: unknown) => e);
      assert.ok(error instanceof ServiceUnavailable);
      assert.equal(error.status, 503);
      assert.ok(error.idempotencyKey);
      assert.equal(proxy.requests(CREDIT).length, 3);
    }));

  test("a Retry-After beyond the time budget is not waited", () =>
    withProxy(async (proxy) => {
      proxy.plan(unavailable("120"));
      const started = Date.now();
      const error = await service(proxy.baseUrl, { retry: { totalTimeoutMs: 10_000 } })
        .credit(credit(freshUser())).catch((e: unknown) => e);
      assert.ok(error instanceof ServiceUnavailable);
      assert.equal(error.retryAfterS, 120);
      assert.ok(Date.now() - started < 5_000);
      assert.equal(proxy.requests(CREDIT).length, 1);
    }));

  test("429 from the server's rate limiter is retried after Retry-After, and bounded",
    async () => {
      const user = freshUser();
      const events: RetryEvent[] = [];
      const [patientKey = "", impatientKey = ""] = env.limitedKeys;
      const patient = service(env.limitedBaseUrl, { onRetry: (e) => events.push(e) },
                              patientKey);
      for (let i = 0; i < 3; i += 1) await patient.credit(credit(user, 1));
      const limited = events.filter((e) => e.status === 429);
      assert.ok(limited.length > 0);
      assert.equal(limited[0]?.code, "rate_limited");
      assert.ok((limited[0]?.delayMs ?? 0) >= 1000);

      const impatient = service(env.limitedBaseUrl, { retry: { totalTimeoutMs: 500 } },
                                impatientKey);
      await impatient.credit(credit(user, 10));
      await impatient.credit(credit(user, 10));
      const error = await impatient.credit(credit(user, 10)).catch((e: unknown) => e);
      assert.ok(error instanceof RateLimited);
      assert.ok((error.retryAfterS ?? 0) >= 1);
      assert.equal(await points(user), 3 + 20);
    });

  test("no connection at all throws a network error that carries the key", async () => {
    const client = new ServiceClient("http://127.0.0.1:9", "cpk_x",
                                     { retry: { maxAttempts: 2, backoffBaseMs: 10 } });
    const error = await client.credit(credit(freshUser()), { idempotencyKey: "k-unreachable" })
      .catch((e: unknown) => e);
    assert.ok(error instanceof CoinpurseNetworkError);
    assert.equal(error.idempotencyKey, "k-unreachable");
    assert.equal(error.attempts, 2);
  });
});

describe("refusals", () => {
  test("are thrown at once as their class, without retry", () =>
    withProxy(async (proxy) => {
      const user = freshUser();
      const events: RetryEvent[] = [];
      const client = service(proxy.baseUrl, { onRetry: (e) => events.push(e) });
      await client.credit(credit(user, 30));
      const short = await client.debit(credit(user, 31)).catch((e: unknown) => e);
      assert.ok(short instanceof InsufficientFunds && short instanceof CoinpurseError);
      assert.equal(short.code, "insufficient_funds");
      assert.equal(short.status, 422);
      assert.ok(short.title && short.detail && short.idempotencyKey);
      assert.equal(short.problem.code, "insufficient_funds");

      const key = `k-${randomUUID()}`;
      await client.credit(credit(user, 1), { idempotencyKey: key });
      await assert.rejects(client.credit(credit(user, 2), { idempotencyKey: key }),
                           IdempotencyKeyReused);
      await assert.rejects(client.credit({ ...credit(user), currency: "nope" }), UnknownCurrency);
      const invalid = await client.credit(credit(user, 0)).catch((e: unknown) => e);
      assert.ok(invalid instanceof ValidationFailed);
      assert.equal(invalid.errors[0]?.loc instanceof Array, true);
      await assert.rejects(client.getTransaction("no-such-transaction"), NotFound);

      assert.deepEqual(events, []);
      assert.equal(proxy.requests(CREDIT).length, 5);
      assert.equal(await points(user), 31);
    }));

  test("an unknown code falls back to CoinpurseError; a foreign answer is UnexpectedResponse",
    () => withProxy(async (proxy) => {
      const novel = { type: "/problems/brand_new", title: "New", status: 422,
                      detail: "a code from a newer server", code: "brand_new" };
      proxy.plan({ status: 422, headers: { "content-type": "application/problem+json" },
                   body: JSON.stringify(novel) },
                 { status: 400, headers: { "content-type": "text/html" },
                   body: "<h1>Bad gateway config</h1>" });
      const client = service(proxy.baseUrl);
      const error = await client.balance("anyone").catch((e: unknown) => e);
      assert.ok(error instanceof CoinpurseError);
      assert.equal(error.constructor, CoinpurseError);
      assert.equal(error.code, "brand_new");
      assert.deepEqual(error.problem, novel);
      const foreign = await client.balance("anyone").catch((e: unknown) => e);
      assert.ok(foreign instanceof UnexpectedResponse);
      assert.equal(foreign.status, 400);
      assert.match(foreign.detail, /Bad gateway/);
    }));

  test("an amount JSON cannot carry exactly is refused before sending", () =>
    withProxy(async (proxy) => {
      const client = service(proxy.baseUrl);
      await assert.rejects(client.credit(credit(freshUser(), 2 ** 53 + 2)), RangeError);
      await assert.rejects(client.credit(credit(freshUser(), 1.5)), RangeError);
      assert.equal(proxy.seen.length, 0);
    }));
});

test("pagination returns 250 transactions once each, newest first", () =>
  withProxy(async (proxy) => {
    const user = freshUser();
    const outcome = await service().transferBatch({
      transfers: Array.from({ length: 250 }, (_, i) => ({
        postings: [{ source: "service:games", destination: `user:${user}`, amount: i + 1,
                     currency: "points" }],
        description: `Reward ${i}`, reference_id: `p-${i}`,
      })),
    });
    assert.deepEqual([outcome.posted, outcome.rejected], [250, 0]);

    const audit = await collect(service(proxy.baseUrl).iterTransactions(user));
    assert.equal(proxy.requests(`/internal/v1/wallet/transactions/${user}`).length, 3);
    const mine = new UserClient(env.baseUrl, userToken(user), { retry: FAST });
    const own = await collect(mine.iterTransactions({ currency: "points", limit: 7 }));
    const firstPage = await mine.listTransactions({ limit: 10 });

    const newestFirst = Array.from({ length: 250 }, (_, i) => `p-${249 - i}`);
    for (const history of [audit, own]) {
      assert.deepEqual(history.map((h) => h.reference_id), newestFirst);
      assert.equal(new Set(history.map((h) => h.id)).size, 250);
      assert.equal(history[0]?.balance_after, (250 * 251) / 2);
    }
    assert.deepEqual(firstPage.data.map((h) => h.id), own.slice(0, 10).map((h) => h.id));
    assert.ok(firstPage.next_cursor);
  }));

test("every service operation round-trips", async () => {
  const user = freshUser();
  const client = service();
  const credited = await client.credit({ ...credit(user, 1000), metadata: { quest: 42 },
                                         internal_notes: "ops only" });
  const debited = await client.debit(credit(user, 100));
  const moved = await client.transfer({
    postings: [{ source: `user:${user}`, destination: "platform:fees", amount: 50,
                 currency: "points" }],
    description: "Fee", reference_id: "fee-1", kind: "fee" });
  const hold = await client.placeHold({ user_id: user, currency: "points", amount: 200,
                                        description: "Call", reference_id: "call-1",
                                        expires_in_s: 600 });
  const wallets = await client.balance(user);
  const captured = await client.captureHold(hold.id, 150);
  await assert.rejects(client.voidHold(hold.id), HoldNotOpen);
  const other = await client.placeHold({ user_id: user, currency: "points", amount: 10,
                                         description: "Call", reference_id: "call-2" });
  const voided = await client.voidHold(other.id);
  const fetched = await client.getHold(hold.id);
  const agency = await client.setAgency(user, "agency-7");
  const readAgency = await client.getAgency(user);
  const cleared = await client.setAgency(user, null);
  const fees = await client.account("platform:fees");
  const audit = await client.getTransaction(credited.id);
  const page = await client.listTransactions(user, { limit: 2 });

  assert.deepEqual(credited.metadata, { quest: 42 });
  assert.equal(credited.internal_notes, "ops only");
  assert.equal(debited.wallet.balance, 900);
  assert.equal(moved.kind, "fee");
  assert.equal(hold.status, "held");
  assert.equal(hold.wallet?.available, 650);
  assert.equal(wallets.wallets.points?.held, 200);
  assert.deepEqual([captured.status, captured.captured_amount, captured.released_amount],
                   ["captured", 150, 50]);
  assert.equal(voided.status, "voided");
  assert.equal(fetched.status, "captured");
  assert.equal(agency.agency_id, "agency-7");
  assert.equal(readAgency.agency_id, "agency-7");
  assert.equal(cleared.agency_id, null);
  assert.ok((fees.balances.points?.balance ?? 0) >= 50);
  assert.deepEqual(audit.entries.map((e) => e.amount).sort((x, y) => x - y), [-1000, 1000]);
  assert.equal(page.data.length, 2);
  assert.ok(page.next_cursor);
});

test("every user operation round-trips", async () => {
  const giver = freshUser();
  const receiver = `${giver}-r`;
  await service().credit(credit(giver, 500));
  const client = new UserClient(env.baseUrl, () => userToken(giver), { retry: FAST });
  const me = await client.me();
  const catalog = await client.giftCatalog();
  const rose = catalog[0];
  assert.ok(rose);
  const gift = await client.sendGift({ to_user_id: receiver, gift_type: rose.gift_type,
                                       message: "gg" });
  const byAmount = await client.sendGift({ to_user_id: receiver, amount: 15,
                                           currency: "points" });
  const sent = await collect(client.iterGifts({ direction: "sent" }));
  const packages = await client.topupPackages();
  const small = packages.data[0];
  assert.ok(small);
  const order = await client.createTopup({ package_id: small.id });
  await assert.rejects(client.verifyTopup(order.id, { payment_id: "mockpay_forged",
                                                      signature: "0".repeat(64) }),
                       InvalidSignature);
  // Pay on the mock provider's checkout page, as the user's browser would.
  const paid = await fetch(`${env.baseUrl}/mock-checkout/${order.id}/pay`,
                           { method: "POST", redirect: "manual" });
  assert.equal(paid.status, 303);
  const proof = new URL(paid.headers.get("location") ?? "").searchParams;
  const verified = await client.verifyTopup(order.id, {
    payment_id: proof.get("payment_id"), signature: proof.get("signature") });
  const orders = await collect(client.iterTopups());
  const submitted = await client.submitKyc({ tier: 1, full_name: "Ada Lovelace",
                                             date_of_birth: "1990-12-10", country: "GB" });
  await assert.rejects(client.submitKyc({ tier: 1, full_name: "Ada Lovelace",
                                          date_of_birth: "1990-12-10", country: "GB" }),
                       KycSubmissionPending);
  const withdrawal = await client.requestWithdrawal({
    currency: "points", amount: 20, destination: { type: "upi", vpa: "a@bank" } });
  const cancelled = await client.cancelWithdrawal(withdrawal.id);
  const cancelledAgain = await client.cancelWithdrawal(withdrawal.id);
  const withdrawals = await collect(client.iterWithdrawals());
  const kyc = await client.kycStatus();
  const wallets = await client.balance();
  const received = await collect(new UserClient(env.baseUrl, userToken(receiver))
    .iterGifts({ direction: "received" }));

  assert.equal(me.id, giver);
  assert.equal(gift.giver_wallet.balance, 500 - rose.price);
  assert.equal(byAmount.receiver_amount + byAmount.platform_fee, 15);
  assert.deepEqual(sent.map((g) => g.id), [byAmount.id, gift.id]);
  assert.deepEqual(received.map((g) => g.id), [byAmount.id, gift.id]);
  assert.equal(verified.status, "succeeded");
  assert.deepEqual(orders.map((o) => o.id), [order.id]);
  assert.equal((await client.getTopup(order.id)).status, "succeeded");
  assert.equal(withdrawal.status, "pending");
  assert.deepEqual([cancelled.status, cancelledAgain.status], ["cancelled", "cancelled"]);
  assert.deepEqual(withdrawals.map((w) => w.id), [withdrawal.id]);
  assert.equal((await client.getWithdrawal(withdrawal.id)).status, "cancelled");
  assert.equal(kyc.submission?.id, submitted.id);
  assert.equal(wallets.wallets.points?.balance, 500 - rose.price - 15 + small.total);
});

// Compile-time checks: the request and answer types come from the OpenAPI document (an `any`
// would make these directives fail the build as unused).
export function typesAreChecked(client: ServiceClient): void {
  // @ts-expect-error amounts are numbers
  void client.credit({ ...credit("a"), amount: "5" });
  // @ts-expect-error description is required
  void client.credit({ user_id: "a", currency: "points", amount: 5, reference_id: "r" });
  // @ts-expect-error no such route
  void client.request("get", "/internal/v1/nope");
  // @ts-expect-error credit is a POST
  void client.request("get", "/internal/v1/wallet/credit");
  void client.credit(credit("a")).then((tx) => {
    // @ts-expect-error no such field on the answer
    void tx.balance_before;
  });
}
