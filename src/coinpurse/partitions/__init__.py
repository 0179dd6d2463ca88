"""Monthly partitions of the history tables on PostgreSQL: made ahead, detached for
archiving (docs/partitioning.md)."""
