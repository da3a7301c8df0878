-- Finish many running jobs in one statement, keeping them as 'completed' until the
-- completed-job retention prunes them. Fenced exactly like complete_jobs_delete.sql.
WITH finished AS (
    UPDATE {schema}.jobs AS j
    SET status = 'completed',
        worker_id = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL,
        finished_at = now(),
        updated_at = now()
    FROM unnest(%(jid)s::uuid[], %(attempt)s::int[], %(worker_id)s::text[])
        AS c(jid, attempt, worker_id)
    WHERE j.jid = c.jid
      AND j.status = 'running'
      AND (c.attempt IS NULL OR j.attempt = c.attempt)
      AND (c.worker_id IS NULL OR j.worker_id = c.worker_id)
    RETURNING j.jid, j.queue
),
counted AS (
    INSERT INTO {schema}.queue_counters AS qc (queue, counter, shard, value)
    SELECT queue, 'completed', %(shard)s, count(*)
    FROM finished
    GROUP BY queue
    ON CONFLICT (queue, counter, shard) DO UPDATE SET value = qc.value + EXCLUDED.value
),
per_minute AS (
    INSERT INTO {schema}.queue_throughput AS qt (queue, minute, shard, completed)
    SELECT queue, date_trunc('minute', now()), %(shard)s, count(*)
    FROM finished
    GROUP BY queue
    ON CONFLICT (queue, minute, shard) DO UPDATE SET completed = qt.completed + EXCLUDED.completed
)
SELECT jid FROM finished
