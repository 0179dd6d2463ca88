"""Proving the books: reconciliation runs, the hash chain over the ledger (seals), and
provider statements compared with the paid orders."""
