DELETE FROM {schema}.jobs WHERE jid = ANY(%(jids)s::uuid[])
