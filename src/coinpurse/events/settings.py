"""The event log's settings."""

from __future__ import annotations

from pydantic import Field

from coinpurse.core.settings import CoreSettings


class EventSettings(CoreSettings):
    # Events older than this are deleted (consumers must keep up within it).
    events_retention_days: int = Field(default=30, ge=1, le=3650)
