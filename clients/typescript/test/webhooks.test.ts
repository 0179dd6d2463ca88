/** Webhook signature verification; signatures made with node:crypto directly, not the helper. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";

import { WebhookSignatureError, constructEvent, verifySignature } from "../src/index.js";

const SECRET = "whsec_test_fake_receiver_0000000000";
const OLD_SECRET = "whsec_test_fake_receiver_old_11111";
const BODY = JSON.stringify({ id: "evt_1", type: "transaction.posted",
                              created_at: "2026-01-01T00:00:00Z",
                              data: { amount: 50, currency: "points" } });

const sign = (body: string, secret: string, t: number): string =>
  createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");

function header(body: string, secrets: string[], t = Math.floor(Date.now() / 1000)): string {
  return [`t=${t}`, ...secrets.map((s) => `v1=${sign(body, s, t)}`)].join(",");
}

test("a correct signature is accepted and the event returned", () => {
  const now = Math.floor(Date.now() / 1000);
  assert.equal(verifySignature(BODY, header(BODY, [SECRET], now), SECRET), now);
  assert.equal(verifySignature(Buffer.from(BODY), header(BODY, [SECRET], now), SECRET), now);
  const event = constructEvent<{ type: string }>(BODY, header(BODY, [SECRET], now), SECRET);
  assert.equal(event.type, "transaction.posted");
});

test("during a rotation any listed signature or secret matches", () => {
  const both = header(BODY, [OLD_SECRET, SECRET]);
  verifySignature(BODY, both, SECRET);
  verifySignature(BODY, both, OLD_SECRET);
  verifySignature(BODY, header(BODY, [OLD_SECRET]), [SECRET, OLD_SECRET]);
});

test("bad signatures are refused", () => {
  const now = Math.floor(Date.now() / 1000);
  const good = sign(BODY, SECRET, now);
  const cases: Array<[string, string, string]> = [
    ["wrong secret", BODY, header(BODY, ["whsec_someone_else"], now)],
    ["tampered body", BODY.replace('"amount":50', '"amount":5000'), `t=${now},v1=${good}`],
    ["old", BODY, header(BODY, [SECRET], now - 301)],
    ["future", BODY, header(BODY, [SECRET], now + 301)],
    ["missing", BODY, ""],
    ["no v1", BODY, `t=${now}`],
    ["no t", BODY, `v1=${good}`],
    ["bad t", BODY, `t=soon,v1=${good}`],
    ["truncated", BODY, `t=${now},v1=${good.slice(0, -2)}`],
  ];
  for (const [name, body, value] of cases) {
    assert.notEqual(body === BODY && value === `t=${now},v1=${good}`, true, name);
    assert.throws(() => verifySignature(body, value, SECRET), WebhookSignatureError, name);
    assert.throws(() => constructEvent(body, value, SECRET), WebhookSignatureError, name);
  }
});

test("the tolerance is the caller's, and now can be fixed", () => {
  const signedAt = 1_700_000_000;
  const value = header(BODY, [SECRET], signedAt);
  verifySignature(BODY, value, SECRET, { now: signedAt + 290 });
  assert.throws(() => verifySignature(BODY, value, SECRET, { now: signedAt + 61, toleranceS: 60 }),
                /tolerance/);
  assert.throws(() => verifySignature(BODY, value, "", { now: signedAt }), TypeError);
});
