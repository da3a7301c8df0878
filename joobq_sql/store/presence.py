"""When a worker counts as alive, and when its row in the workers table is forgotten.

Each worker writes its row with every heartbeat, together with its heartbeat interval, so that
a reader with no knowledge of the worker's settings (doctor, the dashboard, another
application) can tell a live worker from a dead one: a fixed window is too long for a worker
that beats every 0.3 s and too short for one that beats every five minutes. Both stores apply
these numbers the same way.
"""

from __future__ import annotations

#: A worker is alive while it was heard from within this many of its heartbeat intervals: two
#: missed beats are a slow database or a long pause, three are a dead worker.
ALIVE_HEARTBEATS = 3
#: ... and never less than this many seconds, so a tiny interval does not flicker.
ALIVE_FLOOR_SECONDS = 1.0
#: A worker silent for this many heartbeat intervals is forgotten (a SIGKILLed worker never
#: removes its own row), so the table holds live workers and the recently dead only.
PRUNE_HEARTBEATS = 10
#: ... and never sooner than this many seconds.
PRUNE_FLOOR_SECONDS = 5.0
#: The interval of a row written without one (e.g. by a joobq-sql older than migration 0005):
#: three of it are the minute that was the fixed window before.
DEFAULT_HEARTBEAT_INTERVAL = 20.0


def alive_window(heartbeat_interval: float) -> float:
    """Seconds a worker with this heartbeat interval counts as alive after it was heard from."""
    return max(ALIVE_HEARTBEATS * heartbeat_interval, ALIVE_FLOOR_SECONDS)


def prune_after(heartbeat_interval: float) -> float:
    """Seconds of silence after which a worker's row is forgotten."""
    return max(PRUNE_HEARTBEATS * heartbeat_interval, PRUNE_FLOOR_SECONDS)
