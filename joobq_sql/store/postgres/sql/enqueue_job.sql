-- Insert one new job and wake its queue's workers, in one statement: the single enqueue's one
-- round trip. Outside a caller's transaction it runs on its own (autocommit), so the INSERT,
-- its COMMIT and the NOTIFY (delivered at that commit, dropped with a rollback) cost one
-- statement; inside a caller's transaction it is the only statement the enqueue adds.
--
-- ON CONFLICT DO NOTHING with no target covers every unique index: a unique job whose
-- (job_type, unique_key) is already waiting or running (jobs_unique_key_idx) and a jid that is
-- already stored (jobs_pkey). Either way nothing is written, no error aborts the caller's
-- transaction, and no row comes back; the store then finds out which it was.
--
-- The NOTIFY rides in RETURNING, evaluated for the inserted row only: sent when `notify` is on
-- and the job is runnable now (a delayed job's workers would wake to find nothing to claim).
INSERT INTO {schema}.jobs
    (jid, queue, job_type, args, status, priority, run_at, max_retries, expires_at, unique_key)
VALUES (
    %(jid)s,
    %(queue)s,
    %(job_type)s,
    %(args)s::jsonb,
    CASE
        WHEN %(run_at)s::timestamptz IS NOT NULL OR %(delay_s)s > 0 THEN 'scheduled'
        ELSE 'enqueued'
    END,
    %(priority)s,
    COALESCE(%(run_at)s::timestamptz, now() + make_interval(secs => %(delay_s)s)),
    %(max_retries)s,
    COALESCE(%(expires_at)s::timestamptz, now() + make_interval(secs => %(expires_in_s)s)),
    %(unique_key)s
)
ON CONFLICT DO NOTHING
RETURNING
    jid,
    CASE
        WHEN %(notify)s AND run_at <= now() THEN pg_notify(%(channel)s, queue)
    END IS NOT NULL AS woken
