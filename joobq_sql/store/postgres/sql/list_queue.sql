-- The waiting jobs of a queue in claim order (the order claim_jobs.sql takes them).
SELECT *
FROM {schema}.jobs
WHERE queue = %(queue)s
  AND status IN ('enqueued', 'scheduled', 'retrying')
ORDER BY priority DESC, run_at, id
OFFSET %(offset)s
LIMIT %(limit)s
