-- How the jobs table is doing, from the statistics collector: live and dead tuples (every
-- completed job is a deleted row, a dead tuple until VACUUM removes it), and its vacuums.
-- The schema name travels as a parameter, like any value.
SELECT n_live_tup::bigint AS live_tuples,
       n_dead_tup::bigint AS dead_tuples,
       last_vacuum,
       last_autovacuum,
       (vacuum_count + autovacuum_count)::bigint AS vacuums,
       pg_total_relation_size(relid)::bigint AS total_bytes
FROM pg_stat_user_tables
WHERE schemaname = %(schema)s
  AND relname = 'jobs'
