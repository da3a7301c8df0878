-- How much of joobq's hot table (jobs) is dead row versions, as the server's statistics see
-- it, when it was last vacuumed (by autovacuum or anyone), whether a VACUUM of it is running
-- now, and whether this role may VACUUM it. PostgreSQL 17 and later: the MAINTAIN privilege
-- (held by the owner, pg_maintain's members, and those granted it); 15 and 16 run
-- hot_table_health_pg15.sql.
SELECT c.relname AS table_name,
       coalesce(s.n_live_tup, 0) AS live_rows,
       coalesce(s.n_dead_tup, 0) AS dead_rows,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8
           AS since_vacuum_s,
       EXISTS (SELECT 1 FROM pg_stat_progress_vacuum AS p WHERE p.relid = c.oid) AS vacuuming,
       has_table_privilege(c.oid, 'MAINTAIN') AS may_vacuum
FROM pg_class AS c
LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = '{schema}.jobs'::regclass
