-- Insert a chunk of new jobs in one statement, and wake the workers of their queues. The
-- arrays are parallel, one element per job; WITH ORDINALITY keeps the caller's order, so
-- identity ids (the FIFO tie-break) follow it. A unique job whose (job_type, unique_key) is
-- already waiting or running is skipped (jobs_unique_key_idx decides, so concurrent enqueues
-- cannot both get in); the rows returned tell the caller which jobs went in.
--
-- The wake-up rides in the same statement (one round trip less per chunk): one NOTIFY per
-- distinct queue that got a job runnable now, when `notify` is on. PostgreSQL delivers it at
-- COMMIT, drops it on rollback, and folds repeats of a (channel, payload) within a
-- transaction, so the chunks of one batch send at most one per queue.
WITH inserted AS (
    INSERT INTO {schema}.jobs
        (jid, queue, job_type, args, status, priority, run_at, max_retries, expires_at,
         unique_key)
    SELECT
        n.jid,
        n.queue,
        n.job_type,
        n.args::jsonb,
        CASE WHEN n.run_at IS NOT NULL OR n.delay_s > 0 THEN 'scheduled' ELSE 'enqueued' END,
        n.priority,
        COALESCE(n.run_at, now() + make_interval(secs => n.delay_s)),
        n.max_retries,
        COALESCE(n.expires_at, now() + make_interval(secs => n.expires_in_s)),
        n.unique_key
    FROM unnest(
        %(jid)s::uuid[],
        %(queue)s::text[],
        %(job_type)s::text[],
        %(args)s::text[],
        %(priority)s::smallint[],
        %(max_retries)s::int[],
        %(delay_s)s::float8[],
        %(run_at)s::timestamptz[],
        %(expires_in_s)s::float8[],
        %(expires_at)s::timestamptz[],
        %(unique_key)s::text[]
    ) WITH ORDINALITY AS n(
        jid, queue, job_type, args, priority, max_retries, delay_s, run_at, expires_in_s,
        expires_at, unique_key, position
    )
    ORDER BY n.position
    ON CONFLICT (job_type, unique_key)
        WHERE unique_key IS NOT NULL
          AND status IN ('enqueued', 'scheduled', 'retrying', 'running')
        DO NOTHING
    RETURNING jid, queue, run_at
),
woken AS (
    SELECT pg_notify(%(channel)s, runnable.queue)
    FROM (SELECT DISTINCT queue FROM inserted WHERE %(notify)s AND run_at <= now()) AS runnable
)
SELECT inserted.jid
FROM inserted
WHERE (SELECT count(*) FROM woken) >= 0  -- makes the wake-ups run: an unread CTE would not
