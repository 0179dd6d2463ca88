"""KYC tiers and their limits (``COINPURSE_KYC_TIERS``, JSON; empty: the default tiers)."""

from __future__ import annotations

from pydantic import PrivateAttr, model_validator

from coinpurse.kyc.tiers import DEFAULT_TIERS, Tier, parse_tiers
from coinpurse.ledger.settings import LedgerSettings


class KycSettings(LedgerSettings):
    kyc_tiers: str = ""

    _tiers: dict[int, Tier] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_kyc(self) -> KycSettings:
        try:
            self._tiers = parse_tiers(self.kyc_tiers_json, set(self.currencies))
        except ValueError as exc:
            raise ValueError(f"COINPURSE_KYC_TIERS: {exc}") from None
        return self

    @property
    def kyc_tiers_json(self) -> str:
        return self.kyc_tiers.strip() or DEFAULT_TIERS

    @property
    def tiers(self) -> dict[int, Tier]:
        return self._tiers

    def tier_for(self, level: int) -> Tier:
        """The tier a user's stored level grants now: the highest configured one not above it
        (a tier removed from the configuration must not turn its users' requests into 500s)."""
        return self._tiers[max((t for t in self._tiers if t <= level),
                               default=min(self._tiers))]
