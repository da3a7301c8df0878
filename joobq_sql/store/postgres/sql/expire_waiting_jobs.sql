-- The expiry sweep: jobs that never started and are past their expires_at go to dead with
-- reason 'expired'. `expires` bounds how long a job may wait for its first start, not its
-- whole life: a job counts as started once a run of it spent retry budget (attempt -
-- redrive_attempt > 0: it failed, or its lease was lost while it may have been running). A
-- release or an unstarted hand-back spends none, so such a job can still expire; a re-drive
-- starts a fresh life (retry_dead.sql drops an expires_at already passed).
-- jobs_expiry_idx holds exactly these rows, by expires_at: the sweep reads the expired ones,
-- never the table.
WITH gone AS (
    SELECT jid,
           jsonb_build_object(
               'error_type', 'expired',
               'message', format(
                   'job expired at %%s before it ran',
                   to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               )
           ) AS error
    FROM {schema}.jobs
    WHERE status IN ('enqueued', 'scheduled', 'retrying')
      AND attempt <= redrive_attempt
      -- rescued as unstarted: its worker's mark can lag a start by one renewal, so it may
      -- have run; it is run again rather than expired
      AND (last_error ->> 'error_type') IS DISTINCT FROM 'lease_expired_unstarted'
      AND expires_at <= now()
    ORDER BY expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
expired AS (
    UPDATE {schema}.jobs AS j
    SET status = 'dead',
        dead_reason = 'expired',
        dead_expires_at = now() + make_interval(secs => %(dead_ttl_s)s),
        finished_at = now(),
        last_error = gone.error,
        errors = CASE WHEN jsonb_array_length(j.errors) >= %(max_errors)s
                      THEN j.errors - 0
                      ELSE j.errors END || jsonb_build_array(gone.error),
        updated_at = now()
    FROM gone
    WHERE j.jid = gone.jid
    RETURNING j.jid, j.queue
),
counted AS (
    INSERT INTO {schema}.queue_counters AS qc (queue, counter, shard, value)
    SELECT queue, 'expired', %(shard)s, count(*)
    FROM expired
    GROUP BY queue
    ON CONFLICT (queue, counter, shard) DO UPDATE SET value = qc.value + EXCLUDED.value
)
SELECT jid FROM expired
