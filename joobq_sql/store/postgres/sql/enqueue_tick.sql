-- Enqueue the job of one tick of a recurring or cron schedule, exactly once: the tick row's
-- primary key (schedule, tick) lets only the first of any number of schedulers insert it, and
-- the job is inserted by the same statement only when the tick row was.
WITH tick AS (
    INSERT INTO {schema}.schedule_ticks (schedule, tick, jid)
    VALUES (%(schedule)s, %(tick)s, %(jid)s)
    ON CONFLICT (schedule, tick) DO NOTHING
    RETURNING jid
)
INSERT INTO {schema}.jobs
    (jid, queue, job_type, args, status, priority, run_at, max_retries, expires_at, unique_key)
SELECT
    tick.jid,
    %(queue)s,
    %(job_type)s,
    %(args)s::jsonb,
    'enqueued',
    %(priority)s,
    now(),
    %(max_retries)s,
    now() + make_interval(secs => %(expires_in_s)s),
    %(unique_key)s
FROM tick
ON CONFLICT (job_type, unique_key)
    WHERE unique_key IS NOT NULL
      AND status IN ('enqueued', 'scheduled', 'retrying', 'running')
    DO NOTHING
RETURNING jid
