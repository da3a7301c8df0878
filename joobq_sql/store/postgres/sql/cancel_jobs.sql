-- Cancel jobs, deciding on each row's current state under its row lock. A waiting job goes to
-- dead with reason 'cancelled' (kept for the dead-letter time, and re-drivable); it will never
-- run. A running job cannot be stopped from here: it gets its cancel flag, which its worker
-- sees at the next heartbeat and hands to the job ('requested'); a release or rescue of it
-- makes it dead 'cancelled' too. Jobs not found or already finished are absent.
-- One UPDATE over the locked rows: when a claim, release or finish holds a row's lock, this
-- waits for it and then works on the row as that transaction left it (a claimed job gets the
-- flag, a released one is cancelled, a finished one is absent), so no cancel is dropped.
-- The rows are locked in id order, so two concurrent cancels of many jobs cannot deadlock.
WITH locked AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE jid = ANY(%(jids)s::uuid[])
      AND status IN ('enqueued', 'scheduled', 'retrying', 'running')
    ORDER BY id
    FOR UPDATE
)
UPDATE {schema}.jobs AS j
SET status = CASE WHEN j.status = 'running' THEN 'running' ELSE 'dead' END,
    dead_reason = CASE WHEN j.status = 'running' THEN j.dead_reason ELSE 'cancelled' END,
    dead_expires_at = CASE WHEN j.status = 'running' THEN j.dead_expires_at
                           ELSE now() + make_interval(secs => %(dead_ttl_s)s) END,
    finished_at = CASE WHEN j.status = 'running' THEN j.finished_at ELSE now() END,
    cancel_requested_at = CASE WHEN j.status = 'running'
                               THEN COALESCE(j.cancel_requested_at, now()) END,
    -- A running row's updated_at stays its claim time: the seed's jid-less release gives
    -- back the most recent claims by it, and a cancel request must not make a claim its
    -- client is running look like the newest one.
    updated_at = CASE WHEN j.status = 'running' THEN j.updated_at ELSE now() END
FROM locked
WHERE j.jid = locked.jid
  AND j.status IN ('enqueued', 'scheduled', 'retrying', 'running')
-- RETURNING sees the new row: still running means the flag was set.
RETURNING j.jid, CASE WHEN j.status = 'running' THEN 'requested' ELSE 'cancelled' END AS outcome
