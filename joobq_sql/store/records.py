"""The values that cross the Store boundary: new jobs, stored jobs, completions, failures, stats."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .. import _validation as check
from ..status import JobStatus
from .presence import DEFAULT_HEARTBEAT_INTERVAL
from .storable import storable_text, storable_value

if TYPE_CHECKING:
    from ..job import Job

#: Error entries kept per job; older ones are dropped first.
MAX_ERROR_HISTORY = 20
#: Longest string kept in an error entry (a traceback is cut at its end, not its start).
MAX_ERROR_TEXT = 8000


#: One reusable encoder: json.dumps with options builds a new encoder on every call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _c_encoder() -> Any:
    """_STRICT_JSON's C encoder, made once: JSONEncoder.encode makes a new one on every call,
    which costs a small job's args more than encoding them. It keeps no markers (the record of
    the containers being encoded, which finds cycles), so that threads can share it: a cycle
    is a RecursionError here, and to_json_object then encodes the args again the checked
    way, for the message. None where the json module has no C encoder of this signature."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder = make(
            None, _STRICT_JSON.default, json.encoder.encode_basestring_ascii, None,
            ":", ",", False, False, False,
        )  # fmt: skip
        probe = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {}}
        if "".join(encoder(probe, 0)) != _STRICT_JSON.encode(probe):
            return None
    except Exception:  # a json module that builds its encoder otherwise
        return None
    return encoder


_FAST_JSON = _c_encoder()


def to_json_object(args: Mapping[str, Any], *, what: str = "args") -> str:
    """Serialize a JSON object strictly: NaN, infinity and non-JSON values raise TypeError."""
    if type(args) is not dict and not isinstance(args, Mapping):  # dict: no ABC check
        raise TypeError(f"{what} must be a mapping of field name to value, got {args!r}")
    if not args and type(args) is dict:
        return "{}"  # a job without fields
    try:
        encoded = "".join(_FAST_JSON(args, 0))
    except Exception:  # no fast encoder, or args it refuses: the checked way, for the message
        encoded = _strict_json(args, what)
    # The escapes in the text are a cheap hint; the walk over the values decides.
    if ("\\u0000" in encoded or "\\ud" in encoded) and _has_unstorable_text(args):
        bad = next((k for k, v in args.items() if _has_unstorable_text({k: v})), None)
        where = f" (field {bad!r})" if bad is not None else ""
        raise TypeError(
            f"{what}{where} cannot be stored: PostgreSQL's jsonb holds no U+0000 (NUL) "
            "character and no lone surrogate; remove them or encode the value (e.g. base64)"
        )
    return encoded


def _strict_json(args: Mapping[str, Any], what: str) -> str:
    try:
        return _STRICT_JSON.encode(args)
    except RecursionError:
        raise TypeError(
            f"{what} are nested too deeply to store as JSON; flatten them "
            "(PostgreSQL and Python's JSON decoder stop near 1,000 levels)"
        ) from None
    except (TypeError, ValueError) as exc:
        bad = next((k for k, v in args.items() if not _is_json(v)), None)
        where = f" (field {bad!r})" if bad is not None else ""
        raise TypeError(f"{what}{where} cannot be stored as JSON: {exc}") from None


def _has_unstorable_text(value: Any) -> bool:
    """Whether a string in `value` (keys included) has a NUL or a lone surrogate."""
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, Mapping):
        return any(_has_unstorable_text(k) or _has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_unstorable_text(v) for v in value)
    return False


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job about to be inserted. `args` is already in its JSON form.

    The run time is `run_at` when given, else the database's now() plus `delay` seconds; the
    expiry likewise is `expires_at`, else now() plus `expires_in` (None: never expires).
    """

    jid: UUID
    queue: str
    job_type: str
    args: Mapping[str, Any]
    priority: int = 0
    max_retries: int = 3
    delay: float = 0.0
    run_at: datetime | None = None
    expires_in: float | None = None
    expires_at: datetime | None = None
    #: While a job of this job_type with this key waits or runs, no second one is enqueued.
    unique_key: str | None = None
    #: What a duplicate unique enqueue does: "skip" (return the existing jid) or "raise".
    on_duplicate: str = "skip"
    args_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.jid, UUID):
            raise TypeError(f"jid must be a UUID, got {self.jid!r}")
        # Names are stored in their NFC form: "café" however typed is one queue and one type.
        object.__setattr__(self, "queue", check.queue_name(self.queue))
        object.__setattr__(self, "job_type", check.job_type(self.job_type))
        check.priority(self.priority)
        check.attempt_count(self.max_retries, what="max_retries")
        # Durations are normalized to float seconds: the database receives float8 arrays.
        object.__setattr__(self, "delay", check.seconds(self.delay, what="delay"))
        if self.run_at is not None:
            check.aware_datetime(self.run_at, what="run_at")
        if self.expires_in is not None:
            expires_in = check.seconds(self.expires_in, what="expires_in", allow_zero=False)
            object.__setattr__(self, "expires_in", expires_in)
        if self.expires_at is not None:
            check.aware_datetime(self.expires_at, what="expires_at")
        if self.unique_key is not None:
            object.__setattr__(self, "unique_key", check.unique_key(self.unique_key))
        if self.on_duplicate not in ("skip", "raise"):
            raise ValueError(f"on_duplicate must be 'skip' or 'raise', got {self.on_duplicate!r}")
        object.__setattr__(self, "args_json", to_json_object(self.args))

    @property
    def status(self) -> JobStatus:
        delayed = self.run_at is not None or self.delay > 0
        return JobStatus.SCHEDULED if delayed else JobStatus.ENQUEUED

    def with_job(self, jid: UUID, args: Mapping[str, Any], unique_key: str | None = None) -> NewJob:
        """This row's options for another job: the same queue, type, priority, retries,
        delay and expiry, with `jid`, `args` and `unique_key` of its own (see sibling_maker).
        """
        return self.sibling_maker()(jid, args, unique_key)

    def sibling_maker(self) -> Callable[[UUID, Mapping[str, Any], str | None], NewJob]:
        """A function making rows like this one for other jobs: ``make(jid, args,
        unique_key)`` is this row with that jid, args and unique key.

        This row's options were checked when it was made, so only the new values are checked,
        as NewJob() checks them. A bulk enqueue builds its rows this way, each class's options
        checked once per call: a new NewJob spends most of its time re-checking them, and
        reading them off this row again for every job would cost as much as the rest.
        """
        # Each shared field is stored by its own line, not by a loop over the fields: the
        # loop cost a bulk enqueue's row more than the stores themselves. A field added to
        # NewJob must get its line here (test_with_job_carries_every_field_of_newjob).
        queue, job_type, priority, max_retries = (
            self.queue, self.job_type, self.priority, self.max_retries,
        )  # fmt: skip
        delay, run_at, expires_in, expires_at = (
            self.delay, self.run_at, self.expires_in, self.expires_at,
        )  # fmt: skip
        on_duplicate = self.on_duplicate
        unique = check.unique_key
        encode = to_json_object

        def make(jid: UUID, args: Mapping[str, Any], unique_key: str | None) -> NewJob:
            if type(jid) is not UUID and not isinstance(jid, UUID):
                raise TypeError(f"jid must be a UUID, got {jid!r}")
            if unique_key is not None:
                unique_key = unique(unique_key)
            args_json = encode(args)
            row: NewJob = _new(NewJob)
            _set_queue(row, queue)
            _set_job_type(row, job_type)
            _set_priority(row, priority)
            _set_max_retries(row, max_retries)
            _set_delay(row, delay)
            _set_run_at(row, run_at)
            _set_expires_in(row, expires_in)
            _set_expires_at(row, expires_at)
            _set_on_duplicate(row, on_duplicate)
            _set_jid(row, jid)
            _set_args(row, args)
            _set_args_json(row, args_json)
            _set_unique_key(row, unique_key)
            return row

        return make

    @classmethod
    def from_job(
        cls,
        job: Job,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | timedelta = 0.0,
        run_at: datetime | None = None,
        max_retries: int | None = None,
    ) -> NewJob:
        """Build a NewJob from a Job instance, with its class defaults unless overridden."""
        klass = type(job)
        expires = klass.expires
        return cls(
            jid=job.jid,
            queue=klass.queue if queue is None else queue,
            job_type=klass.job_type,
            args=job.to_args(),
            priority=klass.priority if priority is None else priority,
            max_retries=klass.retries if max_retries is None else max_retries,
            delay=check.seconds(delay, what="delay"),
            run_at=run_at,
            expires_in=None if expires is None else expires.total_seconds(),
        )


def _slot(name: str) -> Any:
    return NewJob.__dict__[name]


#: Slot setters of NewJob's frozen fields, for sibling_maker's rows.
_set_queue = _slot("queue").__set__
_set_job_type = _slot("job_type").__set__
_set_priority = _slot("priority").__set__
_set_max_retries = _slot("max_retries").__set__
_set_delay = _slot("delay").__set__
_set_run_at = _slot("run_at").__set__
_set_expires_in = _slot("expires_in").__set__
_set_expires_at = _slot("expires_at").__set__
_set_on_duplicate = _slot("on_duplicate").__set__
_set_jid = _slot("jid").__set__
_set_args = _slot("args").__set__
_set_args_json = _slot("args_json").__set__
_set_unique_key = _slot("unique_key").__set__
_new = object.__new__


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of the jobs table, as a store returns it."""

    jid: UUID
    queue: str
    job_type: str
    args: Any
    status: JobStatus
    priority: int
    run_at: datetime
    attempt: int
    max_retries: int
    expires_at: datetime | None
    worker_id: str | None
    lease_expires_at: datetime | None
    last_error: dict[str, Any] | None
    errors: list[dict[str, Any]]
    dead_reason: str | None
    dead_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    #: Insertion order (the FIFO tie-break); MemoryStore numbers its jobs the same way.
    seq: int = 0
    #: While this job waits or runs, no other job of its job_type with this key is enqueued.
    unique_key: str | None = None
    #: Set when a cancel was asked for while the job ran (cooperative cancel).
    cancel_requested_at: datetime | None = None
    #: The attempt count at the job's last re-drive; retries are counted from it.
    redrive_attempt: int = 0
    #: Whether the current attempt's run has started, as its worker last reported: None
    #: unknown (counted as started), False claimed but not started, True started.
    started: bool | None = None
    #: When a worker first handed the job back because it could not run it.
    unrunnable_since: datetime | None = None

    @property
    def retries_left(self) -> int:
        """Retries still allowed (JoobQ's `retries`); a running attempt is not a failure yet."""
        runs = self.attempt - self.redrive_attempt
        failures = runs - (1 if self.status is JobStatus.RUNNING else 0)
        return max(self.max_retries - failures, 0)

    def to_document(self) -> dict[str, Any]:
        """The seed's job document: what `to_json` serializes."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "jid": str(self.jid),
            "job_type": self.job_type,
            "queue": self.queue,
            "args": self.args,
            "status": self.status.value,
            "priority": self.priority,
            "attempt": self.attempt,
            "max_retries": self.max_retries,
            "retries": self.retries_left,
            "run_at": iso(self.run_at),
            "expires": iso(self.expires_at),
            "worker_id": self.worker_id,
            "lease_expires_at": iso(self.lease_expires_at),
            "error": self.last_error,
            "errors": self.errors,
            "dead_reason": self.dead_reason,
            "dead_expires_at": iso(self.dead_expires_at),
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_document())

    @property
    def completion(self) -> Completion:
        """The fenced completion of this claimed attempt."""
        return Completion(self.jid, self.attempt, self.worker_id)


@dataclass(frozen=True, slots=True)
class Completion:
    """Finish a running job. With `attempt` and `worker_id` set (the normal case) it is fenced:
    it applies only while the row is still running that attempt for that worker, so a finish
    that arrives after the job was rescued and claimed again changes nothing."""

    jid: UUID
    attempt: int | None = None
    worker_id: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed run, fenced like Completion. One failure makes exactly one state change:

    - `retry_in` seconds given and runs left (attempt <= max_retries): `retrying`, due then;
    - otherwise `dead`, with `dead_reason` (default: "retries exhausted" when a retry was
      asked for but none is left, else "not retried").
    """

    jid: UUID
    attempt: int | None
    worker_id: str | None
    error: Mapping[str, Any]
    retry_in: float | None
    dead_reason: str | None = None

    def __post_init__(self) -> None:
        if self.retry_in is not None:
            # A wait past the longest duration is a wait of that long (a retry due in a
            # thousand years), not an error: a failure must always be recordable.
            retry_in = check.seconds(self.retry_in, what="retry_in", at_most=math.inf)
            object.__setattr__(self, "retry_in", min(retry_in, check.MAX_DURATION_SECONDS))
        object.__setattr__(self, "error", bound_error(self.error))
        if isinstance(self.dead_reason, str):  # often built from the exception's message
            object.__setattr__(self, "dead_reason", storable_text(self.dead_reason))


def bound_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """Keep an error entry small and storable: long strings are cut, non-JSON values become
    their repr, and a NUL or lone surrogate anywhere (keys included) becomes its escape, so
    that details built by any caller (the seed's mark_as_failed takes a user's dict) never
    make the failure's statement fail."""
    if not isinstance(error, Mapping):
        raise TypeError(f"error details must be a mapping, got {error!r}")
    out: dict[str, Any] = {}
    for key, value in error.items():
        if isinstance(value, str):
            value = storable_text(value)
            value = value if len(value) <= MAX_ERROR_TEXT else value[-MAX_ERROR_TEXT:]
        elif isinstance(value, float) and not math.isfinite(value):
            value = repr(value)
        elif not _is_json(value):
            value = storable_text(repr(value)[:MAX_ERROR_TEXT])
        else:
            value = storable_value(value)  # a nested string or key may hold a NUL too
        out[storable_text(str(key))] = value
    return out


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A running Worker, as its heartbeat last reported it."""

    worker_id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    started_at: datetime
    last_seen_at: datetime
    #: Seconds between its heartbeats: it is alive while heard from within a few of them.
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL


COUNTER_NAMES = ("completed", "retried", "dead", "expired", "rescued")


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What a queue holds now, and what it has done since its counters began.

    `waiting`: runnable now. `due_later`: enqueued or scheduled with run_at in the future.
    `retrying`: failed and waiting for their backoff (or rescued). The totals count state
    changes: `completed` jobs finished, `retried` failures rescheduled, `dead` jobs that failed
    for good, `expired` jobs that expired before running, `rescued` leases found expired.
    """

    queue: str
    waiting: int = 0
    due_later: int = 0
    running: int = 0
    retrying: int = 0
    dead: int = 0
    completed: int = 0
    oldest_waiting_age: float | None = None
    totals: Mapping[str, int] = field(default_factory=dict)
    #: Paused queues start no new job until resumed.
    paused: bool = False
    #: True when some counts are estimates: a PostgresStore counts at most 10,000 rows of each
    #: part of a queue exactly, so that stats() costs the same however long the backlog
    #: (store/postgres/queue_stats.py).
    estimated: bool = False

    def __post_init__(self) -> None:
        # Every counter is always present, so readers never need a default.
        object.__setattr__(
            self, "totals", {name: int(self.totals.get(name, 0)) for name in COUNTER_NAMES}
        )

    @property
    def processed(self) -> int:
        """Runs that ended: completed, or failed (retried or dead)."""
        return sum(self.totals.get(name, 0) for name in ("completed", "retried", "dead"))
