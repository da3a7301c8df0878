"""Fault injection for the runtime model test: a PostgresStore whose every call may fail,
before the real call (nothing happened) or after it (its COMMIT happened, the caller sees a lost
connection), or be slow; whose whole worker can be stalled (a paused process); whose presence
write can be refused for a while (a revoked grant); and whose scheduler can be held back.

Decisions come from one random stream per (seed, store name, method): a seed gives each worker
the same sequence of faults on each of its methods, whatever the threads' interleaving.

Also here: the observation the checker reads besides the run log, kept by triggers in the
test's own database (model_history: every change of a job's status, attempt, worker, cancel
flag or budget, with the database's clock; model_ticks: every schedule tick row inserted).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from joobq_sql import PostgresStore

#: Methods of PostgresStore that are not calls to the database.
NOT_CALLS = frozenset({"close"})

OBSERVATION_DDL = """
CREATE TABLE model_history (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    op text NOT NULL,
    jid uuid NOT NULL,
    job_type text NOT NULL,
    old_status text, new_status text,
    old_attempt int, new_attempt int,
    old_redrive int, new_redrive int,
    old_worker text, new_worker text,
    old_lease timestamptz,
    old_cancel timestamptz, new_cancel timestamptz,
    dead_reason text,
    error_type text,
    error_worker text
);
CREATE INDEX model_history_jid ON model_history (jid, id);

CREATE FUNCTION model_record_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO model_history (op, jid, job_type, new_status, new_attempt, new_redrive)
        VALUES ('insert', NEW.jid, NEW.job_type, NEW.status, NEW.attempt, NEW.redrive_attempt);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO model_history (op, jid, job_type, old_status, old_attempt, old_redrive,
                                   old_worker, old_lease, old_cancel)
        VALUES ('delete', OLD.jid, OLD.job_type, OLD.status, OLD.attempt, OLD.redrive_attempt,
                OLD.worker_id, OLD.lease_expires_at, OLD.cancel_requested_at);
    ELSE
        INSERT INTO model_history (op, jid, job_type, old_status, new_status, old_attempt,
                                   new_attempt, old_redrive, new_redrive, old_worker,
                                   new_worker, old_lease, old_cancel, new_cancel, dead_reason,
                                   error_type, error_worker)
        VALUES ('update', NEW.jid, NEW.job_type, OLD.status, NEW.status, OLD.attempt,
                NEW.attempt, OLD.redrive_attempt, NEW.redrive_attempt, OLD.worker_id,
                NEW.worker_id, OLD.lease_expires_at, OLD.cancel_requested_at,
                NEW.cancel_requested_at, NEW.dead_reason,
                CASE WHEN NEW.last_error IS DISTINCT FROM OLD.last_error
                     THEN NEW.last_error ->> 'error_type' END,
                CASE WHEN NEW.last_error IS DISTINCT FROM OLD.last_error
                     THEN NEW.last_error ->> 'worker_id' END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER model_history_insert AFTER INSERT ON {schema}.jobs
    FOR EACH ROW EXECUTE FUNCTION model_record_history();
CREATE TRIGGER model_history_delete AFTER DELETE ON {schema}.jobs
    FOR EACH ROW EXECUTE FUNCTION model_record_history();
CREATE TRIGGER model_history_update AFTER UPDATE ON {schema}.jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.attempt IS DISTINCT FROM NEW.attempt
          OR OLD.worker_id IS DISTINCT FROM NEW.worker_id
          OR OLD.redrive_attempt IS DISTINCT FROM NEW.redrive_attempt
          OR OLD.cancel_requested_at IS DISTINCT FROM NEW.cancel_requested_at)
    EXECUTE FUNCTION model_record_history();

CREATE TABLE model_ticks (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    schedule text NOT NULL,
    tick timestamptz NOT NULL,
    jid uuid NOT NULL
);
CREATE FUNCTION model_record_tick() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO model_ticks (schedule, tick, jid) VALUES (NEW.schedule, NEW.tick, NEW.jid);
    RETURN NULL;
END
$$;
CREATE TRIGGER model_ticks_insert AFTER INSERT ON {schema}.schedule_ticks
    FOR EACH ROW EXECUTE FUNCTION model_record_tick();

-- Slow claims: a claim sometimes holds its rows a few milliseconds longer, so cancels and
-- claims of the same job meet (the random draw is the server's: timing is not seeded anyway).
CREATE FUNCTION model_slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF random() < {slow_claim_rate} THEN
        PERFORM pg_sleep(0.005 + random() * 0.03);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER model_slow_claim BEFORE UPDATE ON {schema}.jobs
    FOR EACH ROW
    WHEN (OLD.status <> 'running' AND NEW.status = 'running')
    EXECUTE FUNCTION model_slow_claim();
"""


def observation_ddl(*, schema: str = "joobq", slow_claim_rate: float = 0.2) -> str:
    return OBSERVATION_DDL.replace("{schema}", schema).replace(
        "{slow_claim_rate}", repr(float(slow_claim_rate))
    )


class InjectedFault(psycopg.OperationalError):
    """A lost connection, injected: before the call, or after its COMMIT."""


class RefusedPresence(psycopg.errors.InsufficientPrivilege):
    """The workers table refused this worker's presence write (as a revoked grant would)."""


@dataclass
class Rates:
    """Probabilities, per store call, of each injected fault."""

    before: float = 0.04  # the call fails before reaching the database
    after: float = 0.03  # the call's COMMIT happens, then the caller sees a lost connection
    slow: float = 0.08  # the call is delayed up to `slow_seconds`, before or after
    slow_seconds: float = 0.06
    #: Per method: (before, after) overriding the defaults.
    per_method: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"claim_jobs": (0.05, 0.08)}
    )


@dataclass(frozen=True)
class TickRecord:
    """A tick a scheduler enqueued, with the clock it read at the start of that pass."""

    store: str
    schedule: str
    tick: datetime
    clock: datetime | None


class Chaos:
    """The faults of one model run, shared by the stores of one process. The test's driver
    changes its state (stalls, outages, calm) while workers run."""

    def __init__(self, seed: int, rates: Rates | None = None) -> None:
        self.seed = seed
        self.rates = rates or Rates()
        self._lock = threading.Lock()
        self._streams: dict[tuple[str, str], random.Random] = {}
        self.calm = False
        self.stalled_until: dict[str, float] = {}  # store name -> monotonic time
        self.presence_refused_until: dict[str | None, float] = {}  # None: every store
        self.scheduler_held_until: dict[str | None, float] = {}  # None: every store
        self.injected: dict[str, int] = {}
        self.ticks: list[TickRecord] = []

    def _stream(self, store: str, method: str) -> random.Random:
        key = (store, method)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = random.Random(f"{self.seed}:{store}:{method}")
        return stream

    def decide(self, store: str, method: str) -> tuple[str, float]:
        """The fault for this call: ("ok" | "before" | "after", seconds of delay), where a
        negative delay is slept after the call, a positive one before it."""
        with self._lock:
            stream = self._stream(store, method)
            draw, slow_draw, delay = stream.random(), stream.random(), stream.random()
            if self.calm:
                return "ok", 0.0
            before, after = self.rates.per_method.get(method, (self.rates.before, self.rates.after))
            kind = "before" if draw < before else "after" if draw < before + after else "ok"
            seconds = 0.0
            if slow_draw < self.rates.slow:
                seconds = delay * self.rates.slow_seconds
                if slow_draw < self.rates.slow / 2:
                    seconds = -seconds
            return kind, seconds

    def count(self, what: str) -> None:
        with self._lock:
            self.injected[what] = self.injected.get(what, 0) + 1

    def stall(self, store: str, seconds: float) -> None:
        """Every call of `store` waits until `seconds` from now: its worker is paused (its job
        threads go on; its heartbeat, acknowledger, fetcher, maintenance and scheduler wait)."""
        with self._lock:
            self.stalled_until[store] = time.monotonic() + seconds

    def refuse_presence(self, store: str | None, seconds: float) -> None:
        """The presence writes of `store` (None: of every store) are refused for `seconds`:
        the role lost its grant on the workers table."""
        with self._lock:
            self.presence_refused_until[store] = time.monotonic() + seconds

    def hold_scheduler(self, store: str | None, seconds: float) -> None:
        """The scheduler thread of `store` (None: of every store) waits `seconds` before its
        next call: a scheduler paused (or a database away) for that long."""
        with self._lock:
            self.scheduler_held_until[store] = time.monotonic() + seconds

    def end(self) -> None:
        """No more faults: stalls, outages and holds end now."""
        with self._lock:
            self.calm = True
            self.stalled_until.clear()
            self.presence_refused_until.clear()
            self.scheduler_held_until.clear()

    def wait_until_free(self, store: str) -> None:
        in_scheduler = threading.current_thread().name == "joobq-scheduler"
        while True:
            with self._lock:
                until = self.stalled_until.get(store, 0.0)
                if in_scheduler:
                    until = max(
                        until,
                        self.scheduler_held_until.get(store, 0.0),
                        self.scheduler_held_until.get(None, 0.0),
                    )
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def presence_refused(self, store: str) -> bool:
        with self._lock:
            until = max(
                self.presence_refused_until.get(store, 0.0),
                self.presence_refused_until.get(None, 0.0),
            )
            return until > time.monotonic()

    def record_tick(self, record: TickRecord) -> None:
        with self._lock:
            self.ticks.append(record)


class FaultyStore(PostgresStore):
    """A PostgresStore under `chaos`: see the module docstring. `name` keys its fault streams
    and its stalls; it is also its connections' application_name (for the connection killer)."""

    def __init__(self, url: str, *, chaos: Chaos, name: str, **options: Any) -> None:
        from sqlalchemy.engine import make_url

        self.chaos = chaos
        self.name = name
        self._last_renew_failed = False
        self._scheduler_clock: datetime | None = None
        url = (
            make_url(url)
            .update_query_dict({"application_name": name})
            .render_as_string(hide_password=False)
        )
        super().__init__(url, **options)

    def _call(self, method: str, real: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        chaos = self.chaos
        chaos.wait_until_free(self.name)
        if method == "worker_seen" and chaos.presence_refused(self.name):
            chaos.count("presence refused")
            raise RefusedPresence("permission denied for table workers (model)")
        kind, delay = chaos.decide(self.name, method)
        if method == "renew_leases" and kind == "before" and self._last_renew_failed:
            # Never two lost renewals in a row: the leases of a worker the test did not stall
            # stay valid, so a rescue of one of them is the runtime's fault, not the test's.
            kind = "ok"
        if delay > 0:
            time.sleep(delay)
        if kind == "before":
            chaos.count(f"{method}: before")
            if method == "renew_leases":
                self._last_renew_failed = True
            raise InjectedFault(f"server closed the connection unexpectedly (model, {method})")
        try:
            result = real(self, *args, **kwargs)
        except Exception:
            if method == "renew_leases":
                self._last_renew_failed = True
            raise
        if method == "renew_leases":
            self._last_renew_failed = False
        self._observe(method, args, kwargs, result)
        if delay < 0:
            time.sleep(-delay)
        if kind == "after":
            chaos.count(f"{method}: after")
            raise InjectedFault(
                f"server closed the connection unexpectedly (model, {method}, after COMMIT)"
            )
        return result

    def _observe(self, method: str, args: Any, kwargs: Any, result: Any) -> None:
        if threading.current_thread().name != "joobq-scheduler":
            return
        if method == "now":
            self._scheduler_clock = result
        elif method == "enqueue_tick" and result:
            schedule = kwargs.get("schedule", args[0] if args else None)
            tick = kwargs.get("tick", args[1] if len(args) > 1 else None)
            self.chaos.record_tick(TickRecord(self.name, schedule, tick, self._scheduler_clock))


def _injecting(method: str, real: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real)
    def call(self: FaultyStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(method, real, args, kwargs)

    return call


# Every method PostgresStore defines itself is a call to the database: wrap them all, so that
# a method added to the store later is under fault injection too.
for _name, _value in list(vars(PostgresStore).items()):
    if callable(_value) and not _name.startswith("_") and _name not in NOT_CALLS:
        setattr(FaultyStore, _name, _injecting(_name, _value))
