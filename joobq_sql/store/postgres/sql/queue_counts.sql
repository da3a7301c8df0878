-- What each queue holds now, reading at most %(cap)s rows per part, however many jobs the
-- table holds: stats() is polled by the dashboard, `stats --watch` and /metrics, and a scan of
-- the whole table per poll costs what the backlog costs. One row per part:
--   'due' and 'later': the runnable jobs of one (queue, priority) due now / not yet due, read
--     from jobs_claim_idx in claim order (oldest run_at first);
--   'dead', 'completed': jobs in that state, read from their partial index (purge, prune);
--   'running': every running job (jobs_lease_idx), as many as the workers hold.
-- A part that read %(cap)s rows may hold more: the store estimates those (queue_stats.py).
-- The queues and their priorities are found by a loose index scan of jobs_claim_idx: one
-- probe per (queue, priority), never a read of the jobs between.
WITH RECURSIVE pairs(queue, priority) AS (
    (
        SELECT queue, priority
        FROM {schema}.jobs
        WHERE status IN ('enqueued', 'scheduled', 'retrying')
        ORDER BY queue, priority DESC
        LIMIT 1
    )
    UNION ALL
    SELECT n.queue, n.priority
    FROM pairs AS p
    CROSS JOIN LATERAL (
        (
            -- the next lower priority of the same queue
            SELECT p.queue AS queue, j.priority
            FROM {schema}.jobs AS j
            WHERE j.status IN ('enqueued', 'scheduled', 'retrying')
              AND j.queue = p.queue
              AND j.priority < p.priority
            ORDER BY j.priority DESC
            LIMIT 1
        )
        UNION ALL
        (
            -- else the next queue's highest priority
            SELECT j.queue, j.priority
            FROM {schema}.jobs AS j
            WHERE j.status IN ('enqueued', 'scheduled', 'retrying')
              AND j.queue > p.queue
            ORDER BY j.queue, j.priority DESC
            LIMIT 1
        )
        LIMIT 1
    ) AS n
),
runnable AS (
    SELECT pr.queue, 'due' AS part, s.*
    FROM pairs AS pr
    CROSS JOIN LATERAL (
        SELECT count(*) AS seen,
               count(*) FILTER (WHERE d.status <> 'retrying') AS waiting,
               0::bigint AS due_later,
               count(*) FILTER (WHERE d.status = 'retrying') AS retrying,
               -- the sample is a prefix in run_at order: its oldest waiting job is the oldest
               min(d.run_at) FILTER (WHERE d.status <> 'retrying') AS oldest_run_at
        FROM (
            SELECT status, run_at
            FROM {schema}.jobs
            WHERE status IN ('enqueued', 'scheduled', 'retrying')
              AND queue = pr.queue
              AND priority = pr.priority
              AND run_at <= now()
            ORDER BY run_at, id
            LIMIT %(cap)s
        ) AS d
    ) AS s
    UNION ALL
    SELECT pr.queue, 'later' AS part, s.*
    FROM pairs AS pr
    CROSS JOIN LATERAL (
        SELECT count(*) AS seen,
               0::bigint AS waiting,
               count(*) FILTER (WHERE l.status <> 'retrying') AS due_later,
               count(*) FILTER (WHERE l.status = 'retrying') AS retrying,
               NULL::timestamptz AS oldest_run_at
        FROM (
            SELECT status
            FROM {schema}.jobs
            WHERE status IN ('enqueued', 'scheduled', 'retrying')
              AND queue = pr.queue
              AND priority = pr.priority
              AND run_at > now()
            ORDER BY run_at, id
            LIMIT %(cap)s
        ) AS l
    ) AS s
),
settled AS (
    -- every running job: as many as the workers hold, however long the backlog
    SELECT 'running' AS part, queue
    FROM {schema}.jobs
    WHERE status = 'running'
    UNION ALL
    SELECT 'dead', queue
    FROM (
        SELECT queue FROM {schema}.jobs
        WHERE status = 'dead' ORDER BY dead_expires_at LIMIT %(cap)s
    ) AS d
    UNION ALL
    SELECT 'completed', queue
    FROM (
        SELECT queue FROM {schema}.jobs
        WHERE status = 'completed' ORDER BY finished_at LIMIT %(cap)s
    ) AS c
)
SELECT queue, part, seen, waiting, due_later, retrying,
       0::bigint AS settled,
       extract(epoch FROM now() - oldest_run_at)::float8 AS oldest_waiting_age
FROM runnable
WHERE seen > 0
UNION ALL
SELECT queue, part, count(*) AS seen, 0, 0, 0, count(*) AS settled, NULL
FROM settled
GROUP BY part, queue
