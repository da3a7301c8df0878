DELETE FROM {schema}.queue_pauses WHERE queue = %(queue)s RETURNING queue
