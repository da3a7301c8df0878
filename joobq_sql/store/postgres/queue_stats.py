"""stats() at the cost of the queues, not of the jobs.

queue_counts.sql reads at most STATS_EXACT_LIMIT rows of each part of the table (the due and
the not-yet-due jobs of one queue and priority; all dead, all kept completed jobs) and every
running job (as many as the workers hold), so a poll of stats() costs about the same with a
thousand jobs waiting or ten million. A part
with fewer rows than that is counted exactly; one that reached it is estimated: the rows no
part read (the table's live-row count, from the server's statistics, less every row read) are
shared out equally among the parts that reached the limit, and within a part in the
proportions of what it read (an equal share is right for the usual case, one long backlog;
with several, it is a rough split). Those queues' QueueStats say `estimated=True`. This is what Oban
Met does above its estimate limit, with a live count in place of the planner's guess, so a
drained queue reads as drained at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..records import QueueStats

#: Rows one part of queue_counts.sql reads at most: below it, counts are exact.
STATS_EXACT_LIMIT = 10_000

_RUNNABLE_FIELDS = ("waiting", "due_later", "retrying")
_SETTLED_PARTS = ("running", "dead", "completed")
#: Parts counted whole: running jobs are as many as the workers hold, not a backlog.
_UNCAPPED_PARTS = frozenset({"running"})
#: The QueueStats counts an estimated queue may have estimated (every one but running): what
#: the CLI, the dashboard and /metrics mark as estimates.
ESTIMABLE_COUNTS = frozenset({*_RUNNABLE_FIELDS, *_SETTLED_PARTS} - _UNCAPPED_PARTS)


def build_queue_stats(
    rows: Iterable[Mapping[str, Any]],
    *,
    totals: Mapping[str, Mapping[str, int]],
    paused: set[str],
    live_rows: Callable[[], int],
    cap: int = STATS_EXACT_LIMIT,
) -> dict[str, QueueStats]:
    """QueueStats per queue from queue_counts.sql's `rows` (read with `cap`), the counter
    `totals` and the `paused` queues. `live_rows` is called only when a part reached `cap`."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    oldest: dict[str, float] = {}
    capped_runnable: list[Mapping[str, Any]] = []
    settled: dict[str, dict[str, int]] = defaultdict(dict)  # part -> queue -> rows
    seen_in_all = 0
    for row in rows:
        queue, part, seen = row["queue"], row["part"], int(row["seen"])
        seen_in_all += seen
        if part in _SETTLED_PARTS:
            settled[part][queue] = seen
            counts[queue][part] += seen
            continue
        for name in _RUNNABLE_FIELDS:
            counts[queue][name] += int(row[name])
        age = row["oldest_waiting_age"]
        if age is not None:
            oldest[queue] = max(oldest.get(queue, age), age)
        if seen >= cap:
            capped_runnable.append(row)
    capped_settled = [
        part
        for part, per_queue in settled.items()
        if part not in _UNCAPPED_PARTS and sum(per_queue.values()) >= cap
    ]
    estimated: set[str] = set()
    parts = len(capped_runnable) + len(capped_settled)
    if parts:
        share = max(live_rows() - seen_in_all, 0) / parts
        for row in capped_runnable:
            queue, seen = row["queue"], int(row["seen"])
            estimated.add(queue)
            for name in _RUNNABLE_FIELDS:
                counts[queue][name] += share * int(row[name]) / seen
        for part in capped_settled:
            per_queue = settled[part]
            read = sum(per_queue.values())
            for queue, seen in per_queue.items():
                estimated.add(queue)
                counts[queue][part] += share * seen / read
    names = counts.keys() | totals.keys() | paused
    return {
        queue: QueueStats(
            queue=queue,
            **{name: round(value) for name, value in counts.get(queue, {}).items()},
            oldest_waiting_age=oldest.get(queue),
            totals=totals.get(queue, {}),
            paused=queue in paused,
            estimated=queue in estimated,
        )
        for queue in sorted(names)
    }
