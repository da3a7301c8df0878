"""joobq-sql's benchmarks: `python bench/run.py` (or `python -m bench`) runs them all.

A development tool: it lives in the repository, not in the wheel."""
