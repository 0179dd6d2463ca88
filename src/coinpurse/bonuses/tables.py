"""Promotions, the bonuses they grant, every change of a bonus, referral links, and the
queue of new users waiting for their sign-up bonuses (migration 0101_bonuses).

A bonus row changes only inside a ledger job that has locked the user's bonus wallet
(``user:<id>:bonus``), together with the money movement it stands for. Each change is also
a row of ``bonus_changes`` (what happened, and the bonus after it): the history of a bonus,
and what later jobs of the same batch read to see the changes not yet written.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from coinpurse.core.tables import BigId, UTCDateTime, metadata

promotions = Table(
    "promotions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("code", String(32), nullable=False, unique=True),  # upper case
    Column("kind", String(16), nullable=False),  # deposit_match, signup, referral, manual
    Column("currency", String(16), nullable=False),
    Column("description", String(255), nullable=False),
    Column("percent_bp", Integer, nullable=True),  # deposit_match: 10000 = 100%
    Column("max_bonus", BigInteger, nullable=True),  # deposit_match: the cap
    Column("amount", BigInteger, nullable=True),  # signup, referral, manual
    Column("min_deposit", BigInteger, nullable=True),  # deposit_match, referral
    Column("wagering_multiplier", Integer, nullable=False),
    Column("contributions_json", Text, nullable=False),  # {"slots": 10000, ...}
    Column("default_contribution_bp", Integer, nullable=False),
    Column("max_conversion", BigInteger, nullable=True),
    Column("expires_in_days", Integer, nullable=False),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("active", Boolean, nullable=False),
    Column("automatic", Boolean, nullable=False),  # deposit_match without a code
    Column("claimable", Boolean, nullable=False),  # manual: users may claim the code
    Column("per_user_limit", Integer, nullable=True),
    Column("budget", BigInteger, nullable=True),
    # What has been granted: changed only by grants, under the promotions account's lock.
    Column("granted_total", BigInteger, nullable=False, server_default="0"),
    Column("granted_count", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("granted_total >= 0 AND granted_count >= 0", name="granted_not_negative"),
    Index(None, "kind", "currency", "active"),
)

bonuses = Table(
    "bonuses",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("promotion_id", String(36), ForeignKey("promotions.id"), nullable=False),
    Column("promotion_code", String(32), nullable=False),  # codes never change
    Column("kind", String(16), nullable=False),  # the promotion's
    Column("currency", String(16), nullable=False),
    # Why it was granted: topup:<order>, referral:<referee>, signup, manual:<id>, claim:<id>.
    Column("source", String(160), nullable=False),
    Column("description", String(255), nullable=False),
    Column("granted", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("wagering_required", BigInteger, nullable=False),
    Column("wagered", BigInteger, nullable=False),
    # The promotion's terms when it was granted: later edits of the promotion do not
    # change a bonus already granted.
    Column("contributions_json", Text, nullable=False),
    Column("default_contribution_bp", Integer, nullable=False),
    Column("max_conversion", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),  # active, completed, forfeited, expired
    Column("converted", BigInteger, nullable=False, server_default="0"),  # to cash
    Column("forfeited", BigInteger, nullable=False, server_default="0"),  # back to promotions
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    CheckConstraint("granted > 0 AND remaining >= 0 AND wagering_required >= 0 AND "
                    "wagered >= 0 AND converted >= 0 AND forfeited >= 0",
                    name="amounts_valid"),
    # One grant per promotion, user and cause: a second credit of the same top-up, a second
    # sign-up, a second reward for the same referee cannot commit.
    UniqueConstraint("promotion_id", "user_id", "source"),
    Index(None, "user_id", "currency", "status"),
    Index(None, "user_id", "id"),
    Index(None, "status", "expires_at"),
    Index(None, "promotion_id", "id"),
)

bonus_changes = Table(
    "bonus_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("bonus_id", String(36), ForeignKey("bonuses.id"), nullable=False),
    # granted, spent, returned, wagered, converted, forfeited, expired
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),  # money (>= 0); wagered: its contribution
    Column("remaining_after", BigInteger, nullable=False),
    Column("wagered_after", BigInteger, nullable=False),
    Column("status_after", String(16), nullable=False),
    Column("reference_id", String(64), nullable=False),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount >= 0 AND remaining_after >= 0 AND wagered_after >= 0",
                    name="amounts_valid"),
    Index(None, "bonus_id", "id"),
    Index(None, "transaction_id"),
    Index(None, "reference_id"),
)

referrals = Table(
    "referrals",
    metadata,
    Column("referee_id", String(128), primary_key=True),  # one referrer per user
    Column("referrer_id", String(128), nullable=False),
    Column("service", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("referee_id <> referrer_id", name="not_self"),
    Index(None, "referrer_id"),
)

# The reward of a link, once: its primary key makes a second one impossible.
referral_rewards = Table(
    "referral_rewards",
    metadata,
    Column("referee_id", String(128), ForeignKey("referrals.referee_id"), primary_key=True),
    Column("order_id", String(36), nullable=False),  # the qualifying top-up
    # The referee's grant (none when no promotion could pay: budget spent, limit reached).
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Users waiting for their sign-up bonuses: written when the user's first wallet is first
# changed (the ledger hook) or at built-in registration; ``done`` once granted.
bonus_signups = Table(
    "bonus_signups",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("status", String(16), nullable=False),  # pending, done
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    Index(None, "status", "created_at"),
)

# A top-up order started with a promo code: the deposit match its credit may grant.
promotion_orders = Table(
    "promotion_orders",
    metadata,
    Column("order_id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("promotion_id", String(36), ForeignKey("promotions.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
