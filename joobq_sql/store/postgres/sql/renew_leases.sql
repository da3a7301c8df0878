-- Heartbeat: extend the leases a worker still holds. A job it no longer holds (rescued,
-- finished, deleted) is absent from the result, and the worker learns it lost the job.
UPDATE {schema}.jobs
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s)
WHERE jid = ANY(%(jids)s::uuid[])
  AND status = 'running'
  AND worker_id = %(worker_id)s
RETURNING jid
