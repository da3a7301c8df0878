-- The jobs that hold the given (job_type, unique_key) pairs: the ones a skipped unique enqueue
-- ran into.
SELECT j.job_type, j.unique_key, j.jid
FROM {schema}.jobs AS j
JOIN unnest(%(job_type)s::text[], %(unique_key)s::text[]) AS k(job_type, unique_key)
  ON j.job_type = k.job_type AND j.unique_key = k.unique_key
WHERE j.status IN ('enqueued', 'scheduled', 'retrying', 'running')
