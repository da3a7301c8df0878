-- Which of a worker's running jobs have been asked to cancel.
SELECT jid
FROM {schema}.jobs
WHERE jid = ANY(%(jids)s::uuid[])
  -- running for this worker (a worker is set only while a job runs). Not status = 'running':
  -- that would let the planner scan the lease index, bloated by every claim since the last
  -- vacuum, instead of looking the jids up by primary key.
  AND worker_id = %(worker_id)s
  AND cancel_requested_at IS NOT NULL
