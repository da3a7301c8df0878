-- Heartbeat: extend the leases a worker still holds. A job it no longer holds (rescued,
-- finished, deleted) is absent from the result, and the worker learns it lost the job.
-- The worker also reports which of them have started: the ones in %(unstarted)s wait in its
-- buffer (started = false), the others run (true). True is sticky within an attempt, as a
-- run cannot un-start. updated_at is left alone: a renewal is not a state change, and the
-- jid-less release orders claims by it.
UPDATE {schema}.jobs
SET lease_expires_at = now() + make_interval(secs => %(lease_s)s),
    started = (started IS TRUE OR NOT (jid = ANY(%(unstarted)s::uuid[])))
WHERE jid = ANY(%(jids)s::uuid[])
  AND status = 'running'
  AND worker_id = %(worker_id)s
RETURNING jid
