-- Delete dead jobs now, whether or not their dead-letter time is over.
WITH doomed AS (
    SELECT jid
    FROM {schema}.jobs
    WHERE status = 'dead'
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.jobs AS j
USING doomed
WHERE j.jid = doomed.jid
