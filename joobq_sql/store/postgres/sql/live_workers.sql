-- Workers heard from recently, oldest first: within within_s seconds, or (when it is NULL)
-- within `beats` of each worker's own heartbeat intervals, and never less than floor_s.
SELECT worker_id, host, pid, queues, started_at, last_seen_at,
       heartbeat_interval_s AS heartbeat_interval
FROM {schema}.workers
WHERE last_seen_at > now() - make_interval(secs => coalesce(
    %(within_s)s::float8,
    greatest(%(beats)s * heartbeat_interval_s, %(floor_s)s::float8)
))
ORDER BY started_at, worker_id
