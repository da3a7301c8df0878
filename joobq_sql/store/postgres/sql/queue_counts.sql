-- What each queue holds now. It scans the jobs table, which only holds live jobs.
SELECT queue,
       count(*) FILTER (WHERE status IN ('enqueued', 'scheduled') AND run_at <= now())
           AS waiting,
       count(*) FILTER (WHERE status IN ('enqueued', 'scheduled') AND run_at > now())
           AS due_later,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'retrying') AS retrying,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       extract(epoch FROM now() - min(run_at) FILTER (
           WHERE status IN ('enqueued', 'scheduled') AND run_at <= now()
       ))::float8 AS oldest_waiting_age
FROM {schema}.jobs
GROUP BY queue
