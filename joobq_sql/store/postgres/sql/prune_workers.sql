-- Forget workers silent for `beats` of their own heartbeat intervals, and at least floor_s
-- seconds: they died without removing their row (SIGKILL, a lost host). Rows locked by
-- another maintainer (or a heartbeat) are left to it.
WITH silent AS (
    SELECT worker_id
    FROM {schema}.workers
    WHERE last_seen_at < now() - make_interval(
        secs => greatest(%(beats)s * heartbeat_interval_s, %(floor_s)s::float8)
    )
    ORDER BY last_seen_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.workers AS w
USING silent
WHERE w.worker_id = silent.worker_id
