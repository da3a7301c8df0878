-- Completed jobs per queue per minute since the given time, summed over the shards.
SELECT queue, minute, sum(completed)::bigint AS completed
FROM {schema}.queue_throughput
WHERE minute >= date_trunc('minute', now() - make_interval(secs => %(since_s)s))
GROUP BY queue, minute
ORDER BY minute, queue
