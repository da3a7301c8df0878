-- The open transactions of this database, oldest first (other than the doctor's own): client
-- sessions, and transactions prepared for two-phase commit. One that holds a snapshot or a
-- transaction id ("pins_xmin") keeps VACUUM from removing any row deleted after it began, on
-- every table of the database: on joobq's jobs table the dead tuples pile up and claims slow
-- down. Other databases' transactions do not hold back this database's tables.
SELECT kind, pid, state, application_name, usename, age_s, pins_xmin, xmin_age
FROM (
    SELECT 'session' AS kind,
           pid,
           state,
           application_name,
           usename::text AS usename,
           extract(epoch FROM now() - xact_start)::float8 AS age_s,
           (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL) AS pins_xmin,
           greatest(age(backend_xmin), age(backend_xid)) AS xmin_age
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
      AND xact_start IS NOT NULL
    UNION ALL
    SELECT 'prepared',
           NULL,
           'prepared',
           gid,
           owner::text,
           extract(epoch FROM now() - prepared)::float8,
           true,
           age(transaction)
    FROM pg_prepared_xacts
    WHERE database = current_database()
) AS open_transactions
ORDER BY age_s DESC
LIMIT %(limit)s
