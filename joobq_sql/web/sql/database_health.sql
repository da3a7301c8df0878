-- Read-only health of the database for /metrics: the dead tuples on the jobs table (what
-- autovacuum has yet to reclaim) and the age of the oldest transaction open on this database
-- (a long one keeps vacuum from reclaiming anything newer). Our own transaction is left out.
SELECT
    (SELECT n_dead_tup
     FROM pg_stat_user_tables
     WHERE schemaname = %(schema)s AND relname = 'jobs') AS jobs_dead_tuples,
    (SELECT extract(epoch FROM now() - min(xact_start))::float8
     FROM pg_stat_activity
     WHERE datname = current_database()
       AND xact_start IS NOT NULL
       AND pid <> pg_backend_pid()) AS oldest_transaction_age
