-- Finish many running jobs in one statement, deleting them (no completed-job retention).
-- Fenced: a row is finished only while it still runs the same attempt for the same worker,
-- so the late finish of a rescued attempt is a no-op. NULL attempt/worker means "unfenced".
WITH finished AS (
    DELETE FROM {schema}.jobs AS j
    USING unnest(%(jid)s::uuid[], %(attempt)s::int[], %(worker_id)s::text[])
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
