"""The Job base class users subclass, and the registry from job_type to class.

A subclass becomes a keyword-only dataclass: its annotated attributes are the job's arguments,
stored as JSON in the `args` column. Class attributes without annotations (`queue`, `retries`,
`expires`, `priority`, `timeout`) are its defaults, as JoobQ's @queue / @retries / @expires are.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
import typing
from datetime import timedelta
from typing import Any, ClassVar, Self
from uuid import UUID

from . import _validation as check
from ._uuid7 import uuid7
from .codec import FieldError, check_supported, decode, encode
from .errors import JobDecodeError, JobDefinitionError, UnknownJobTypeError

#: Names a job's own fields may not use: they are job options or store columns.
RESERVED_FIELD_NAMES = frozenset(
    {
        "jid", "queue", "retries", "max_retries", "expires", "expires_at", "priority",
        "timeout", "job_type", "status", "attempt", "run_at", "delay", "args", "error",
        "connection", "worker_id",
    }
)  # fmt: skip

_registry: dict[str, type[Job]] = {}
_registry_lock = threading.Lock()


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

    _field_types: ClassVar[dict[str, Any]]

    # Set on every instance: the job's id, and the run it is on (0 before its first run).
    jid: UUID
    attempt: int

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
        check.job_type(cls.job_type)
        cls._field_types = {}
        try:
            hints = typing.get_type_hints(cls)
        except NameError:
            hints = None  # a forward reference not yet defined: resolved on first use
        if hints is not None:
            cls._resolve_field_types(hints)
        register(cls)

    @classmethod
    def _resolve_field_types(cls, hints: dict[str, Any] | None = None) -> dict[str, Any]:
        if not cls._field_types:
            hints = hints if hints is not None else typing.get_type_hints(cls)
            types = {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            for name, tp in types.items():
                try:
                    check_supported(tp, f"{cls.__qualname__}.{name}")
                except FieldError as exc:
                    raise JobDefinitionError(str(exc)) from None
            cls._field_types = types
        return cls._field_types

    def __post_init__(self) -> None:
        self.jid = uuid7()
        self.attempt = 0

    # -- JSON ------------------------------------------------------------------------------

    def to_args(self) -> dict[str, Any]:
        """Return the job's fields as a JSON-ready dict; TypeError names a field that is not."""
        cls = type(self)
        out = {}
        for name, tp in cls._resolve_field_types().items():
            try:
                out[name] = encode(getattr(self, name), tp, f"{cls.__qualname__}.{name}")
            except FieldError as exc:
                raise TypeError(f"cannot store job argument {exc}") from None
        return out

    @classmethod
    def from_args(cls, args: Any, *, jid: UUID | None = None, attempt: int = 0) -> Self:
        """Rebuild a job from its stored args; JobDecodeError names the field that does not fit."""
        if not isinstance(args, dict):
            raise JobDecodeError(
                f"args of a {cls.job_type} job must be a JSON object, got {type(args).__name__}"
            )
        types = cls._resolve_field_types()
        unknown = sorted(set(args) - set(types))
        if unknown:
            raise JobDecodeError(f"args of a {cls.job_type} job have unknown fields {unknown}")
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in args:
                try:
                    kwargs[f.name] = decode(args[f.name], types[f.name], f.name)
                except FieldError as exc:
                    raise JobDecodeError(f"args of a {cls.job_type} job: {exc}") from None
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise JobDecodeError(f"args of a {cls.job_type} job lack the field {f.name!r}")
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


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "ClassVar" in text


def _check_class_options(cls: type[Job]) -> None:
    name = cls.__qualname__
    try:
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
