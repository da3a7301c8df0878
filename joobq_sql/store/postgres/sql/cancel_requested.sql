-- Which of a worker's running jobs have been asked to cancel.
SELECT jid
FROM {schema}.jobs
WHERE jid = ANY(%(jids)s::uuid[])
  AND status = 'running'
  AND worker_id = %(worker_id)s
  AND cancel_requested_at IS NOT NULL
