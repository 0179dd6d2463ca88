"""Top-ups: providers and their secrets, packages and rates, the inbox worker."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, SecretStr, model_validator

from coinpurse.ledger.settings import LedgerSettings
from coinpurse.payments.packages import Package, Rate, parse_packages, parse_rates

KNOWN_PROVIDERS = ("mock", "stripe", "razorpay")
_NEEDS = {"stripe": ("stripe_secret_key", "stripe_webhook_secrets"),
          "razorpay": ("razorpay_key_id", "razorpay_key_secret", "razorpay_webhook_secret")}


class PaymentSettings(LedgerSettings):
    public_url: str = "http://127.0.0.1:8000"
    topup_providers: str = "mock"  # comma-separated: mock, stripe, razorpay
    topup_packages: str = "small:100:99:usd,medium:1000+20%:799:usd,large:10000+30%:6999:usd"
    topup_rates: str = ""  # currency:per:price:price_currency; empty: packages only
    topup_return_url: str = ""  # default {public_url}/topup-return
    topup_order_ttl_s: int = Field(default=3600, ge=1800, le=86_400)
    promotions_address: str = "service:promotions"
    mock_webhook_secret: SecretStr = SecretStr("whsec_mock_development_only_not_a_secret")
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secrets: SecretStr | None = None  # comma-separated, for rotation
    stripe_webhook_tolerance_s: int = Field(default=300, ge=1, le=3600)
    stripe_api_base: str | None = None  # tests point the SDK at a local fake
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_api_base: str | None = None
    inbox_poll_s: float = Field(default=1.0, ge=0, le=3600)  # 0: no inbox worker here
    inbox_max_attempts: int = Field(default=12, ge=1, le=100)

    _packages: dict[str, Package] = PrivateAttr(default_factory=dict)
    _rates: dict[str, Rate] = PrivateAttr(default_factory=dict)
    _providers: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _parse_payments(self) -> PaymentSettings:
        currencies = list(self.currencies)
        try:
            self._packages = parse_packages(self.topup_packages, currencies)
        except ValueError as exc:
            raise ValueError(f"COINPURSE_TOPUP_PACKAGES: {exc}") from None
        try:
            self._rates = parse_rates(self.topup_rates, currencies)
        except ValueError as exc:
            raise ValueError(f"COINPURSE_TOPUP_RATES: {exc}") from None
        self._providers = tuple(p.strip() for p in self.topup_providers.split(",")
                                if p.strip())
        unknown = set(self._providers) - set(KNOWN_PROVIDERS)
        if unknown:
            raise ValueError("COINPURSE_TOPUP_PROVIDERS: unknown provider(s) "
                             + ", ".join(sorted(unknown)) + "; known: "
                             + ", ".join(KNOWN_PROVIDERS))
        for provider, fields in _NEEDS.items():
            for name in fields:
                if provider in self._providers and not getattr(self, name):
                    raise ValueError(f"COINPURSE_{name.upper()} is required when "
                                     f"COINPURSE_TOPUP_PROVIDERS includes {provider}")
        return self

    @property
    def providers(self) -> tuple[str, ...]:
        return self._providers

    @property
    def packages(self) -> dict[str, Package]:
        return self._packages

    @property
    def rates(self) -> dict[str, Rate]:
        return self._rates
