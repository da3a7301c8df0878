-- Forget per-minute throughput and silent workers older than the given age.
WITH old_minutes AS (
    DELETE FROM {schema}.queue_throughput
    WHERE minute < now() - make_interval(secs => %(older_than_s)s)
    RETURNING 1
),
silent_workers AS (
    DELETE FROM {schema}.workers
    WHERE last_seen_at < now() - make_interval(secs => %(older_than_s)s)
    RETURNING 1
)
SELECT (SELECT count(*) FROM old_minutes) + (SELECT count(*) FROM silent_workers) AS pruned
