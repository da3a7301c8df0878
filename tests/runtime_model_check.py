"""The invariants of the runtime model test, checked after a run from what it left behind: the
run log (model_runs), the jobs' history (model_history, kept by triggers), the schedule ticks
inserted (model_ticks), the jobs table, and what the driver recorded (enqueues, cancels and
their reported outcomes, stale finishes it sent, the impairments it caused).

Times are the database's clock, in seconds since the model started.

A lease counts as valid unless the test impaired its worker: stalled it (every store call
waits), stopped it, or killed its process. So a run that overlaps an earlier attempt's run, or
a rescue of an expired lease, is the runtime's fault unless the worker of the earlier run was
impaired around that time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

INFINITY = math.inf

FINAL_INVARIANT = "every job reaches a final state (and the one its story explains)"
LEASE_INVARIANT = "no run overlaps an earlier attempt's run while its lease was valid"
CANCEL_INVARIANT = "a cancelled job never starts again; a job asked to cancel is never retried"
TICK_INVARIANT = "every schedule tick is enqueued at most once (and misfires are skipped)"
ATTEMPT_INVARIANT = "attempt never decreases; a stale finish changes nothing"
ENQUEUE_INVARIANT = "a unique enqueue with on_duplicate='skip' never raises"


@dataclass(frozen=True)
class Impairment:
    """Something the test did to a worker that lets its leases lapse. `pid` matches a worker
    subprocess (its worker ids are host:pid:random). An impairment with `overlaps` False
    explains a rescue but not an overlap (a stopping worker hands back or abandons its
    unstarted jobs at once; its running ones keep their lease for the shutdown grace)."""

    what: str
    start: float
    end: float
    worker_id: str | None = None
    pid: int | None = None
    overlaps: bool = True

    def concerns(self, worker_id: str) -> bool:
        if self.worker_id is not None:
            return worker_id == self.worker_id
        parts = worker_id.split(":")
        return self.pid is not None and len(parts) >= 3 and parts[-2] == str(self.pid)


@dataclass(frozen=True)
class CancelReport:
    jid: UUID
    outcome: str | None
    before: float
    after: float


@dataclass(frozen=True)
class StaleFinish:
    jid: UUID
    attempt: int
    worker_id: str
    what: str
    changed: tuple[Any, ...]


@dataclass
class Expectation:
    """What the driver knows of a job it enqueued."""

    kind: str
    description: str = ""


@dataclass
class DriverRecord:
    """Everything the driver did or saw, for the checker."""

    lease: float
    misfire_grace: float
    jobs: dict[UUID, Expectation] = field(default_factory=dict)
    cancels: list[CancelReport] = field(default_factory=list)
    stale_finishes: list[StaleFinish] = field(default_factory=list)
    enqueue_errors: list[str] = field(default_factory=list)
    impairments: list[Impairment] = field(default_factory=list)
    expired_leases_seen: dict[UUID, tuple[str, float]] = field(default_factory=dict)
    tick_records: list[Any] = field(default_factory=list)  # runtime_model_faults.TickRecord
    skip_schedules: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    run_id: UUID
    jid: UUID
    attempt: int
    worker_id: str
    kind: str
    pid: int
    start: float
    end: float  # INFINITY: never ended (its process was killed, or it still runs)
    outcome: str | None

    def describe(self) -> str:
        end = "still running / killed" if self.end == INFINITY else f"{self.end:.3f}"
        return (
            f"attempt {self.attempt} by {self.worker_id} [{self.start:.3f} .. {end}] "
            f"-> {self.outcome}"
        )


@dataclass(frozen=True)
class Change:
    id: int
    at: float
    op: str
    jid: UUID
    job_type: str
    old_status: str | None
    new_status: str | None
    old_attempt: int | None
    new_attempt: int | None
    old_redrive: int | None
    new_redrive: int | None
    old_worker: str | None
    new_worker: str | None
    old_lease: float | None
    old_cancel: bool
    new_cancel: bool
    dead_reason: str | None
    error_type: str | None
    error_worker: str | None

    def describe(self) -> str:
        if self.op == "insert":
            return f"{self.at:.3f} insert {self.new_status} attempt {self.new_attempt}"
        if self.op == "delete":
            return (
                f"{self.at:.3f} delete {self.old_status} attempt {self.old_attempt} "
                f"worker {self.old_worker}"
            )
        parts = [f"{self.at:.3f} {self.old_status}->{self.new_status}"]
        parts.append(f"attempt {self.old_attempt}->{self.new_attempt}")
        if self.old_redrive != self.new_redrive:
            parts.append(f"redrive {self.old_redrive}->{self.new_redrive}")
        parts.append(f"worker {self.old_worker}->{self.new_worker}")
        if self.old_cancel != self.new_cancel:
            parts.append(f"cancel flag {self.old_cancel}->{self.new_cancel}")
        if self.error_type:
            parts.append(f"error {self.error_type}")
        if self.dead_reason and self.new_status == "dead":
            parts.append(f"dead: {self.dead_reason[:80]}")
        return " ".join(parts)


@dataclass(frozen=True)
class Violation:
    invariant: str
    jid: UUID | None
    text: str


@dataclass
class Observed:
    runs: dict[UUID, list[Run]]
    history: dict[UUID, list[Change]]
    ticks: list[tuple[str, Any, UUID, float]]
    final: dict[UUID, dict[str, Any]]


def epoch(column: str) -> str:
    """`column` in seconds since the model's start (the %(origin)s parameter)."""
    return f"(extract(epoch FROM {column})::float8 - %(origin)s)"


def observe(conn: psycopg.Connection[Any], origin: float, schema: str = "joobq") -> Observed:
    """What the run left in the database; times in seconds since `origin` (epoch seconds)."""
    at = {"origin": origin}
    runs: dict[UUID, list[Run]] = defaultdict(list)
    for row in conn.execute(
        "SELECT run_id, jid, attempt, worker_id, kind, pid, "
        f"{epoch('started_at')}, {epoch('ended_at')}, outcome FROM model_runs",
        at,
    ):
        run_id, jid, attempt, worker_id, kind, pid, start, end, outcome = row
        end = INFINITY if end is None else end
        runs[jid].append(Run(run_id, jid, attempt, worker_id, kind, pid, start, end, outcome))
    for jid_runs in runs.values():
        jid_runs.sort(key=lambda r: (r.attempt, r.start))
    history: dict[UUID, list[Change]] = defaultdict(list)
    for row in conn.execute(
        f"SELECT id, {epoch('at')}, op, jid, job_type, old_status, new_status, old_attempt, "
        f"new_attempt, old_redrive, new_redrive, old_worker, new_worker, {epoch('old_lease')}, "
        "old_cancel IS NOT NULL, new_cancel IS NOT NULL, dead_reason, error_type, error_worker "
        "FROM model_history ORDER BY id",
        at,
    ):
        change = Change(*row)
        history[change.jid].append(change)
    ticks = [
        (schedule, tick, jid, at)
        for schedule, tick, jid, at in conn.execute(
            f"SELECT schedule, tick, jid, {epoch('at')} FROM model_ticks ORDER BY id", at
        )
    ]
    columns = ("jid", "status", "attempt", "worker_id", "dead_reason", "job_type")
    final = {
        row[0]: dict(zip(columns, row, strict=True))
        for row in conn.execute(
            f"SELECT jid, status, attempt, worker_id, dead_reason, job_type FROM {schema}.jobs"
        )
    }
    return Observed(runs, history, ticks, final)


class Checker:
    def __init__(self, observed: Observed, record: DriverRecord) -> None:
        self.o = observed
        self.r = record
        self.violations: list[Violation] = []

    def flag(self, invariant: str, jid: UUID | None, text: str) -> None:
        self.violations.append(Violation(invariant, jid, text))

    def impaired(self, worker_id: str, start: float, end: float, *, overlap: bool) -> bool:
        """Whether the test impaired `worker_id` at some moment in [start, end]."""
        return any(
            i.concerns(worker_id) and i.start <= end and i.end >= start
            for i in self.r.impairments
            if i.overlaps or not overlap
        )

    def check(self) -> list[Violation]:
        self.check_final_states()
        self.check_overlaps()
        self.check_rescues()
        self.check_cancels()
        self.check_ticks()
        self.check_attempts()
        for text in self.r.enqueue_errors:
            self.flag(ENQUEUE_INVARIANT, None, text)
        return self.violations

    # -- every job reaches a final state ---------------------------------------------------

    def known_jobs(self) -> dict[UUID, Expectation]:
        known = dict(self.r.jobs)
        for _schedule, _tick, jid, _at in self.o.ticks:
            known.setdefault(jid, Expectation("tick"))
        return known

    def check_final_states(self) -> None:
        for jid, (worker, seconds) in self.r.expired_leases_seen.items():
            self.flag(
                FINAL_INVARIANT,
                jid,
                f"stayed running {seconds:.1f}s past its lease (worker {worker}) unrescued",
            )
        cancelled = {c.jid for c in self.r.cancels}
        for jid, expect in self.known_jobs().items():
            row = self.o.final.get(jid)
            changes = self.o.history.get(jid, [])
            runs = self.o.runs.get(jid, [])
            if row is not None and row["status"] != "dead":
                self.flag(
                    FINAL_INVARIANT,
                    jid,
                    f"{expect.kind} job still {row['status']} (attempt {row['attempt']}, "
                    f"worker {row['worker_id']}) when the model ended",
                )
                continue
            if row is None:
                deleted = [c for c in changes if c.op == "delete"]
                if not deleted:
                    self.flag(FINAL_INVARIANT, jid, f"{expect.kind} job vanished without a trace")
                    continue
                last = deleted[-1]
                if last.old_status != "running":
                    self.flag(FINAL_INVARIANT, jid, f"deleted while {last.old_status}")
                    continue
                if expect.kind == "hostile":
                    continue
                succeeded = [
                    r
                    for r in runs
                    if r.attempt == last.old_attempt
                    and r.worker_id == last.old_worker
                    and r.outcome == "ok"
                ]
                if not succeeded:
                    self.flag(
                        FINAL_INVARIANT,
                        jid,
                        f"{expect.kind} job completed as attempt {last.old_attempt} of "
                        f"{last.old_worker}, but that run did not succeed (a stale or foreign "
                        "finish, or a job completed without running)",
                    )
                continue
            self._check_dead(jid, expect, row, runs, jid in cancelled)

    def _check_dead(
        self,
        jid: UUID,
        expect: Expectation,
        row: dict[str, Any],
        runs: list[Run],
        cancel_issued: bool,
    ) -> None:
        reason = row["dead_reason"] or ""
        if expect.kind == "hostile":
            return
        if reason == "cancelled":
            if not cancel_issued:
                self.flag(FINAL_INVARIANT, jid, "dead as cancelled, but nobody cancelled it")
            return
        if reason.startswith("lease expired"):
            return  # each rescue is checked on its own (check_rescues)
        if reason.startswith("expired"):
            if runs:
                self.flag(
                    FINAL_INVARIANT,
                    jid,
                    f"{expect.kind} job dead as {reason!r} after it had started "
                    f"({len(runs)} runs): expiry applies to jobs not started in time",
                )
            return
        if reason.startswith("unrunnable"):
            self.flag(
                FINAL_INVARIANT,
                jid,
                f"{expect.kind} job dead as {reason[:120]!r} although a worker that runs it "
                "was started during the model",
            )
            return
        if expect.kind == "doomed":
            return
        self.flag(
            FINAL_INVARIANT,
            jid,
            f"{expect.kind} job ({expect.description}) should have completed, is dead: "
            f"{reason[:160]!r}",
        )

    # -- one run at a time -------------------------------------------------------------------

    def check_overlaps(self) -> None:
        lease = self.r.lease
        for jid, runs in self.o.runs.items():
            for i, first in enumerate(runs):
                for second in runs[i + 1 :]:
                    if not (second.start < first.end and first.start < second.end):
                        continue
                    window_end = max(first.start, second.start)
                    if self.impaired(
                        first.worker_id, first.start - 2 * lease, window_end, overlap=True
                    ):
                        continue
                    self.flag(
                        LEASE_INVARIANT,
                        jid,
                        f"{first.kind} job: {second.describe()} overlaps {first.describe()}, "
                        f"whose worker the test did not impair",
                    )
                    break

    def check_rescues(self) -> None:
        """A lease only expires if its worker was impaired: otherwise its heartbeat should
        have renewed it (and the job it held was dropped or its renewal blocked)."""
        lease = self.r.lease
        for jid, changes in self.o.history.items():
            for c in changes:
                rescued = (
                    c.op == "update"
                    and c.old_status == "running"
                    and c.new_worker is None
                    and (c.error_type or "").startswith("lease_expired")
                )
                if not rescued or c.old_worker is None:
                    continue
                expiry = c.old_lease if c.old_lease is not None else c.at
                if self.impaired(c.old_worker, expiry - lease - 1.0, expiry, overlap=False):
                    continue
                self.flag(
                    LEASE_INVARIANT,
                    jid,
                    f"the lease of attempt {c.old_attempt} held by {c.old_worker} expired "
                    f"(rescued at {c.at:.3f} as {c.error_type}, then {c.new_status}), but the "
                    "test did not impair that worker: its heartbeat stopped renewing it",
                )

    # -- cancels -------------------------------------------------------------------------------

    def check_cancels(self) -> None:
        for report in self.r.cancels:
            changes = self.o.history.get(report.jid, [])
            runs = self.o.runs.get(report.jid, [])
            if report.outcome == "cancelled":
                dead = [
                    c for c in changes if c.new_status == "dead" and c.dead_reason == "cancelled"
                ]
                if not dead:
                    self.flag(
                        CANCEL_INVARIANT,
                        report.jid,
                        "cancel reported 'cancelled', but the job never became dead/cancelled",
                    )
                    continue
                at = dead[0].at
                later = [r for r in runs if r.start > at]
                if later:
                    self.flag(
                        CANCEL_INVARIANT,
                        report.jid,
                        f"cancelled at {at:.3f}, then started: {later[0].describe()}",
                    )
                row = self.o.final.get(report.jid)
                if row is None or row["status"] != "dead" or row["dead_reason"] != "cancelled":
                    state = "completed" if row is None else f"{row['status']} {row['dead_reason']}"
                    self.flag(
                        CANCEL_INVARIANT,
                        report.jid,
                        f"reported 'cancelled' but ended {state}",
                    )
            elif report.outcome is None:
                final_at = next(
                    (c.at for c in changes if c.op == "delete" or c.new_status == "dead"),
                    None,
                )
                if final_at is None or final_at > report.after:
                    finished = "never" if final_at is None else f"at {final_at:.3f}"
                    self.flag(
                        CANCEL_INVARIANT,
                        report.jid,
                        f"cancel at [{report.before:.3f}, {report.after:.3f}] reported nothing "
                        "(neither cancelled nor requested) for a job that was not finished "
                        f"(it finished {finished})",
                    )
        for jid, changes in self.o.history.items():
            requested = [c for c in changes if c.new_cancel and not c.old_cancel]
            if not requested:
                continue
            attempt = requested[0].new_attempt or 0
            retried = [r for r in self.o.runs.get(jid, []) if r.attempt > attempt]
            if retried:
                self.flag(
                    CANCEL_INVARIANT,
                    jid,
                    f"cancel requested during attempt {attempt} (at {requested[0].at:.3f}), "
                    f"then retried: {retried[0].describe()}",
                )

    # -- schedules -------------------------------------------------------------------------

    def check_ticks(self) -> None:
        seen: dict[tuple[str, Any], list[float]] = defaultdict(list)
        for schedule, tick, _jid, at in self.o.ticks:
            seen[(schedule, tick)].append(at)
        for (schedule, tick), times in seen.items():
            if len(times) > 1:
                self.flag(
                    TICK_INVARIANT,
                    None,
                    f"tick {tick.isoformat()} of {schedule!r} enqueued {len(times)} times "
                    f"(at {', '.join(f'{t:.3f}' for t in times)})",
                )
        late = [
            t
            for t in self.r.tick_records
            if t.schedule in self.r.skip_schedules
            and t.clock is not None
            and (t.clock - t.tick).total_seconds() > self.r.misfire_grace + 0.2
        ]
        if late:
            worst = max(late, key=lambda t: (t.clock - t.tick).total_seconds())
            self.flag(
                TICK_INVARIANT,
                None,
                f"{len(late)} ticks of misfire='skip' schedules were enqueued more than the "
                f"grace ({self.r.misfire_grace:g}s) after their time, the latest "
                f"{(worst.clock - worst.tick).total_seconds():.1f}s late (by {worst.store})",
            )

    # -- fencing -------------------------------------------------------------------------------

    def check_attempts(self) -> None:
        for jid, changes in self.o.history.items():
            for c in changes:
                if (
                    c.op == "update"
                    and c.old_attempt is not None
                    and c.new_attempt is not None
                    and c.new_attempt < c.old_attempt
                ):
                    self.flag(
                        ATTEMPT_INVARIANT,
                        jid,
                        f"attempt went down {c.old_attempt} -> {c.new_attempt}: {c.describe()}",
                    )
                    break
        for stale in self.r.stale_finishes:
            if stale.changed:
                self.flag(
                    ATTEMPT_INVARIANT,
                    stale.jid,
                    f"a stale {stale.what} (attempt {stale.attempt}, worker {stale.worker_id}) "
                    f"changed the job: {stale.changed}",
                )


def explain(observed: Observed, jids: Iterable[UUID], limit: int | None = 8) -> str:
    """The runs and history of some jobs, for a failure message."""
    lines: list[str] = []
    for jid in list(dict.fromkeys(jids))[:limit]:
        lines.append(f"  job {jid}:")
        for run in observed.runs.get(jid, []):
            lines.append(f"    run     {run.describe()}")
        for change in observed.history.get(jid, []):
            lines.append(f"    history {change.describe()}")
    return "\n".join(lines)
