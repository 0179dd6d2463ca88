"""Batched reads: what a page of nodes needs is read for the whole page at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from strawberry.dataloader import DataLoader

from coinpurse.ledger.model import Posting
from coinpurse.wallets.service import Wallets

TransactionKey = tuple[str, datetime]  # (transaction id, created_at: its partition)


class Loaders:
    """One set per request: a loader caches what it read for that request only."""

    def __init__(self, wallets: Wallets) -> None:
        async def postings(keys: Sequence[TransactionKey]) -> list[tuple[Posting, ...]]:
            found = await wallets.postings(keys)
            return [found.get(k[0], ()) for k in keys]

        self.postings: DataLoader[TransactionKey, tuple[Posting, ...]] = DataLoader(
            load_fn=postings, max_batch_size=1000)
