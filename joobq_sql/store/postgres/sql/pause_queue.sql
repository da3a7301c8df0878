INSERT INTO {schema}.queue_pauses (queue) VALUES (%(queue)s)
ON CONFLICT (queue) DO NOTHING
RETURNING queue
