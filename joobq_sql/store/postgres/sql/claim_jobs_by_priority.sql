-- Claim up to %(limit)s runnable jobs of one queue for one worker (PostgreSQL 15 to 17; on
-- 18 the store runs claim_jobs.sql, which claims the same jobs), in claim order: higher
-- priority first, then earlier run_at, then insertion order (id).
--
-- Why not one scan of jobs_claim_idx (queue, priority DESC, run_at, id) for run_at <= now()?
-- With no equality on priority, run_at <= now() only filters that scan before 18 (which has
-- skip scan): it walks every job not yet due to the end of the queue. So:
--   priorities: the distinct priorities of the queue's waiting jobs, one index probe each (a
--               skip scan by hand). Each probe lands at the end of a priority's range, where
--               the newest jobs are, not at its head, where the rows of jobs claimed since the
--               last vacuum lie dead and the due scan below walks anyway.
--   picked:     per priority, highest first, a range scan of its due jobs (run_at <= now() is
--               a bound there) in (run_at, id) order, locked with SKIP LOCKED so concurrent
--               claimers take different jobs. The outer LIMIT stops pulling rows once it has
--               enough, so no row is locked that is not claimed and no lower priority is read
--               once the batch is full.
-- Its cost grows with the number of distinct priorities in the queue, not with its jobs. It
-- costs more to plan than the single scan (one more scan of jobs), which 18 need not pay.
-- A job not yet started whose expires_at passed is left for the expiry sweep, which moves it
-- to dead: it never runs. A job that has started (a run of it spent retry budget) runs on.
-- The UPDATE finds the locked rows by their physical address (ctid: a locked row cannot move),
-- with no index lookup. The error history is not returned (a worker does not need it, and it
-- can be large).
WITH RECURSIVE priorities AS (
    -- below any smallint: the probe for the lowest priority starts from here
    SELECT -32769 AS priority
    UNION ALL
    SELECT (
        SELECT j.priority
        FROM {schema}.jobs AS j
        WHERE j.queue = %(queue)s
          AND j.status IN ('enqueued', 'scheduled', 'retrying')
          AND j.priority > p.priority
        ORDER BY j.priority
        LIMIT 1
    )
    FROM priorities AS p
    WHERE p.priority IS NOT NULL
),
picked AS (
    SELECT due.ctid
    FROM (
        -- the real priorities (not the starting point, nor the NULL that ends the probes)
        SELECT priority FROM priorities WHERE priority >= -32768 ORDER BY priority DESC
    ) AS p
    CROSS JOIN LATERAL (
        SELECT ctid
        FROM {schema}.jobs
        WHERE queue = %(queue)s
          AND status IN ('enqueued', 'scheduled', 'retrying')
          AND priority = p.priority
          AND run_at <= now()
          AND (expires_at IS NULL OR expires_at > now() OR attempt > redrive_attempt
               OR last_error ->> 'error_type' = 'lease_expired_unstarted')
          -- a row edited by hand to the CHECK's edge (no write path makes one) is left
          -- waiting: its attempt + 1 would fail the claim of the whole queue
          AND attempt < 999999999
        ORDER BY run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS due
    LIMIT %(limit)s
),
claimed AS (
    UPDATE {schema}.jobs AS j
    SET status = 'running',
        attempt = j.attempt + 1,
        worker_id = %(worker_id)s,
        lease_expires_at = now() + make_interval(secs => %(lease_s)s),
        -- NULL (unknown) for the runtime, which reports it with its lease renewals; false
        -- for the seed API's claims, handed to a caller that may release them unstarted
        started = %(started)s::boolean,
        updated_at = now()
    -- By address, as one array (a TID scan of exactly the picked rows). Joined to picked
    -- instead, the planner hashed the whole table to find 1,000 rows (half the claim's time
    -- at 50k jobs, and growing with the queue).
    WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM picked))
    -- Not the queue, status or worker id: the claim sets them to what the caller knows, so
    -- the store fills them in rather than decoding them a thousand times per claim. As text
    -- (the same text their types send) the args and the four timestamps every claimed row
    -- has: the store decodes each distinct value once per claim (a claim's lease and update
    -- times are one now(), a batch's enqueue times another) and an empty args at no cost.
    RETURNING j.jid, j.job_type, j.args::text, j.priority, j.run_at::text, j.attempt,
              j.max_retries, j.expires_at, j.lease_expires_at::text, j.last_error,
              j.dead_reason, j.dead_expires_at, j.created_at::text, j.updated_at::text,
              j.finished_at, j.id, j.unique_key, j.cancel_requested_at, j.redrive_attempt
)
-- In claim order (UPDATE ... RETURNING has none of its own). The columns are the store's
-- CLAIM_COLUMNS, so it builds records from the rows as they are.
SELECT * FROM claimed ORDER BY priority DESC, run_at, id
