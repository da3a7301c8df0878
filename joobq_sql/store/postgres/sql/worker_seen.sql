-- A worker's heartbeat: it is alive, runs these queues, and beats every heartbeat_interval_s.
INSERT INTO {schema}.workers (worker_id, host, pid, queues, heartbeat_interval_s)
VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s, %(heartbeat_interval_s)s)
ON CONFLICT (worker_id) DO UPDATE
SET last_seen_at = now(),
    queues = EXCLUDED.queues,
    heartbeat_interval_s = EXCLUDED.heartbeat_interval_s
