SELECT * FROM {schema}.jobs WHERE jid = %(jid)s
