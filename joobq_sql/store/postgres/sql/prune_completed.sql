-- Delete kept completed jobs once their retention is over (jobs_completed_prune_idx).
WITH old AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status = 'completed'
      AND finished_at <= now() - make_interval(secs => %(keep_s)s)
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.jobs AS j
USING old
WHERE j.jid = old.jid
