-- Undo claims a worker has not started: the job keeps its place (run_at and id unchanged) and
-- its attempt count, as if it had never been claimed. Without a jid list, the most recently
-- claimed jobs go back first, so the oldest stay with the worker.
WITH released AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status = 'running'
      AND worker_id = %(worker_id)s
      AND (%(jids)s::uuid[] IS NULL OR jid = ANY(%(jids)s::uuid[]))
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    ORDER BY id DESC
    LIMIT %(limit)s
    FOR UPDATE
)
UPDATE {schema}.jobs AS j
SET status = CASE WHEN j.attempt - 1 > j.redrive_attempt THEN 'retrying'
                  ELSE 'enqueued' END,
    attempt = j.attempt - 1,
    worker_id = NULL,
    lease_expires_at = NULL,
    cancel_requested_at = NULL,
    updated_at = now()
FROM released
WHERE j.jid = released.jid
RETURNING j.jid
