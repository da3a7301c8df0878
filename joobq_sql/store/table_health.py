"""What a store can tell of its hot table, for the runtime's own VACUUM of it (the
maintenance duty TableVacuumer). A store on PostgreSQL reads it from the server's statistics
(store/postgres/hot_table.py); a store without tables has none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TableHealth:
    """One table as the server's statistics see it. `since_vacuum_s` is None when it was never
    vacuumed (nor autovacuumed) since its statistics began."""

    table: str
    live_rows: int
    dead_rows: int
    since_vacuum_s: float | None
    vacuuming: bool
    may_vacuum: bool

    @property
    def dead_share(self) -> float:
        """Dead row versions as a share of all row versions (0 for an empty table)."""
        total = self.live_rows + self.dead_rows
        return self.dead_rows / total if total else 0.0


class VacuumRefusedError(Exception):
    """The server would not let this role VACUUM the table (it skipped it with a warning, or
    refused). The message is the server's."""
