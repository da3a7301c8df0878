-- Cancel jobs. A waiting job goes to dead with reason 'cancelled' (kept for the dead-letter
-- time, and re-drivable); it will never run. A running job cannot be stopped from here: it
-- gets its cancel flag, which its worker sees at the next heartbeat and hands to the job.
WITH waiting AS (
    UPDATE {schema}.jobs AS j
    SET status = 'dead',
        dead_reason = 'cancelled',
        dead_expires_at = now() + make_interval(secs => %(dead_ttl_s)s),
        finished_at = now(),
        updated_at = now()
    WHERE j.jid = ANY(%(jids)s::uuid[])
      AND j.status IN ('enqueued', 'scheduled', 'retrying')
    RETURNING j.jid, 'cancelled' AS outcome
),
running AS (
    UPDATE {schema}.jobs AS j
    SET cancel_requested_at = COALESCE(j.cancel_requested_at, now()),
        updated_at = now()
    WHERE j.jid = ANY(%(jids)s::uuid[])
      AND j.status = 'running'
    RETURNING j.jid, 'requested' AS outcome
)
SELECT jid, outcome FROM waiting
UNION ALL
SELECT jid, outcome FROM running
