-- The latest tick enqueued for each schedule.
SELECT schedule, max(tick) AS tick
FROM {schema}.schedule_ticks
GROUP BY schedule
