"""The scheduler: delayed jobs, recurring jobs and cron schedules (cron.py, intervals.py)."""
