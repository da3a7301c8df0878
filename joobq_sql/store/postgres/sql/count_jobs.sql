SELECT count(*)
FROM {schema}.jobs
WHERE queue = %(queue)s
  AND status = %(status)s
  AND (NOT %(due_only)s OR run_at <= now())
