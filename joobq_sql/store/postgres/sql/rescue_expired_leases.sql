-- Rescue jobs whose worker stopped renewing its lease (it crashed or hung). Only expired
-- leases are touched, never a live one. A rescued job goes back to 'enqueued' at its old place,
-- or to 'dead' when the lost run was its last allowed one, so a job that kills its worker
-- cannot loop forever. The attempt is kept, so a late finish of the lost run is fenced out.
WITH expired AS (
    SELECT jid,
           (attempt - redrive_attempt <= max_retries) AS requeue,
           jsonb_build_object(
               'error_type', 'lease_expired',
               'message', format('lease of worker %%s expired during attempt %%s',
                                 worker_id, attempt),
               'attempt', attempt,
               'worker_id', worker_id
           ) AS error
    FROM {schema}.jobs
    WHERE status = 'running'
      AND lease_expires_at < now()
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
rescued AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN e.requeue THEN 'enqueued' ELSE 'dead' END,
        last_error = e.error,
        errors = CASE WHEN jsonb_array_length(j.errors) >= %(max_errors)s
                      THEN j.errors - 0
                      ELSE j.errors END || jsonb_build_array(e.error),
        dead_reason = CASE WHEN e.requeue THEN NULL
                           ELSE 'lease expired on the last attempt' END,
        dead_expires_at = CASE WHEN e.requeue THEN NULL
                               ELSE now() + make_interval(secs => %(dead_ttl_s)s) END,
        finished_at = CASE WHEN e.requeue THEN NULL ELSE now() END,
        worker_id = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL,
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
