-- Apply failed runs in one statement. Each failure makes exactly one state change: to
-- 'retrying' (due after its backoff) when a retry is asked for and runs are left, else to
-- 'dead'. Fenced like completion, so a stale failure report changes nothing.
-- A job whose cancel was asked for is never retried: it goes to dead 'cancelled'. That is
-- read from the row the UPDATE changes (its current version, under its lock), not from the
-- `reported` snapshot, so a cancel committed meanwhile is not lost.
WITH reported AS (
    SELECT f.*,
           (f.retry_in_s IS NOT NULL AND j.attempt - j.redrive_attempt <= j.max_retries)
               AS will_retry
    FROM unnest(
        %(jid)s::uuid[],
        %(attempt)s::int[],
        %(worker_id)s::text[],
        %(error)s::jsonb[],
        %(retry_in_s)s::float8[],
        %(dead_reason)s::text[]
    ) AS f(jid, attempt, worker_id, error, retry_in_s, dead_reason)
    JOIN {schema}.jobs AS j ON j.jid = f.jid
),
changed AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN r.will_retry AND j.cancel_requested_at IS NULL THEN 'retrying'
                      ELSE 'dead' END,
        run_at = CASE WHEN r.will_retry AND j.cancel_requested_at IS NULL
                      THEN now() + make_interval(secs => r.retry_in_s)
                      ELSE j.run_at END,
        worker_id = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL,
        last_error = r.error,
        errors = CASE WHEN jsonb_array_length(j.errors) >= %(max_errors)s
                      THEN j.errors - 0
                      ELSE j.errors END || jsonb_build_array(r.error),
        dead_reason = CASE WHEN r.will_retry AND j.cancel_requested_at IS NULL THEN NULL
                           WHEN r.dead_reason IS NOT NULL THEN r.dead_reason
                           WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                           WHEN r.retry_in_s IS NOT NULL THEN 'retries exhausted'
                           ELSE 'not retried' END,
        dead_expires_at = CASE WHEN r.will_retry AND j.cancel_requested_at IS NULL THEN NULL
                               ELSE now() + make_interval(secs => %(dead_ttl_s)s) END,
        finished_at = CASE WHEN r.will_retry AND j.cancel_requested_at IS NULL THEN NULL
                           ELSE now() END,
        updated_at = now()
    FROM reported AS r
    WHERE j.jid = r.jid
      AND j.status = 'running'
      AND (r.attempt IS NULL OR j.attempt = r.attempt)
      AND (r.worker_id IS NULL OR j.worker_id = r.worker_id)
    RETURNING j.jid, j.queue, j.status
),
counted AS (
    INSERT INTO {schema}.queue_counters AS qc (queue, counter, shard, value)
    SELECT queue, CASE status WHEN 'retrying' THEN 'retried' ELSE 'dead' END, %(shard)s, count(*)
    FROM changed
    GROUP BY 1, 2
    ON CONFLICT (queue, counter, shard) DO UPDATE SET value = qc.value + EXCLUDED.value
)
SELECT jid, status FROM changed
