-- Signs of live workers: running jobs whose lease a worker renews (a live lease), running jobs
-- whose lease ran out and that no worker's maintenance has rescued yet (an expired lease), and
-- the listener sessions that worker processes hold in LISTEN/NOTIFY mode.
SELECT count(*) FILTER (WHERE lease_expires_at > now()) AS live_leases,
       count(DISTINCT worker_id) FILTER (WHERE lease_expires_at > now()) AS workers_with_leases,
       count(*) FILTER (WHERE lease_expires_at <= now()) AS expired_leases,
       extract(epoch FROM now() - min(lease_expires_at) FILTER (
           WHERE lease_expires_at <= now()
       ))::float8 AS oldest_expired_lease_age,
       (
           SELECT count(*)
           FROM pg_stat_activity
           WHERE datname = current_database()
             AND application_name = 'joobq-sql listener'
       ) AS listener_sessions
FROM {schema}.jobs
WHERE status = 'running'
