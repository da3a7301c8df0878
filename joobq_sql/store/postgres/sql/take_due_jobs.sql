-- fetch_due_jobs with remove: due scheduled/retrying jobs become 'enqueued' in the same
-- statement, at most %(limit)s of them, oldest first. The rest stay due for the next call,
-- and SKIP LOCKED keeps two callers from taking the same job. The caller's clock can only ask
-- for an earlier instant than the database's now(), never a later one.
WITH due AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status IN ('scheduled', 'retrying')
      AND run_at <= LEAST(%(at)s::timestamptz, now())
    ORDER BY run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
taken AS (
    UPDATE {schema}.jobs AS j
    SET status = 'enqueued',
        updated_at = now()
    FROM due
    WHERE j.jid = due.jid
    RETURNING j.*
)
SELECT * FROM taken
ORDER BY run_at, id
