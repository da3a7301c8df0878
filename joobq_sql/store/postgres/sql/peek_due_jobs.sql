-- fetch_due_jobs without remove: look at the due scheduled/retrying jobs, change nothing.
SELECT *
FROM {schema}.jobs
WHERE status IN ('scheduled', 'retrying')
  AND run_at <= LEAST(%(at)s::timestamptz, now())
ORDER BY run_at, id
LIMIT %(limit)s
