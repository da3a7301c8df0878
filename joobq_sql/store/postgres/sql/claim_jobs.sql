-- Claim up to %(limit)s runnable jobs of one queue for one worker (PostgreSQL 18 and later;
-- claim_jobs_by_priority.sql is the same claim for 15 to 17, and the store picks by version).
-- One scan of jobs_claim_idx (queue, priority DESC, run_at, id) in claim order. It stops at the
-- jobs not yet due because 18's skip scan makes run_at <= now() a bound within each priority;
-- before 18 the scan would walk every one of them to the end of the queue.
-- The CTE picks and locks the rows (SKIP LOCKED: concurrent claimers take different jobs) and
-- its LIMIT keeps the planner from updating more rows than asked; the UPDATE finds the locked
-- rows by their physical address (ctid: a locked row cannot move), with no index lookup.
-- A job not yet started whose expires_at passed is left for the expiry sweep, which moves it
-- to dead: it never runs. A job that has started (a run of it spent retry budget) runs on.
-- The error history is not returned (a worker does not need it, and it can be large).
WITH picked AS (
    SELECT ctid
    FROM {schema}.jobs
    WHERE queue = %(queue)s
      AND status IN ('enqueued', 'scheduled', 'retrying')
      AND run_at <= now()
      AND (expires_at IS NULL OR expires_at > now() OR attempt > redrive_attempt
           OR last_error ->> 'error_type' = 'lease_expired_unstarted')
      -- a row edited by hand to the CHECK's edge (no write path makes one) is left
      -- waiting: its attempt + 1 would fail the claim of the whole queue
      AND attempt < 999999999
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
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
