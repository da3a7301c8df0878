-- hot_table_health.sql for PostgreSQL 15 and 16, which have no MAINTAIN privilege: there a
-- role may VACUUM a table it owns (or has the privileges of its owner: superusers too), and a
-- database owner every table of the database.
SELECT c.relname AS table_name,
       coalesce(s.n_live_tup, 0) AS live_rows,
       coalesce(s.n_dead_tup, 0) AS dead_rows,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8
           AS since_vacuum_s,
       EXISTS (SELECT 1 FROM pg_stat_progress_vacuum AS p WHERE p.relid = c.oid) AS vacuuming,
       pg_has_role(c.relowner, 'USAGE')
           OR pg_has_role(d.datdba, 'USAGE') AS may_vacuum
FROM pg_class AS c
JOIN pg_database AS d ON d.datname = current_database()
LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = '{schema}.jobs'::regclass
