"""The failover drill: a Patroni cluster with synchronous replication on one machine, two
Teeka servers following the primary, booking load, node kills, checks; see docs/operations.md."""
