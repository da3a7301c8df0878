-- Claim up to %(limit)s runnable jobs of one queue for one worker.
-- The CTE picks and locks the rows (SKIP LOCKED: concurrent claimers take different jobs) and
-- its LIMIT keeps the planner from updating more rows than asked. Expired jobs are left for the
-- expiry sweep, which moves them to dead: they are never run.
WITH picked AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE queue = %(queue)s
      AND status IN ('enqueued', 'scheduled', 'retrying')
      AND run_at <= now()
      AND (expires_at IS NULL OR expires_at > now())
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE {schema}.jobs AS j
    SET status = 'running',
        attempt = j.attempt + 1,
        worker_id = %(worker_id)s,
        lease_expires_at = now() + make_interval(secs => %(lease_s)s),
        updated_at = now()
    FROM picked
    WHERE j.jid = picked.jid
    RETURNING j.*
)
SELECT * FROM claimed
ORDER BY priority DESC, run_at, id
