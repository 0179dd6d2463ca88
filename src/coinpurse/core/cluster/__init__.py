"""Running against a PostgreSQL cluster: multi-host URLs, connection options, faults, and
read routing to a standby.

Part of ``core``: it imports nothing of Coinpurse's outside ``core``. The database layer
(``core.db``), the settings (``core.settings``), the ledger's retry policy
(``ledger.retry``), the HTTP edge's 503 (``http.faults``) and the key cache build on it.
See docs/high-availability.md.
"""
