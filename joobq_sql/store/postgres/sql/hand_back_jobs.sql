-- Hand back claimed jobs their worker cannot run (no Job class of its process registers the
-- job_type, or the args do not fit the class: during a rolling deploy, a job of the new code
-- claimed by an old worker), for a worker that can. Fenced like fail_jobs: only a row still
-- running the reported attempt for the reported worker changes.
-- - The claim spends no retry budget: redrive_attempt + 1 (the attempt, the fencing token,
--   never goes down; budget used = attempt - redrive_attempt).
-- - unrunnable_since is when this spell of hand-backs began. A spell goes on while the job's
--   last error is an unrunnable hand-back; anything else in between (a run that failed, a
--   rescued lease: each records its own last error) starts a new one. A re-drive clears it.
-- - The job is due again after a backoff as long as the spell so far (1 s, 2 s, 4 s, ...),
--   at most the maximum backoff (60 s) and never past the spell's grace, so that a job no worker knows
--   does not spin: 'scheduled' (waiting for its run_at), or 'retrying' if it has charged runs.
-- - Once the spell has lasted the grace, it goes dead with the reason instead. A job whose
--   cancel was asked for goes dead 'cancelled'.
-- The error entry becomes last_error each time; the history gets it when a spell begins and
-- when the job goes dead, so a minute-by-minute spell does not push real errors out of it.
-- The rows are locked and re-read (FOR UPDATE), so a cancel committed meanwhile is seen.
WITH reported AS (
    SELECT *
    FROM unnest(
        %(jid)s::uuid[],
        %(attempt)s::int[],
        %(worker_id)s::text[],
        %(error)s::jsonb[],
        %(dead_reason)s::text[]
    ) AS h(jid, attempt, worker_id, error, dead_reason)
),
-- Found by primary key alone (jid = ANY: the planner sees the array's length). The fence
-- (running, attempt, worker) is tested after the lock: tested here, or through a join of the
-- unnest, it makes the planner scan the lease index, which holds an entry for every claim
-- since the last vacuum.
held AS (
    SELECT jid,
           status,
           attempt,
           worker_id,
           cancel_requested_at IS NOT NULL AS cancelled,
           CASE WHEN unrunnable_since IS NOT NULL
                 AND last_error ->> 'error_type' = 'unrunnable'
                THEN unrunnable_since END AS since
    FROM {schema}.jobs
    WHERE jid = ANY(%(jid)s::uuid[])
    FOR UPDATE
),
spell AS (
    SELECT held.jid,
           held.cancelled,
           held.since,
           r.error,
           r.dead_reason,
           COALESCE(held.since, now()) AS began,
           extract(epoch FROM now() - COALESCE(held.since, now()))::float8 AS lasted_s
    FROM held
    JOIN reported AS r
      ON r.jid = held.jid AND r.attempt = held.attempt AND r.worker_id = held.worker_id
    WHERE held.status = 'running'
),
decided AS (
    SELECT spell.*,
           CASE WHEN cancelled THEN 'cancelled'
                WHEN lasted_s >= %(grace_s)s THEN 'expired'
                ELSE 'back' END AS outcome,
           LEAST(%(max_backoff_s)s::float8,
                 GREATEST(%(min_backoff_s)s::float8, lasted_s),
                 %(grace_s)s::float8 - lasted_s) AS wait_s
    FROM spell
),
changed AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN d.outcome <> 'back' THEN 'dead'
                      WHEN j.attempt - (j.redrive_attempt + 1) > 0 THEN 'retrying'
                      ELSE 'scheduled' END,
        run_at = CASE WHEN d.outcome = 'back' THEN now() + make_interval(secs => d.wait_s)
                      ELSE j.run_at END,
        redrive_attempt = j.redrive_attempt + 1,
        unrunnable_since = d.began,
        last_error = d.error,
        errors = CASE WHEN d.since IS NOT NULL AND d.outcome = 'back' THEN j.errors
                      WHEN jsonb_array_length(j.errors) >= %(max_errors)s
                      THEN (j.errors - 0) || jsonb_build_array(d.error)
                      ELSE j.errors || jsonb_build_array(d.error) END,
        dead_reason = CASE d.outcome WHEN 'cancelled' THEN 'cancelled'
                                     WHEN 'expired' THEN d.dead_reason END,
        dead_expires_at = CASE WHEN d.outcome <> 'back'
                               THEN now() + make_interval(secs => %(dead_ttl_s)s) END,
        finished_at = CASE WHEN d.outcome <> 'back' THEN now() END,
        worker_id = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL,
        started = NULL,
        updated_at = now()
    FROM decided AS d
    WHERE j.jid = d.jid  -- the primary key (no index serves id)
    RETURNING j.jid, j.queue, j.status
),
counted AS (
    INSERT INTO {schema}.queue_counters AS qc (queue, counter, shard, value)
    SELECT queue, 'dead', %(shard)s, count(*)
    FROM changed
    WHERE status = 'dead'
    GROUP BY queue
    ON CONFLICT (queue, counter, shard) DO UPDATE SET value = qc.value + EXCLUDED.value
)
SELECT jid, status FROM changed
