DELETE FROM {schema}.workers WHERE worker_id = %(worker_id)s
