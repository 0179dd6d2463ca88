"""The enabled payment providers, built once per settings object (they hold SDK clients)."""

from __future__ import annotations

from coinpurse.payments.providers.base import Provider
from coinpurse.payments.providers.mock import MockProvider
from coinpurse.payments.providers.razorpay import RazorpayProvider
from coinpurse.payments.providers.stripe import StripeProvider
from coinpurse.payments.settings import PaymentSettings

_REGISTRIES: dict[int, tuple[PaymentSettings, dict[str, Provider]]] = {}


def providers(settings: PaymentSettings) -> dict[str, Provider]:
    cached = _REGISTRIES.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    registry = {name: _build(settings, name) for name in settings.providers}
    _REGISTRIES[id(settings)] = (settings, registry)
    return registry


def _build(settings: PaymentSettings, name: str) -> Provider:
    if name == "mock":
        return MockProvider(settings.mock_webhook_secret.get_secret_value(),
                            settings.public_url)
    if name == "stripe":
        assert settings.stripe_secret_key and settings.stripe_webhook_secrets
        secrets = [s.strip() for s in
                   settings.stripe_webhook_secrets.get_secret_value().split(",") if s.strip()]
        return StripeProvider(settings.stripe_secret_key.get_secret_value(), secrets,
                              tolerance_s=settings.stripe_webhook_tolerance_s,
                              api_base=settings.stripe_api_base)
    assert name == "razorpay", name  # the settings accept no other name
    assert settings.razorpay_key_id and settings.razorpay_key_secret
    assert settings.razorpay_webhook_secret
    return RazorpayProvider(
        settings.razorpay_key_id, settings.razorpay_key_secret.get_secret_value(),
        settings.razorpay_webhook_secret.get_secret_value(), api_base=settings.razorpay_api_base)
