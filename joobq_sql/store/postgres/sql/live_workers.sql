-- Workers heard from within the given time, oldest first.
SELECT worker_id, host, pid, queues, started_at, last_seen_at
FROM {schema}.workers
WHERE last_seen_at > now() - make_interval(secs => %(within_s)s)
ORDER BY started_at, worker_id
