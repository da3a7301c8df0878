"""Background maintenance of the jobs table, one duty per module, all run by one Maintainer.

- LeaseRescuer: running jobs whose lease expired go back to their queue (or dead).
- ExpirySweeper: waiting jobs past their expiry go to dead, reason "expired".
- DeadPurger: dead jobs past their dead-letter time are deleted.
- CompletedPruner: kept completed jobs past their retention are deleted.
- HistoryPruner: per-minute throughput and silent workers older than a day are forgotten.
- WorkerPruner: workers silent for ten of their heartbeats (killed, never stopped) are forgotten.
- TableVacuumer: the jobs table is vacuumed when its dead row versions pass a share of it.
"""

from .completed_pruner import CompletedPruner
from .dead_purger import DeadPurger
from .duty import DEFAULT_LIMIT, MAX_PASSES_PER_RUN, Duty, StoreDuty
from .expiry_sweeper import ExpirySweeper
from .history_pruner import HistoryPruner
from .lease_rescuer import LeaseRescuer
from .maintainer import Maintainer
from .table_vacuumer import TableVacuumer
from .worker_pruner import WorkerPruner

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_PASSES_PER_RUN",
    "CompletedPruner",
    "DeadPurger",
    "Duty",
    "ExpirySweeper",
    "HistoryPruner",
    "LeaseRescuer",
    "Maintainer",
    "StoreDuty",
    "TableVacuumer",
    "WorkerPruner",
]
