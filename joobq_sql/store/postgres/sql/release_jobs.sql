-- Give back jobs a worker claimed but did not start. The job keeps its place (run_at and id
-- unchanged). Its attempt, the fencing token, never goes down: a stale finish of the released
-- claim stays fenced out after a reclaim. The run spends no retry budget instead
-- (redrive_attempt + 1; budget used = attempt - redrive_attempt).
-- Which rows:
--   %(jids)s given:  those of the worker's running jobs;
--   %(keep)s given:  every running job of the worker that is not in it (a fetcher handing back
--                    what a claim whose COMMIT it never saw may have claimed);
--   neither:         only jobs the worker reported not started (started IS FALSE), most
--                    recently claimed first (a claim sets updated_at; renewals leave it alone).
-- A job whose cancel was asked for goes to dead 'cancelled' instead: it never runs again.
-- The rows are locked and re-read (FOR UPDATE), so a concurrent renewal's started mark or a
-- cancel committed meanwhile is seen.
-- Released jobs are as runnable as before their claim: with %(notify)s, one NOTIFY per queue
-- that got some back (as notify_queues.sql: payload the queue name, delivered at COMMIT) wakes
-- idle workers elsewhere now rather than at their next poll. Cancelled ones wake nobody.
WITH released AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status = 'running'
      AND worker_id = %(worker_id)s
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND CASE WHEN %(jids)s::uuid[] IS NOT NULL THEN jid = ANY(%(jids)s::uuid[])
               WHEN %(keep)s::uuid[] IS NOT NULL THEN jid <> ALL(%(keep)s::uuid[])
               ELSE started IS FALSE END
    ORDER BY updated_at DESC, id DESC
    LIMIT %(limit)s
    FOR UPDATE
),
changed AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'dead'
                      WHEN j.attempt - (j.redrive_attempt + 1) > 0 THEN 'retrying'
                      ELSE 'enqueued' END,
        redrive_attempt = j.redrive_attempt + 1,
        dead_reason = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled' END,
        dead_expires_at = CASE WHEN j.cancel_requested_at IS NOT NULL
                               THEN now() + make_interval(secs => %(dead_ttl_s)s) END,
        finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
        worker_id = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL,
        started = NULL,
        updated_at = now()
    FROM released
    WHERE j.jid = released.jid
    RETURNING j.jid, j.queue, j.status, j.run_at
),
counted AS (
    INSERT INTO {schema}.queue_counters AS qc (queue, counter, shard, value)
    SELECT queue, 'dead', %(shard)s, count(*)
    FROM changed
    WHERE status = 'dead'
    GROUP BY queue
    ON CONFLICT (queue, counter, shard) DO UPDATE SET value = qc.value + EXCLUDED.value
),
woken AS (
    SELECT count(pg_notify(%(channel)s, d.queue)) AS queues
    FROM (SELECT DISTINCT queue
          FROM changed
          WHERE status IN ('enqueued', 'retrying') AND run_at <= now()) AS d
    WHERE %(notify)s
)
-- A plain SELECT in a WITH runs only if the query reads it: the join makes woken run once.
SELECT changed.jid FROM changed CROSS JOIN woken
