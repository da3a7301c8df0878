-- Bulk enqueue: stream many new jobs with COPY, far cheaper than INSERT per row. Run times and
-- expiries arrive as absolute values computed from this transaction's now() (read first in
-- the same transaction), so the database clock still decides. Used only for batches without
-- unique keys: COPY has no ON CONFLICT.
COPY {schema}.jobs (jid, queue, job_type, args, status, priority, run_at, max_retries, expires_at)
FROM STDIN
