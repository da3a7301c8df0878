-- Re-drive dead jobs in bulk, oldest death first (see retry_jobs.sql for what a re-drive does).
WITH target AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status = 'dead'
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    ORDER BY finished_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs AS j
SET status = 'enqueued',
    redrive_attempt = j.attempt,
    run_at = LEAST(j.run_at, now()),
    expires_at = CASE WHEN j.expires_at <= now() THEN NULL ELSE j.expires_at END,
    dead_reason = NULL,
    dead_expires_at = NULL,
    finished_at = NULL,
    updated_at = now()
FROM target
WHERE j.jid = target.jid
RETURNING j.jid
