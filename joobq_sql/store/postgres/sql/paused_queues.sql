SELECT queue FROM {schema}.queue_pauses
