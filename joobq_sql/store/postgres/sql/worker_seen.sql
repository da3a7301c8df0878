-- A worker's heartbeat: it is alive, and runs these queues.
INSERT INTO {schema}.workers (worker_id, host, pid, queues)
VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s)
ON CONFLICT (worker_id) DO UPDATE
SET last_seen_at = now(),
    queues = EXCLUDED.queues
