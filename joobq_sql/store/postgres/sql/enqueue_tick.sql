-- Enqueue the job of one tick of a recurring or cron schedule, exactly once: the tick row's
-- primary key (schedule, tick) lets only the first of any number of schedulers insert it, and
-- the job is inserted by the same statement only when the tick row was.
-- A tick at or before the schedule's newest recorded tick is refused too: its row may have
-- been pruned (prune_ticks.sql keeps each schedule's newest, so that one bounds them all), and
-- a scheduler whose cursor lags must not enqueue it again. Ticks only move forward.
WITH tick AS (
    INSERT INTO {schema}.schedule_ticks (schedule, tick, jid)
    SELECT %(schedule)s::text, %(tick)s::timestamptz, %(jid)s::uuid
    WHERE NOT EXISTS (
        SELECT 1
        FROM {schema}.schedule_ticks AS newer
        WHERE newer.schedule = %(schedule)s::text
          AND newer.tick >= %(tick)s::timestamptz
    )
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
