"""Running against a PostgreSQL cluster: multi-host URLs, connection options, faults.

``urls`` and ``faults`` import nothing of Coinpurse's own: the database layer
(``coinpurse.db``), the ledger's retry policy and the key cache build on them. See
docs/high-availability.md.
"""
