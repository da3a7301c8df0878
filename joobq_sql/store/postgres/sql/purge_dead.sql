-- Delete dead jobs whose dead-letter time is over (jobs_dead_purge_idx serves the scan).
WITH expired AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status = 'dead'
      AND dead_expires_at <= now()
    ORDER BY dead_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.jobs AS j
USING expired
WHERE j.jid = expired.jid
