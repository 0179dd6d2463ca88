"""The ledger's figures, taken from its after-commit seam (``Ledger.add_hook``)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.core import metrics
from coinpurse.ledger.service import CommittedBatch, Ledger


class LedgerMetrics:
    """Batches, their size and commit time, the queue, transactions and volume posted."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._jobs_seen = ledger.jobs_committed
        self._tx: dict[tuple[str, str], Any] = {}
        self._volume: dict[tuple[str, str], Any] = {}

    async def write(self, conn: AsyncConnection, batch: CommittedBatch) -> None:
        return None

    def committed(self, batch: CommittedBatch) -> None:
        # The ledger counts jobs just before it calls the hooks, with no await between.
        jobs = self._ledger.jobs_committed - self._jobs_seen
        self._jobs_seen = self._ledger.jobs_committed
        metrics.LEDGER_BATCHES.inc()
        metrics.LEDGER_BATCH_JOBS.observe(jobs)
        metrics.LEDGER_COMMIT_SECONDS.observe(max(0.0, time.time() - batch.at.timestamp()))
        metrics.LEDGER_QUEUE_DEPTH.set(self._ledger.queue_depth)
        for tx in batch.transactions:
            kind = tx.spec.kind
            seen: set[str] = set()
            for p in tx.spec.postings:
                key = (p.currency, kind)
                if p.currency not in seen:
                    seen.add(p.currency)
                    counter = self._tx.get(key)
                    if counter is None:
                        counter = self._tx[key] = metrics.TRANSACTIONS.labels(*key)
                    counter.inc()
                volume = self._volume.get(key)
                if volume is None:
                    volume = self._volume[key] = metrics.VOLUME.labels(*key)
                volume.inc(p.amount)
