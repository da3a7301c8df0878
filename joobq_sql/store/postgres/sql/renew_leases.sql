-- Heartbeat: extend the leases a worker still holds. A job it no longer holds (rescued,
-- finished, deleted) is absent from the result, and the worker learns it lost the job.
UPDATE {schema}.jobs
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE jid = ANY(%(jids)s::uuid[])
  -- running for this worker (a worker is set only while a job runs). Not status = 'running':
  -- that would let the planner scan the lease index, bloated by every claim since the last
  -- vacuum, instead of looking the jids up by primary key.
  AND worker_id = %(worker_id)s
RETURNING jid
