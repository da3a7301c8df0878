-- The jobs table's live rows as the server's statistics count them (kept current by every
-- insert and delete, a second or so behind): what queue_stats() estimates from when a part of
-- queue_counts.sql read as many rows as it may.
SELECT coalesce(
    (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = '{schema}.jobs'::regclass), 0
) AS live_rows
