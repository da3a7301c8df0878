-- Make jobs run now. A dead job is re-driven into its own queue with a fresh retry budget:
-- retries count again from its current attempt (redrive_attempt), while the attempt number
-- keeps rising, so a stale finish of an old run stays fenced out. Its error history is kept.
-- A scheduled or retrying job just becomes due now. Other states are left alone, and so is a
-- dead unique job whose key another job now holds (of several with one key, the oldest wins).
WITH locked AS (
    SELECT jid, id, job_type, unique_key, status
    FROM {schema}.jobs
    WHERE jid = ANY(%(jids)s::uuid[])
      AND status IN ('dead', 'scheduled', 'retrying')
    ORDER BY id
    FOR UPDATE
),
target AS (
    SELECT DISTINCT ON (l.job_type, COALESCE(l.unique_key, l.jid::text)) l.jid
    FROM locked AS l
    WHERE l.status <> 'dead'
       OR l.unique_key IS NULL
       OR NOT EXISTS (
           SELECT 1
           FROM {schema}.jobs AS holder
           WHERE holder.job_type = l.job_type
             AND holder.unique_key = l.unique_key
             AND holder.status IN ('enqueued', 'scheduled', 'retrying', 'running')
       )
    ORDER BY l.job_type, COALESCE(l.unique_key, l.jid::text), l.id
)
UPDATE {schema}.jobs AS j
SET status = CASE WHEN j.status = 'dead' THEN 'enqueued' ELSE j.status END,
    redrive_attempt = CASE WHEN j.status = 'dead' THEN j.attempt ELSE j.redrive_attempt END,
    -- a re-driven job that died unrunnable gets a fresh grace
    unrunnable_since = CASE WHEN j.status = 'dead' THEN NULL ELSE j.unrunnable_since END,
    run_at = LEAST(j.run_at, now()),
    -- a job that died of old age would expire again at once: give it a life again
    expires_at = CASE WHEN j.status = 'dead' AND j.expires_at <= now() THEN NULL
                      ELSE j.expires_at END,
    dead_reason = NULL,
    dead_expires_at = NULL,
    finished_at = NULL,
    updated_at = now()
FROM target
WHERE j.jid = target.jid
RETURNING j.jid
