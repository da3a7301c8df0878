-- Rescue jobs whose worker stopped renewing its lease (it crashed or hung). Only expired
-- leases are touched, never a live one. The attempt is kept, so a late finish of the lost run
-- is fenced out. A rescued job:
--   - whose cancel was asked for goes to dead 'cancelled': it never runs again;
--   - that its worker reported not started (started IS FALSE: waiting in its buffer) goes
--     back to 'enqueued' at its old place without spending its retry budget
--     (redrive_attempt + 1), but only once in a row: if its last error already says so, it is
--     charged as usual, so a job that kills its worker right after starting cannot loop free;
--   - otherwise goes back to 'enqueued' at its old place, or to 'dead' when the lost run was
--     its last allowed one, so a job that kills its worker cannot loop forever.
WITH expired AS (
    SELECT jid,
           outcome,
           jsonb_build_object(
               'error_type', CASE WHEN outcome = 'unstarted' THEN 'lease_expired_unstarted'
                                  ELSE 'lease_expired' END,
               'message', format('lease of worker %%s expired during attempt %%s%%s',
                                 worker_id, attempt,
                                 CASE WHEN outcome = 'unstarted'
                                      THEN ', before the job started' ELSE '' END),
               'attempt', attempt,
               'worker_id', worker_id
           ) AS error
    FROM (
        SELECT jid, worker_id, attempt, lease_expires_at,
               CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
                    WHEN started IS FALSE
                         AND last_error->>'error_type' IS DISTINCT FROM 'lease_expired_unstarted'
                         THEN 'unstarted'
                    WHEN attempt - redrive_attempt <= max_retries THEN 'requeue'
                    ELSE 'dead' END AS outcome
        FROM {schema}.jobs
        WHERE status = 'running'
          AND lease_expires_at < now()
          AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
        ORDER BY lease_expires_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS locked
),
rescued AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN e.outcome IN ('unstarted', 'requeue') THEN 'enqueued'
                      ELSE 'dead' END,
        redrive_attempt = CASE WHEN e.outcome = 'unstarted' THEN j.redrive_attempt + 1
                               ELSE j.redrive_attempt END,
        last_error = e.error,
        errors = CASE WHEN jsonb_array_length(j.errors) >= %(max_errors)s
                      THEN j.errors - 0
                      ELSE j.errors END || jsonb_build_array(e.error),
        dead_reason = CASE e.outcome WHEN 'cancelled' THEN 'cancelled'
                                     WHEN 'dead' THEN 'lease expired on the last attempt' END,
        dead_expires_at = CASE WHEN e.outcome IN ('cancelled', 'dead')
                               THEN now() + make_interval(secs => %(dead_ttl_s)s) END,
        finished_at = CASE WHEN e.outcome IN ('cancelled', 'dead') THEN now() END,
        worker_id = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL,
        started = NULL,
        updated_at = now()
    FROM expired AS e
    WHERE j.jid = e.jid
    RETURNING j.jid, j.queue, j.status
),
counted AS (
    INSERT INTO {schema}.queue_counters AS qc (queue, counter, shard, value)
    SELECT queue, counter, %(shard)s, count(*)
    FROM rescued,
         LATERAL (VALUES ('rescued'), (CASE WHEN status = 'dead' THEN 'dead' END)) AS c(counter)
    WHERE counter IS NOT NULL
    GROUP BY 1, 2
    ON CONFLICT (queue, counter, shard) DO UPDATE SET value = qc.value + EXCLUDED.value
)
SELECT jid FROM rescued
