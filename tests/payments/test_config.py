"""Top-up, withdrawal and KYC settings: a bad value stops start-up naming the variable."""

from __future__ import annotations

import pytest

from coinpurse.config import Settings
from coinpurse.kyc.tiers import parse_tiers
from coinpurse.payments.packages import parse_packages, parse_rates
from coinpurse.withdrawals.settings import Withdrawable, parse_withdrawable


def test_packages_rates_and_withdrawable_parse() -> None:
    packages = parse_packages("a:100:99:usd,b:1000+20%:799:usd:gems,c:10+5:1:inr", ["coins",
                                                                                    "gems"])
    assert (packages["a"].currency, packages["a"].total) == ("coins", 100)
    assert (packages["b"].currency, packages["b"].bonus) == ("gems", 200)
    assert packages["c"].bonus == 5
    assert parse_rates("coins:100:99:usd", ["coins"])["coins"].per == 100
    assert parse_withdrawable("coins:10:20,gems", ["coins", "gems"]) == {
        "coins": Withdrawable(10, 20), "gems": Withdrawable(1, None)}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("topup_packages", "a:100:99", "COINPURSE_TOPUP_PACKAGES"),
    ("topup_packages", "a:100:99:usd:gold", "not a configured currency"),
    ("topup_packages", "a:0:99:usd", "amount"),
    ("topup_packages", "a:1:99:dollars", "ISO code"),
    ("topup_packages", "a:1:99:usd,a:2:99:usd", "twice"),
    ("topup_rates", "points:0:1:usd", "COINPURSE_TOPUP_RATES"),
    ("withdrawal_currencies", "points:10:5", "below the minimum"),
    ("withdrawal_currencies", "gold", "COINPURSE_WITHDRAWAL_CURRENCIES"),
    ("kyc_tiers", "{", "COINPURSE_KYC_TIERS: not valid JSON"),
    ("kyc_tiers", '{"1": {}}', 'tier "0"'),
    ("kyc_tiers", '{"0": {}, "2": {}}', "without gaps"),
    ("kyc_tiers", '{"0": {"limits": {"gold": {}}}}', "not a configured currency"),
    ("kyc_tiers", '{"0": {"limits": {"*": {"topup_max": -1}}}}', "non-negative"),
    ("kyc_tiers", '{"0": {"limits": {"*": {"speed": 1}}}}', "limits are"),
    ("kyc_tiers", '{"0": {"requires": ["shoe_size"]}}', "requires"),
    ("topup_providers", "mock,paypal", "unknown provider"),
    ("topup_providers", "stripe", "COINPURSE_STRIPE_SECRET_KEY is required"),
    ("topup_providers", "razorpay", "COINPURSE_RAZORPAY_KEY_ID is required"),
])
def test_bad_values_name_the_variable(field: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_default_tiers_are_valid() -> None:
    tiers = parse_tiers(Settings().kyc_tiers_json, {"points", "usdt"})
    assert [t.withdrawals for t in tiers.values()] == [False, True, True]
    assert tiers[0].limits_for("points").topup_max == 100_000
