"""How a gift is shared out. Integer arithmetic only, so no unit is ever made or lost.

Rule: the platform fee and the agency commission are each rounded down from their share in
basis points of the whole gift; the receiver gets everything left. So a 15-diamond gift with a
20% fee and a 10% agency share gives 3 to the platform, 1 to the agency and 11 to the receiver.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS = 10_000


@dataclass(frozen=True, slots=True)
class Split:
    receiver: int
    agency: int
    platform: int

    @property
    def total(self) -> int:
        return self.receiver + self.agency + self.platform


def split_gift(amount: int, *, platform_bps: int, agency_bps: int) -> Split:
    assert amount > 0 and platform_bps >= 0 and agency_bps >= 0
    assert platform_bps + agency_bps <= BPS
    platform = amount * platform_bps // BPS
    agency = amount * agency_bps // BPS
    split = Split(receiver=amount - platform - agency, agency=agency, platform=platform)
    assert split.total == amount and min(split.receiver, split.agency, split.platform) >= 0
    return split
