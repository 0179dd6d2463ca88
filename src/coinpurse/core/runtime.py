"""The Python runtime of a long-running Coinpurse process (``serve`` and ``worker``).

Why tune the garbage collector: after start-up a process holds some 240,000 long-lived
objects (modules, schemas, SQLAlchemy's metadata, caches). CPython's full collection walks
all of them; measured under the benchmark's load on 2 cores, each took about 200 ms, during
which the process answered nothing (that was the benchmark's p99). ``gc.freeze()`` at the
end of start-up moves them out of the collector's sight, and higher thresholds make the
collections that remain rarer. Memory stays bounded: garbage still goes, only later.

In-process apps (the tests build hundreds) are not tuned: freezing there would keep each
test's objects for the rest of the run.
"""

from __future__ import annotations

import gc


def parse_thresholds(text: str) -> tuple[int, int, int]:
    """``gen0,gen1,gen2`` as in ``gc.set_threshold``; a ValueError says what is wrong."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError("must be three whole numbers, gen0,gen1,gen2 (e.g. 10000,20,50)")
    gen0, gen1, gen2 = (int(p) for p in parts)
    if not (100 <= gen0 <= 1_000_000 and 1 <= gen1 <= 1000 and 1 <= gen2 <= 1000):
        raise ValueError("gen0 must be 100 to 1000000, gen1 and gen2 1 to 1000")
    return gen0, gen1, gen2


def tune_gc(thresholds: tuple[int, int, int], *, freeze: bool) -> int:
    """Apply the thresholds; with ``freeze``, collect once and freeze what survives.
    Returns the number of frozen objects."""
    gc.set_threshold(*thresholds)
    if freeze:
        gc.collect()
        gc.freeze()
    return gc.get_freeze_count()
