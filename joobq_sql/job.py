"""The Job base class users subclass, and the registry from job_type to class.

A subclass becomes a keyword-only dataclass: its annotated attributes are the job's arguments,
stored as JSON in the `args` column. Class attributes without annotations (`queue`, `retries`,
`expires`, `priority`, `timeout`) are its defaults, as JoobQ's @queue / @retries / @expires are.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import threading
import typing
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self, dataclass_transform
from uuid import UUID

from . import _validation as check
from ._uuid7 import uuid7, uuid7s
from .codec import Codec, FieldError, UndecodableJSON, check_supported, decode
from .codec import _encoder as encoder_for
from .errors import JobDecodeError, JobDefinitionError, UnknownJobTypeError
from .job_binding import enqueuer_for, enqueuer_of_all

#: Names a job's own fields may not use: they are job options or store columns.
RESERVED_FIELD_NAMES = frozenset(
    {
        "jid", "queue", "retries", "max_retries", "expires", "expires_at", "priority",
        "timeout", "job_type", "status", "attempt", "run_at", "delay", "args", "error",
        "connection", "worker_id", "unique_key", "on_duplicate",
    }
)  # fmt: skip


class JobCancelled(Exception):
    """Raised inside a job (by check_cancelled) to stop it after a cancel request."""


class _class_or_instance:  # lower-case: it is used as a decorator, like classmethod
    """A method that binds to the class when called on it, and to the instance otherwise."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.__doc__ = function.__doc__

    def __get__(self, instance: Any, owner: type) -> Callable[..., Any]:
        return functools.partial(self.function, owner if instance is None else instance)


_registry: dict[str, type[Job]] = {}
_registry_lock = threading.Lock()


# Subclasses become keyword-only dataclasses (see __init_subclass__); this tells type checkers.
@dataclass_transform(kw_only_default=True)
class Job:
    """Base class of every job. Subclass it, annotate the arguments, and define ``perform``.

    >>> class SendEmail(Job):
    ...     queue = "mail"
    ...     to: str
    ...     def perform(self) -> None: ...
    """

    #: Queue the job goes to unless the enqueue call names another.
    queue: ClassVar[str] = "default"
    #: Retries after the first failure; the job runs at most 1 + retries times.
    retries: ClassVar[int] = 3
    #: A job not started within this time of its enqueue is never run (None: never expires).
    expires: ClassVar[timedelta | None] = timedelta(days=3)
    #: Higher runs first; jobs of equal priority run in the order they became due.
    priority: ClassVar[int] = 0
    #: Longest a single run may take (None: no limit). Enforced by the runtime.
    timeout: ClassVar[timedelta | None] = None
    #: The tag stored with the job that finds its class again; defaults to the class name.
    job_type: ClassVar[str]
    #: Exceptions not worth retrying: a run that raises one goes straight to dead.
    discard_on: ClassVar[tuple[type[BaseException], ...]] = ()
    #: What enqueueing a duplicate unique job does: "skip" (return the waiting or running
    #: job's jid) or "raise" (DuplicateJobError). See unique_key().
    on_duplicate: ClassVar[str] = "skip"

    _field_types: ClassVar[dict[str, Any] | None] = None
    _decode_plan: ClassVar[tuple[tuple[str, Any, bool], ...] | None] = None
    _encode_plan: ClassVar[tuple[tuple[str, Codec, str], ...] | None] = None

    # Set on every instance: the run it is on (0 before its first run).
    attempt: int
    # Set on first use of `jid` (or by a bulk enqueue, or when decoded from the store).
    _jid: UUID

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = inspect.get_annotations(cls)
        clash = sorted(
            name for name in own if name in RESERVED_FIELD_NAMES and not _is_classvar(own[name])
        )
        if clash:
            raise JobDefinitionError(
                f"{cls.__qualname__} declares fields {clash}, which are reserved for job "
                f"options; rename them (reserved: {sorted(RESERVED_FIELD_NAMES)})"
            )
        dataclasses.dataclass(kw_only=True)(cls)
        _check_class_options(cls)
        if "job_type" not in cls.__dict__:
            cls.job_type = cls.__name__
        try:
            cls.job_type = check.job_type(cls.job_type)  # its NFC form is the stored tag
        except ValueError as exc:
            raise JobDefinitionError(f"{cls.__qualname__}: {exc}") from None
        cls._field_types = None
        try:
            hints = typing.get_type_hints(cls)
        except NameError:
            hints = None  # a forward reference not yet defined: resolved on first use
        if hints is not None:
            cls._resolve_field_types(hints)
        register(cls)

    @classmethod
    def _resolve_field_types(cls, hints: dict[str, Any] | None = None) -> dict[str, Any]:
        if cls._field_types is None:
            hints = hints if hints is not None else typing.get_type_hints(cls)
            types = {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            for name, tp in types.items():
                try:
                    check_supported(tp, f"{cls.__qualname__}.{name}")
                except FieldError as exc:
                    raise JobDefinitionError(str(exc)) from None
            cls._field_types = types
        return cls._field_types

    @classmethod
    def _fields_to_decode(cls) -> tuple[tuple[str, Any, bool], ...]:
        """(name, type, required) of each field, worked out once per class: from_args runs for
        every claimed job, and dataclasses.fields() rebuilds its answer on every call."""
        plan: tuple[tuple[str, Any, bool], ...] | None = cls.__dict__.get("_decode_plan")
        if plan is None:
            types = cls._resolve_field_types()
            plan = tuple(
                (
                    f.name,
                    types[f.name],
                    f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                )
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            )
            cls._decode_plan = plan
        return plan

    def __post_init__(self) -> None:
        self.attempt = 0
        self._cancelled = False

    @property
    def jid(self) -> UUID:
        """The job's id: a time-ordered UUID, made on first use (a job decoded from the store
        gets its stored jid instead, so decoding never spends time making one)."""
        # An attribute, not self.__dict__: reading __dict__ makes the instance a dict of its
        # own (its attributes are otherwise kept inline), one more object per job.
        jid: UUID | None = getattr(self, "_jid", None)
        if jid is None:
            jid = self._jid = uuid7()
        return jid

    @jid.setter
    def jid(self, value: UUID) -> None:
        self._jid = value

    def _request_cancel(self) -> None:
        """Called by the worker when a cancel request for this running job arrives."""
        self._cancelled = True

    # -- unique jobs and cooperative cancel --------------------------------------------------

    def unique_key(self) -> str | None:
        """Override to make jobs unique: while a job of this class with the same key waits or
        runs, enqueueing another is skipped or refused (``on_duplicate``). None: not unique.
        An enqueue call can also pass ``unique_key="..."``."""
        return None

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this running job (``jobs cancel``, the API).
        A long job should check it, or call ``check_cancelled()``, between steps."""
        return self._cancelled

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a cancel was asked for: the job then ends as dead with reason
        "cancelled", and is not retried."""
        if self._cancelled:
            raise JobCancelled(f"{type(self).__qualname__} {self.jid} was cancelled")

    # -- JSON ------------------------------------------------------------------------------

    def to_args(self) -> dict[str, Any]:
        """Return the job's fields as a JSON-ready dict; TypeError names a field that is not."""
        plan = type(self).__dict__.get("_encode_plan")
        if plan is None:
            plan = type(self)._fields_to_encode()
        out = {}
        for name, codec, path in plan:
            try:
                out[name] = codec(getattr(self, name), path)
            except FieldError as exc:
                raise TypeError(f"cannot store job argument {exc}") from None
        return out

    @classmethod
    def _fields_to_encode(cls) -> tuple[tuple[str, Codec, str], ...]:
        """(name, codec, path) of each field, worked out once per class: every enqueue
        encodes its job's fields, and finding a field's codec anew (and its path, for the
        message) cost more than encoding the value."""
        plan = tuple(
            (name, encoder_for(tp), f"{cls.__qualname__}.{name}")
            for name, tp in cls._resolve_field_types().items()
        )
        cls._encode_plan = plan
        return plan

    @classmethod
    def from_args(cls, args: Any, *, jid: UUID | None = None, attempt: int = 0) -> Self:
        """Rebuild a job from its stored args; JobDecodeError names the field that does not fit."""
        if isinstance(args, UndecodableJSON):
            raise JobDecodeError(
                f"args of a {cls.job_type} job are nested too deeply to decode (over ~1,000 levels)"
            )
        if not isinstance(args, dict):
            raise JobDecodeError(
                f"args of a {cls.job_type} job must be a JSON object, got {type(args).__name__}"
            )
        types = cls._resolve_field_types()
        if not types.keys() >= args.keys():
            unknown = sorted(set(args) - set(types))
            raise JobDecodeError(f"args of a {cls.job_type} job have unknown fields {unknown}")
        kwargs = {}
        for name, tp, required in cls._fields_to_decode():
            if name in args:
                try:
                    kwargs[name] = decode(args[name], tp, name)
                except FieldError as exc:
                    raise JobDecodeError(f"args of a {cls.job_type} job: {exc}") from None
            elif required:
                raise JobDecodeError(f"args of a {cls.job_type} job lack the field {name!r}")
        job = cls(**kwargs)
        if jid is not None:
            job.jid = jid
        job.attempt = attempt
        return job

    def to_json(self) -> str:
        """The job as the seed's JSON document (the form Store methods taking JSON accept)."""
        cls = type(self)
        return json.dumps(
            {
                "jid": str(self.jid),
                "job_type": cls.job_type,
                "queue": cls.queue,
                "args": self.to_args(),
                "priority": cls.priority,
                "max_retries": cls.retries,
                "attempt": self.attempt,
            }
        )

    def perform(self) -> Any:
        """Do the job's work. Override it (``def`` or ``async def``)."""
        raise NotImplementedError(f"{type(self).__qualname__} does not define perform()")

    @classmethod
    def backoff(cls, attempt: int) -> float | None:
        """Seconds to wait before retrying after failed run `attempt` (1-based).

        Override to change the schedule; None (the default) means JoobQ's
        min(2^(attempt-1) s, 1 h), with the application's jitter.
        """
        return None

    # -- enqueueing, through the JoobQ application that runs this class ----------------------

    @_class_or_instance
    def enqueue(
        target: type[Job] | Job,
        *,
        connection: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        unique_key: str | None = None,
        **fields: Any,
    ) -> UUID:
        """Enqueue a job, runnable now; return its jid.

        ``MyJob.enqueue(**fields)`` builds the job from `fields`; ``MyJob(...).enqueue()``
        enqueues that instance. With `connection` (your SQLAlchemy Connection or Session) the
        job is written in your transaction: it exists if and only if you commit.
        """
        job = _instance(target, fields)
        return enqueuer_for(type(job)).enqueue(
            job, connection=connection, queue=queue, priority=priority, unique_key=unique_key
        )

    @classmethod
    def delay(
        cls,
        delay: timedelta | float,
        *,
        connection: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        **fields: Any,
    ) -> UUID:
        """Enqueue a job that becomes runnable `delay` (timedelta or seconds) from now, as the
        database clock tells it."""
        seconds = check.seconds(delay, what="delay")
        return enqueuer_for(cls).enqueue(
            cls(**fields), connection=connection, queue=queue, priority=priority, delay=seconds
        )

    @classmethod
    def enqueue_at(
        cls,
        at: datetime,
        *,
        connection: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        **fields: Any,
    ) -> UUID:
        """Enqueue a job that becomes runnable at `at` (a timezone-aware datetime)."""
        run_at = check.aware_datetime(at, what="at")
        return enqueuer_for(cls).enqueue(
            cls(**fields), connection=connection, queue=queue, priority=priority, run_at=run_at
        )

    @classmethod
    def batch_enqueue(
        cls, jobs: Sequence[Job], *, batch_size: int = 1000, connection: Any = None
    ) -> list[UUID]:
        """Enqueue many jobs in one transaction (all or none), `batch_size` rows per statement."""
        for job in jobs:
            if not isinstance(job, Job):
                raise TypeError(f"batch_enqueue takes Job instances, got {type(job).__name__}")
        if not jobs:
            return []
        return enqueuer_of_all(jobs).enqueue_many(
            list(jobs), batch_size=batch_size, connection=connection
        )

    # -- the same, from asyncio: awaitable, never blocking the event loop --------------------

    @_class_or_instance
    async def enqueue_async(
        target: type[Job] | Job,
        *,
        connection: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        unique_key: str | None = None,
        **fields: Any,
    ) -> UUID:
        """``await MyJob.enqueue_async(**fields)``: enqueue() through the application's async
        store. With `connection` (your SQLAlchemy AsyncConnection or AsyncSession) the job is
        written in your transaction: it exists if and only if you commit."""
        job = _instance(target, fields)
        return await enqueuer_for(type(job)).enqueue_async(
            job, connection=connection, queue=queue, priority=priority, unique_key=unique_key
        )

    @classmethod
    async def delay_async(
        cls,
        delay: timedelta | float,
        *,
        connection: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        **fields: Any,
    ) -> UUID:
        """delay() from asyncio."""
        seconds = check.seconds(delay, what="delay")
        return await enqueuer_for(cls).enqueue_async(
            cls(**fields), connection=connection, queue=queue, priority=priority, delay=seconds
        )

    @classmethod
    async def enqueue_at_async(
        cls,
        at: datetime,
        *,
        connection: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        **fields: Any,
    ) -> UUID:
        """enqueue_at() from asyncio."""
        run_at = check.aware_datetime(at, what="at")
        return await enqueuer_for(cls).enqueue_async(
            cls(**fields), connection=connection, queue=queue, priority=priority, run_at=run_at
        )

    @classmethod
    async def batch_enqueue_async(
        cls, jobs: Sequence[Job], *, batch_size: int = 1000, connection: Any = None
    ) -> list[UUID]:
        """batch_enqueue() from asyncio: one transaction, all or none."""
        for job in jobs:
            if not isinstance(job, Job):
                raise TypeError(
                    f"batch_enqueue_async takes Job instances, got {type(job).__name__}"
                )
        if not jobs:
            return []
        return await enqueuer_of_all(jobs).enqueue_many_async(
            list(jobs), batch_size=batch_size, connection=connection
        )

    @classmethod
    def perform_now(cls, **fields: Any) -> Any:
        """Run the job inline, in this thread, without the store; return what perform returns.
        An ``async def perform`` runs to completion on a fresh event loop."""
        job = cls(**fields)
        job.to_args()  # the same checks as an enqueue: a field that cannot be stored fails here
        result = job.perform()
        if inspect.isawaitable(result):
            import asyncio

            return asyncio.run(_awaited(result))
        return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _instance(target: type[Job] | Job, fields: dict[str, Any]) -> Job:
    if isinstance(target, Job):
        if fields:
            raise TypeError(
                f"{type(target).__qualname__}(...).enqueue() takes no job fields; "
                f"got {sorted(fields)}"
            )
        return target
    return target(**fields)


def known_jid(job: Job) -> UUID | None:
    """`job`'s jid if it has one already (made on first use, or given), else None."""
    jid: UUID | None = getattr(job, "_jid", None)
    return jid


def give_jids(jobs: Sequence[Job]) -> list[UUID]:
    """The jids of `jobs`, in order; those without one yet get theirs here, from one read of
    the random source for all of them (a bulk enqueue's jobs mostly have none yet)."""
    jids: list[UUID | None] = [getattr(job, "_jid", None) for job in jobs]
    missing = jids.count(None)
    if missing:
        made = iter(uuid7s(missing))
        for at, jid in enumerate(jids):
            if jid is None:
                jids[at] = jobs[at]._jid = next(made)
    return jids  # type: ignore[return-value]  # none is None any more


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "ClassVar" in text


def _check_class_options(cls: type[Job]) -> None:
    name = cls.__qualname__
    try:
        if "queue" in cls.__dict__:  # its NFC form: the queue it names is the stored one
            cls.queue = check.queue_name(cls.queue, what=f"{name}.queue")
        check.queue_name(cls.queue, what=f"{name}.queue")
        check.non_negative_int(cls.retries, what=f"{name}.retries")
        check.priority(cls.priority)
        if cls.expires is not None:
            check.seconds(cls.expires, what=f"{name}.expires", allow_zero=False)
        if cls.timeout is not None:
            check.seconds(cls.timeout, what=f"{name}.timeout", allow_zero=False)
    except (TypeError, ValueError) as exc:
        raise JobDefinitionError(str(exc)) from None


def register(cls: type[Job]) -> None:
    """Map cls.job_type to cls; a different class claiming the same job_type is an error."""
    with _registry_lock:
        existing = _registry.get(cls.job_type)
        same_definition = existing is not None and (
            existing.__module__,
            existing.__qualname__,
        ) == (cls.__module__, cls.__qualname__)
        if existing is not None and not same_definition:
            raise JobDefinitionError(
                f"job_type {cls.job_type!r} is taken by {existing.__module__}."
                f"{existing.__qualname__}; give {cls.__module__}.{cls.__qualname__} its own "
                "job_type = '...'"
            )
        _registry[cls.job_type] = cls


def job_class(job_type: str) -> type[Job]:
    """Return the class registered for job_type, or raise UnknownJobTypeError."""
    try:
        return _registry[job_type]
    except KeyError:
        raise UnknownJobTypeError(
            f"no Job class registers job_type {job_type!r}; import the module that defines it "
            "in the worker process"
        ) from None


def registered_job_types() -> dict[str, type[Job]]:
    with _registry_lock:
        return dict(_registry)
