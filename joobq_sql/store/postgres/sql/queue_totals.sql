-- The running totals of each queue: the sum over the counter shards.
SELECT queue, counter, sum(value)::bigint AS value
FROM {schema}.queue_counters
GROUP BY queue, counter
