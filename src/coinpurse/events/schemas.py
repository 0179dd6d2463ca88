"""The event log's answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from coinpurse.events.repository import StoredEvent


class EventOut(BaseModel):
    id: str = Field(description="Unique; grows in the order readers see events. A string: "
                    "ids exceed what a JSON number holds exactly in JavaScript.")
    type: str = Field(examples=["transaction.posted"])
    created_at: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: StoredEvent) -> EventOut:
        return cls(id=str(e.id), type=e.type,
                   created_at=e.created_at.isoformat().replace("+00:00", "Z"), data=e.data)


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str = Field(description="Pass it back as `after` to read on; it stays the "
                             "same while there is nothing new.")
