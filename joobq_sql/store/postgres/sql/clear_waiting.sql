-- clear_queue: delete the waiting jobs; running jobs finish, dead jobs stay for inspection.
DELETE FROM {schema}.jobs
WHERE queue = %(queue)s
  AND status IN ('enqueued', 'scheduled', 'retrying')
