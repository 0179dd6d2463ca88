/**
 * Coinpurse's TypeScript client: types generated from the OpenAPI document, a small client on
 * fetch with idempotent retries, problem errors, pagination and webhook verification.
 */
export * from "./client.js";
export * from "./errors.js";
export * from "./retry.js";
export * from "./webhooks.js";
export type * from "./types.js";
export type { components, paths } from "./generated/openapi.js";
