-- The runtime's own VACUUM of the jobs table, for servers whose autovacuum wakes too seldom
-- for a queue's churn (autovacuum_naptime, one minute by default, is server-wide and often
-- out of a managed database's user's reach). It runs outside a transaction (autocommit).
-- SKIP_LOCKED: when another VACUUM (an autovacuum, another worker process's) holds the table,
-- skip with a warning instead of queueing behind it, so one process vacuums at a time without
-- a lock of our own. PARALLEL 0: like autovacuum, no extra processes on a busy server.
VACUUM (SKIP_LOCKED, PARALLEL 0) {schema}.jobs
