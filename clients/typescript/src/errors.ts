/**
 * Coinpurse's problem+json answers as exceptions: one class per stable `code`.
 *
 * Catch a subclass (`InsufficientFunds`) for one refusal, or `CoinpurseError` for all; a code
 * this version does not know raises the base class with that code. A request that got no
 * answer raises `CoinpurseNetworkError`: for a money-moving call, call again with its
 * `idempotencyKey` and Coinpurse applies it at most once.
 */
import type { ProblemCode } from "./types.js";

export type Problem = {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: Array<Record<string, unknown>>;
  [extra: string]: unknown;
};

export interface ErrorContext {
  status: number;
  idempotencyKey?: string | undefined;
  retryAfterS?: number | undefined;
}

export class CoinpurseError extends Error {
  static readonly defaultCode: string = "internal_error";
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly problem: Problem;
  readonly idempotencyKey: string | undefined;
  /** Seconds the server asked to wait (`Retry-After`), if it said. */
  readonly retryAfterS: number | undefined;

  constructor(problem: Problem, context: ErrorContext) {
    const ctor = new.target as typeof CoinpurseError;
    const code = typeof problem.code === "string" ? problem.code : ctor.defaultCode;
    const title = String(problem.title ?? "");
    const detail = String(problem.detail ?? title);
    super(`${code} (${context.status}): ${detail}`);
    this.name = ctor.name;
    this.code = code;
    this.status = context.status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
    this.idempotencyKey = context.idempotencyKey;
    this.retryAfterS = context.retryAfterS;
  }

  /** Field errors of a `validation_error` (empty otherwise). */
  get errors(): Array<Record<string, unknown>> {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

/** No answer: connection refused or dropped, timeout, retries exhausted. */
export class CoinpurseNetworkError extends Error {
  readonly idempotencyKey: string | undefined;
  readonly attempts: number;

  constructor(message: string, idempotencyKey: string | undefined, attempts: number,
              cause: unknown) {
    super(message, { cause });
    this.name = "CoinpurseNetworkError";
    this.idempotencyKey = idempotencyKey;
    this.attempts = attempts;
  }
}

/** An answer that is not Coinpurse's problem format (e.g. an HTML page from a proxy). */
export class UnexpectedResponse extends CoinpurseError {
  static override readonly defaultCode: string = "unexpected_response";
}

// One class per code. ERRORS_BY_CODE's type lists every code of the generated Problem
// schema, so a code added on the server fails the build until it has its class here.

export class ValidationFailed extends CoinpurseError {
  static override readonly defaultCode: string = "validation_error";
}

export class Unauthorized extends CoinpurseError {
  static override readonly defaultCode: string = "unauthorized";
}

export class Forbidden extends CoinpurseError {
  static override readonly defaultCode: string = "forbidden";
}

export class NotFound extends CoinpurseError {
  static override readonly defaultCode: string = "not_found";
}

export class MethodNotAllowed extends CoinpurseError {
  static override readonly defaultCode: string = "method_not_allowed";
}

export class PayloadTooLarge extends CoinpurseError {
  static override readonly defaultCode: string = "payload_too_large";
}

export class UnsupportedMediaType extends CoinpurseError {
  static override readonly defaultCode: string = "unsupported_media_type";
}

export class UnknownCurrency extends CoinpurseError {
  static override readonly defaultCode: string = "unknown_currency";
}

export class CurrencyNotTransferable extends CoinpurseError {
  static override readonly defaultCode: string = "currency_not_transferable";
}

/** The key was used before with a different request: use a new key. */

export class IdempotencyKeyReused extends CoinpurseError {
  static override readonly defaultCode: string = "idempotency_key_reused";
}

/** The first request with this key is still running (the client waits and retries). */

export class IdempotencyKeyInUse extends CoinpurseError {
  static override readonly defaultCode: string = "idempotency_key_in_use";
}

/** Too many requests; `retryAfterS` says when to come back. */

export class RateLimited extends CoinpurseError {
  static override readonly defaultCode: string = "rate_limited";
}

export class InvalidCredentials extends CoinpurseError {
  static override readonly defaultCode: string = "invalid_credentials";
}

export class MfaRequired extends CoinpurseError {
  static override readonly defaultCode: string = "mfa_required";
}

export class InvalidMfaCode extends CoinpurseError {
  static override readonly defaultCode: string = "invalid_mfa_code";
}

export class RefreshTokenReused extends CoinpurseError {
  static override readonly defaultCode: string = "refresh_token_reused";
}

export class CsrfFailed extends CoinpurseError {
  static override readonly defaultCode: string = "csrf_failed";
}

export class Conflict extends CoinpurseError {
  static override readonly defaultCode: string = "conflict";
}

export class AlreadyReversed extends CoinpurseError {
  static override readonly defaultCode: string = "already_reversed";
}

/** The server could not commit; the client retries with the same key, then throws this. */

export class ServiceUnavailable extends CoinpurseError {
  static override readonly defaultCode: string = "service_unavailable";
}

export class Overloaded extends CoinpurseError {
  static override readonly defaultCode: string = "overloaded";
}

/** /readyz: the server is not ready (database, migrations, jobs or shutting down). */
export class NotReady extends CoinpurseError {
  static override readonly defaultCode: string = "not_ready";
}

export class InternalError extends CoinpurseError {
  static override readonly defaultCode: string = "internal_error";
}

/** The source's available balance is too small; nothing changed. */

export class InsufficientFunds extends CoinpurseError {
  static override readonly defaultCode: string = "insufficient_funds";
}

export class BalanceOverflow extends CoinpurseError {
  static override readonly defaultCode: string = "balance_overflow";
}

export class HoldNotOpen extends CoinpurseError {
  static override readonly defaultCode: string = "hold_not_open";
}

export class CaptureExceedsHold extends CoinpurseError {
  static override readonly defaultCode: string = "capture_exceeds_hold";
}

export class InvalidPosting extends CoinpurseError {
  static override readonly defaultCode: string = "invalid_posting";
}

export class BatchAtomicFailed extends CoinpurseError {
  static override readonly defaultCode: string = "batch_atomic_failed";
}

export class KycRequired extends CoinpurseError {
  static override readonly defaultCode: string = "kyc_required";
}

export class LimitExceeded extends CoinpurseError {
  static override readonly defaultCode: string = "limit_exceeded";
}

export class DebtOutstanding extends CoinpurseError {
  static override readonly defaultCode: string = "debt_outstanding";
}

export class CurrencyNotWithdrawable extends CoinpurseError {
  static override readonly defaultCode: string = "currency_not_withdrawable";
}

export class ProviderNotEnabled extends CoinpurseError {
  static override readonly defaultCode: string = "provider_not_enabled";
}

export class ProviderUnavailable extends CoinpurseError {
  static override readonly defaultCode: string = "provider_unavailable";
}

/** Coinpurse refused a signature (a top-up verify call); not the webhook helper's error. */

export class InvalidSignature extends CoinpurseError {
  static override readonly defaultCode: string = "invalid_signature";
}

export class PaymentNotCompleted extends CoinpurseError {
  static override readonly defaultCode: string = "payment_not_completed";
}

export class WithdrawalNotPending extends CoinpurseError {
  static override readonly defaultCode: string = "withdrawal_not_pending";
}

export class KycSubmissionPending extends CoinpurseError {
  static override readonly defaultCode: string = "kyc_submission_pending";
}

export class KycSubmissionNotPending extends CoinpurseError {
  static override readonly defaultCode: string = "kyc_submission_not_pending";
}

export class ReconciliationRunning extends CoinpurseError {
  static override readonly defaultCode: string = "reconciliation_running";
}

export class OutOfStock extends CoinpurseError {
  static override readonly defaultCode: string = "out_of_stock";
}

export class PriceChanged extends CoinpurseError {
  static override readonly defaultCode: string = "price_changed";
}

export class ProductInactive extends CoinpurseError {
  static override readonly defaultCode: string = "product_inactive";
}

export class OwnProduct extends CoinpurseError {
  static override readonly defaultCode: string = "own_product";
}

export class OrderRefunded extends CoinpurseError {
  static override readonly defaultCode: string = "order_refunded";
}

export class RefundExceedsPaid extends CoinpurseError {
  static override readonly defaultCode: string = "refund_exceeds_paid";
}

export class PreconditionFailed extends CoinpurseError {
  static override readonly defaultCode: string = "precondition_failed";
}

export class WebhookUrlRefused extends CoinpurseError {
  static override readonly defaultCode: string = "webhook_url_refused";
}

export class TooManyStreams extends CoinpurseError {
  static override readonly defaultCode: string = "too_many_streams";
}

export class InvalidPromoCode extends CoinpurseError {
  static override readonly defaultCode: string = "invalid_promo_code";
}

export class PromotionCodeTaken extends CoinpurseError {
  static override readonly defaultCode: string = "promotion_code_taken";
}

export class PromotionBudgetExhausted extends CoinpurseError {
  static override readonly defaultCode: string = "promotion_budget_exhausted";
}

export class PromotionLimitReached extends CoinpurseError {
  static override readonly defaultCode: string = "promotion_limit_reached";
}

export class WageringIncomplete extends CoinpurseError {
  static override readonly defaultCode: string = "wagering_incomplete";
}

export class SelfReferral extends CoinpurseError {
  static override readonly defaultCode: string = "self_referral";
}

export class AlreadyReferred extends CoinpurseError {
  static override readonly defaultCode: string = "already_referred";
}

export class BonusNotActive extends CoinpurseError {
  static override readonly defaultCode: string = "bonus_not_active";
}

export class BonusWalletReserved extends CoinpurseError {
  static override readonly defaultCode: string = "bonus_wallet_reserved";
}

export const ERRORS_BY_CODE: Readonly<Record<ProblemCode, typeof CoinpurseError>> = {
  validation_error: ValidationFailed,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  method_not_allowed: MethodNotAllowed,
  payload_too_large: PayloadTooLarge,
  unsupported_media_type: UnsupportedMediaType,
  unknown_currency: UnknownCurrency,
  currency_not_transferable: CurrencyNotTransferable,
  idempotency_key_reused: IdempotencyKeyReused,
  idempotency_key_in_use: IdempotencyKeyInUse,
  rate_limited: RateLimited,
  invalid_credentials: InvalidCredentials,
  mfa_required: MfaRequired,
  invalid_mfa_code: InvalidMfaCode,
  refresh_token_reused: RefreshTokenReused,
  csrf_failed: CsrfFailed,
  conflict: Conflict,
  already_reversed: AlreadyReversed,
  service_unavailable: ServiceUnavailable,
  overloaded: Overloaded,
  not_ready: NotReady,
  internal_error: InternalError,
  insufficient_funds: InsufficientFunds,
  balance_overflow: BalanceOverflow,
  hold_not_open: HoldNotOpen,
  capture_exceeds_hold: CaptureExceedsHold,
  invalid_posting: InvalidPosting,
  batch_atomic_failed: BatchAtomicFailed,
  kyc_required: KycRequired,
  limit_exceeded: LimitExceeded,
  debt_outstanding: DebtOutstanding,
  currency_not_withdrawable: CurrencyNotWithdrawable,
  provider_not_enabled: ProviderNotEnabled,
  provider_unavailable: ProviderUnavailable,
  invalid_signature: InvalidSignature,
  payment_not_completed: PaymentNotCompleted,
  withdrawal_not_pending: WithdrawalNotPending,
  kyc_submission_pending: KycSubmissionPending,
  kyc_submission_not_pending: KycSubmissionNotPending,
  reconciliation_running: ReconciliationRunning,
  out_of_stock: OutOfStock,
  price_changed: PriceChanged,
  product_inactive: ProductInactive,
  own_product: OwnProduct,
  order_refunded: OrderRefunded,
  refund_exceeds_paid: RefundExceedsPaid,
  precondition_failed: PreconditionFailed,
  webhook_url_refused: WebhookUrlRefused,
  too_many_streams: TooManyStreams,
  invalid_promo_code: InvalidPromoCode,
  promotion_code_taken: PromotionCodeTaken,
  promotion_budget_exhausted: PromotionBudgetExhausted,
  promotion_limit_reached: PromotionLimitReached,
  wagering_incomplete: WageringIncomplete,
  self_referral: SelfReferral,
  already_referred: AlreadyReferred,
  bonus_not_active: BonusNotActive,
  bonus_wallet_reserved: BonusWalletReserved,
};

/** The exception for a problem answer: its code's class, else the base class. */
export function errorFor(problem: Problem, context: ErrorContext): CoinpurseError {
  const code = typeof problem.code === "string" ? problem.code : "";
  const cls = Object.hasOwn(ERRORS_BY_CODE, code)
    ? ERRORS_BY_CODE[code as ProblemCode]
    : CoinpurseError;
  return new cls(problem, context);
}
