"""The statements of `joobq-sql doctor`, one per file (read with importlib.resources)."""
