"""Prometheus metrics: the exposition format, the in-process run metrics and the database's."""
