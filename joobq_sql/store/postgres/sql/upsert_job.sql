-- Put one job into a given state, inserting it when its jid is unknown: the seed's schedule,
-- schedule_job and mark_as_dead. An existing row keeps its args, queue and attempt count;
-- any claim on it is dropped.
INSERT INTO {schema}.jobs AS j
    (jid, queue, job_type, args, status, priority, run_at, attempt, max_retries,
     dead_reason, dead_expires_at, finished_at)
VALUES (
    %(jid)s,
    %(queue)s,
    %(job_type)s,
    %(args)s::jsonb,
    %(status)s,
    %(priority)s,
    COALESCE(%(run_at)s::timestamptz, now() + make_interval(secs => %(delay_s)s)),
    %(attempt)s,
    %(max_retries)s,
    %(dead_reason)s,
    %(dead_until)s::timestamptz,
    CASE WHEN %(status)s = 'dead' THEN now() END
)
ON CONFLICT (jid) DO UPDATE
SET status = EXCLUDED.status,
    run_at = CASE WHEN EXCLUDED.status = 'scheduled' THEN EXCLUDED.run_at ELSE j.run_at END,
    dead_reason = EXCLUDED.dead_reason,
    dead_expires_at = EXCLUDED.dead_expires_at,
    finished_at = EXCLUDED.finished_at,
    worker_id = NULL,
    lease_expires_at = NULL,
    cancel_requested_at = NULL,
    updated_at = now()
