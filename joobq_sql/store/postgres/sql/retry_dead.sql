-- Re-drive dead jobs in bulk, oldest death first (see retry_jobs.sql for what a re-drive does).
-- A dead unique job whose key another job now holds stays dead (of several, the oldest wins).
WITH locked AS (
    SELECT jid, id, job_type, unique_key, finished_at
    FROM {schema}.jobs
    WHERE status = 'dead'
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    ORDER BY finished_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
target AS (
    SELECT DISTINCT ON (l.job_type, COALESCE(l.unique_key, l.jid::text)) l.jid
    FROM locked AS l
    WHERE l.unique_key IS NULL
       OR NOT EXISTS (
           SELECT 1
           FROM {schema}.jobs AS holder
           WHERE holder.job_type = l.job_type
             AND holder.unique_key = l.unique_key
             AND holder.status IN ('enqueued', 'scheduled', 'retrying', 'running')
       )
    ORDER BY l.job_type, COALESCE(l.unique_key, l.jid::text), l.finished_at, l.id
)
UPDATE {schema}.jobs AS j
SET status = 'enqueued',
    redrive_attempt = j.attempt,
    unrunnable_since = NULL,  -- a job that died unrunnable gets a fresh grace
    run_at = LEAST(j.run_at, now()),
    expires_at = CASE WHEN j.expires_at <= now() THEN NULL ELSE j.expires_at END,
    dead_reason = NULL,
    dead_expires_at = NULL,
    finished_at = NULL,
    updated_at = now()
FROM target
WHERE j.jid = target.jid
RETURNING j.jid
