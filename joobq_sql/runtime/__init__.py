"""The worker runtime: queues, workers, retries, leases, maintenance, wake-ups."""
