-- Wake the workers of each queue that just got jobs: one NOTIFY per distinct queue name, with the
-- queue name as payload. Run inside the enqueuing transaction, so PostgreSQL delivers it at
-- COMMIT and drops it on rollback; within one transaction it also folds repeats of the same
-- (channel, payload), so any number of calls still send at most one per queue.
SELECT pg_notify(%(channel)s, d.queue)
FROM (SELECT DISTINCT unnest(%(queues)s::text[]) AS queue) AS d
