-- Forget ticks older than the given age, keeping each schedule's latest: the misfire policy
-- reads it to know where the schedule stopped, and enqueue_tick.sql refuses every tick at or
-- before it, so that a pruned tick is never enqueued again.
DELETE FROM {schema}.schedule_ticks AS t
WHERE t.tick < now() - make_interval(secs => %(older_than_s)s)
  AND t.tick < (SELECT max(l.tick) FROM {schema}.schedule_ticks AS l WHERE l.schedule = t.schedule)
