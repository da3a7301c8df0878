"""JoobQ: the application object. It holds the store, the queues and the settings, enqueues jobs
for the Job classes it runs, and runs their workers."""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from . import _validation as check
from . import job_binding
from .errors import ConfigurationError
from .job import Job, give_jids
from .runtime.error_monitor import AlertEvent, ErrorMonitor
from .runtime.worker import QueueDefinition as QueueDefinition
from .scheduler.schedules import Schedule
from .settings import DEFAULT_WORKERS, QueueConfig, Settings
from .store.base import Store
from .store.records import NewJob, QueueStats

if TYPE_CHECKING:
    from .runtime.middleware import Middleware
    from .runtime.worker import Worker
    from .store.postgres.async_store import AsyncStore


class JoobQ:
    """The application: configuration, queues, enqueueing, workers.

    >>> app = JoobQ(store=PostgresStore("postgresql+psycopg://..."))  # doctest: +SKIP
    >>> app.queue("mail", workers=10, jobs=[SendEmail])                # doctest: +SKIP
    >>> app.run()                                                      # doctest: +SKIP

    Settings come from the defaults, then the TOML file (`config_file`, else $JOOBQ_CONFIG),
    then JOOBQ_* environment variables, then the keyword arguments given here; a bad value
    raises ConfigurationError naming the setting. Without a `store`, the store is built on first
    use from `database_url` (JOOBQ_DATABASE_URL, else DATABASE_URL), else the embedded
    PostgreSQL.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        config_file: str | Path | None = None,
        on_error_alert: Callable[[AlertEvent], None] | None = None,
        async_store: AsyncStore | None = None,
        **settings: Any,
    ) -> None:
        if store is not None and not isinstance(store, Store):
            raise ConfigurationError(f"store must be a joobq_sql.Store, got {store!r}")
        if async_store is not None:
            from .store.postgres.async_store import AsyncStore

            if not isinstance(async_store, AsyncStore):
                raise ConfigurationError(
                    f"async_store must be a joobq_sql.AsyncStore, got {async_store!r}"
                )
        self.settings, queue_configs = Settings.build(config_file=config_file, **settings)
        self._store = store
        self._async_store = async_store
        self._store_lock = threading.Lock()
        #: new_job's makers of rows whose options are already checked, by option set.
        self._row_makers: dict[tuple[Any, ...], Callable[[UUID, Any, str | None], NewJob]] = {}
        self.queues: dict[str, QueueDefinition] = {}
        self.schedules: dict[str, Schedule] = {}
        self.middlewares: list[Middleware] = []
        self.errors = ErrorMonitor(
            window=self.settings.error_window,
            alert_threshold=self.settings.error_alert_threshold,
            on_alert=on_error_alert,
        )
        for config in queue_configs:
            self._add_queue_config(config)
        job_binding.register(self)

    # -- store -----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store; built on first use when none was given."""
        with self._store_lock:
            if self._store is None:
                self._store = self._build_store()
            return self._store

    def _build_store(self) -> Store:
        from .store.postgres.store import PostgresStore

        url = self.settings.database_url
        if url is None:
            from .embedded import ensure_database

            url = ensure_database()
        return PostgresStore(
            url,
            schema=self.settings.schema,
            lease=self.settings.lease,
            dead_letter_ttl=self.settings.dead_letter_ttl,
            keep_completed=self.settings.keep_completed,
            notify=self.settings.notify,
            **({"pool_size": self.settings.pool_size} if self.settings.pool_size else {}),
        )

    @property
    def async_store(self) -> AsyncStore:
        """The store for asyncio code (``enqueue_async`` and friends); built on first use, on
        the same database and settings as `store`, unless one was given."""
        with self._store_lock:
            if self._async_store is None:
                self._async_store = self._build_async_store()
            return self._async_store

    def _build_async_store(self) -> AsyncStore:
        from .store.postgres.async_store import AsyncStoreAdapter

        store = self._store if self._store is not None else self._build_store()
        self._store = store
        twin = store.async_twin(pool_size=self.settings.pool_size or ASYNC_POOL_SIZE)
        return twin if twin is not None else AsyncStoreAdapter(store)

    @property
    def uses_embedded_database(self) -> bool:
        """True when no store and no database URL were given: the store, once built, is the
        embedded PostgreSQL."""
        return self._store is None and self.settings.database_url is None

    # -- queues and middleware ---------------------------------------------------------------

    def queue(
        self,
        name: str,
        workers: int = DEFAULT_WORKERS,
        jobs: Iterable[type[Job]] = (),
        *,
        limit: int | None = None,
        period: float | None = None,
        mode: str = "threads",
    ) -> QueueDefinition:
        """Run queue `name` with `workers` concurrent jobs (default 10), for the Job classes
        `jobs`; with `limit` and `period`, start at most `limit` jobs per `period` seconds (per
        process). With ``mode="async"`` the jobs (``async def perform``) run as tasks on one
        event loop, so `workers` can be in the hundreds without a thread each."""
        config = QueueConfig(
            name=name,
            workers=workers,
            jobs=(),
            throttle_limit=limit,
            throttle_period=period,
            mode=mode,
        )
        classes = tuple(jobs)
        for klass in classes:
            if not (isinstance(klass, type) and issubclass(klass, Job)):
                raise ConfigurationError(
                    f"queue {name!r}: jobs must be Job subclasses, got {klass!r}"
                )
        return self._define(config, classes)

    def _add_queue_config(self, config: QueueConfig) -> None:
        self._define(config, tuple(_import_job_class(ref, config.name) for ref in config.jobs))

    def _define(self, config: QueueConfig, classes: tuple[type[Job], ...]) -> QueueDefinition:
        if config.name in self.queues:
            raise ConfigurationError(f"queue {config.name!r} is defined twice")
        for klass in classes:
            if config.mode == "async" and not inspect.iscoroutinefunction(klass.perform):
                raise ConfigurationError(
                    f"queue {config.name!r} runs in async mode, so {klass.__qualname__}.perform "
                    "must be an `async def`"
                )
        definition = QueueDefinition(
            name=config.name,
            workers=config.workers,
            job_classes=classes,
            throttle_limit=config.throttle_limit,
            throttle_period=config.throttle_period,
            mode=config.mode,
        )
        self.queues[config.name] = definition
        for klass in classes:
            job_binding.bind(klass, self)
        return definition

    # -- schedules ---------------------------------------------------------------------------

    def every(
        self,
        interval: timedelta | float,
        job_class: type[Job],
        *,
        name: str | None = None,
        misfire: str = "skip",
        catch_up_limit: int = 1,
        **fields: Any,
    ) -> Schedule:
        """Enqueue ``job_class(**fields)`` every `interval` (ticks aligned to the Unix epoch),
        exactly once per tick however many worker processes run. After downtime, missed ticks
        are skipped (`misfire="skip"`) or the latest `catch_up_limit` of them are enqueued
        (`misfire="catch_up"`)."""
        default = f"{_job_type(job_class)}:every:{interval}"
        return self._add_schedule(
            Schedule.every,
            interval,
            job_class,
            name=name or default,
            misfire=misfire,
            catch_up_limit=catch_up_limit,
            fields=fields,
        )

    def cron(
        self,
        pattern: str,
        job_class: type[Job],
        *,
        tz: str = "UTC",
        name: str | None = None,
        misfire: str = "skip",
        catch_up_limit: int = 1,
        **fields: Any,
    ) -> Schedule:
        """Enqueue ``job_class(**fields)`` at each tick of the cron `pattern` (5 fields, or 6
        with seconds first) in timezone `tz`, exactly once per tick across processes. The DST
        rules are stated in joobq_sql/scheduler/cron.py."""
        default = f"{_job_type(job_class)}:cron:{pattern}:{tz}"
        return self._add_schedule(
            lambda p, c, **o: Schedule.cron_pattern(p, tz, c, **o),
            pattern,
            job_class,
            name=name or default,
            misfire=misfire,
            catch_up_limit=catch_up_limit,
            fields=fields,
        )

    def _add_schedule(
        self, make: Callable[..., Schedule], when: Any, job_class: type[Job], **options: Any
    ) -> Schedule:
        if not (isinstance(job_class, type) and issubclass(job_class, Job)):
            raise ConfigurationError(f"a schedule needs a Job subclass, got {job_class!r}")
        try:  # its NFC form: "café" however typed is one schedule
            name = options["name"] = check.schedule_name(options["name"])
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        if name in self.schedules:
            raise ConfigurationError(
                f"schedule {name!r} is defined twice; give one of them name='...'"
            )
        try:
            job_class(**options["fields"]).to_args()  # the fields must make a storable job now
        except TypeError as exc:
            raise ConfigurationError(f"schedule {name!r}: {exc}") from None
        schedule = make(when, job_class, **options)
        self.schedules[name] = schedule
        job_binding.bind(job_class, self, replace=False)
        return schedule

    def schedule_job(self, schedule: Schedule) -> NewJob:
        """The job one tick of `schedule` enqueues."""
        return self.new_job(schedule.job_class(**schedule.fields))

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware around every perform (usable as a decorator). Middlewares run in
        the order added, each as ``middleware(job, context, call_next)``."""
        if not callable(middleware):
            raise ConfigurationError(f"middleware must be callable, got {middleware!r}")
        self.middlewares.append(middleware)
        return middleware

    def queue_for(self, job_class: type[Job]) -> str:
        """The queue a job of `job_class` goes to: its own `queue` when a queue of that name
        runs it (or it names one explicitly), else the one queue it is registered on."""
        own = job_class.queue
        registered = [q.name for q in self.queues.values() if job_class in q.job_classes]
        if own in registered or not registered or _sets_own_queue(job_class):
            return own
        return registered[0]

    # -- enqueueing --------------------------------------------------------------------------

    def new_job(
        self,
        job: Job,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float = 0.0,
        run_at: datetime | None = None,
        unique_key: str | None = None,
    ) -> NewJob:
        """The row to insert for `job`: the class's options, else this application's defaults."""
        klass = type(job)
        settings = self.settings
        retries = klass.retries if _sets_own(klass, "retries") else settings.retries
        if _sets_own(klass, "expires"):
            expires = None if klass.expires is None else klass.expires.total_seconds()
        else:
            expires = settings.expires
        queue = self.queue_for(klass) if queue is None else queue
        priority = klass.priority if priority is None else priority
        args = job.to_args()
        unique_key = job.unique_key() if unique_key is None else unique_key
        on_duplicate = klass.on_duplicate
        options = _row_options(queue, klass.job_type, priority, retries, expires, on_duplicate)
        if options is not None and run_at is None and type(delay) in (int, float) and delay == 0:
            # These very options were checked for an earlier job: reuse its row's (the checks
            # are most of a NewJob's cost, and give the same answer for the same values).
            make = self._row_makers.get(options)
            if make is not None:
                return make(job.jid, args, unique_key)
        else:
            options = None
        row = NewJob(
            jid=job.jid,
            queue=queue,
            job_type=klass.job_type,
            args=args,
            priority=priority,
            max_retries=retries,
            delay=delay,
            run_at=run_at,
            expires_in=expires,
            unique_key=unique_key,
            on_duplicate=on_duplicate,
        )
        if options is not None:
            if len(self._row_makers) >= MAX_ROW_MAKERS:
                self._row_makers.clear()  # many option sets in turn: start over
            self._row_makers[options] = row.sibling_maker()
        return row

    def new_jobs(self, jobs: Iterable[Job]) -> list[NewJob]:
        """The rows to insert for `jobs`, each as new_job(job) makes it.

        The options of each class are worked out and checked once per call, on its first job
        (through new_job), and its other jobs share them (NewJob.sibling_maker): a bulk enqueue
        then spends its time on each job's own values (its jid, args and unique key). Jobs
        without a jid yet get theirs from one read of the random source for the call.
        """
        jobs = list(jobs)
        jids = give_jids(jobs)
        rows = []
        makers: dict[type[Job], Callable[[Job, UUID], NewJob]] = {}
        for job, jid in zip(jobs, jids, strict=True):
            make = makers.get(type(job))
            if make is None:
                row = self.new_job(job)  # the class's options, checked
                makers[type(job)] = _job_row_maker(row, type(job))
            else:
                row = make(job, jid)
            rows.append(row)
        return rows

    def enqueue(self, job: Job, *, connection: Any = None, **options: Any) -> UUID:
        """Enqueue one job (see Job.enqueue); return its jid. Outside your transaction it is
        one statement and one round trip; inside it (`connection`), one statement."""
        return self.store.enqueue_jobs([self.new_job(job, **options)], connection=connection)[0]

    def enqueue_many(
        self, jobs: Sequence[Job], *, batch_size: int = 1000, connection: Any = None
    ) -> list[UUID]:
        """Enqueue `jobs` in one transaction, all or none."""
        check.positive_int(batch_size, what="batch_size")
        rows = self.new_jobs(jobs)
        return self.store.enqueue_jobs(rows, batch_size=batch_size, connection=connection)

    async def enqueue_async(self, job: Job, *, connection: Any = None, **options: Any) -> UUID:
        """enqueue() from asyncio, through `async_store`; `connection` is your AsyncConnection
        or AsyncSession. One statement and one round trip, as enqueue()."""
        row = self.new_job(job, **options)
        return (await self.async_store.enqueue_jobs([row], connection=connection))[0]

    async def enqueue_many_async(
        self, jobs: Sequence[Job], *, batch_size: int = 1000, connection: Any = None
    ) -> list[UUID]:
        """enqueue_many() from asyncio, through `async_store`."""
        check.positive_int(batch_size, what="batch_size")
        rows = self.new_jobs(jobs)
        return await self.async_store.enqueue_jobs(
            rows, batch_size=batch_size, connection=connection
        )

    # -- running -----------------------------------------------------------------------------

    def start(self, queues: Iterable[str] | None = None) -> Worker:
        """Start workers for `queues` (default: all) in background threads; return the Worker
        (call its ``stop()``). For a blocking run with signal handling, use ``run()``."""
        from .runtime.worker import Worker

        worker = Worker(self, self._selected(queues))
        worker.start()
        return worker

    def run(self, queues: Iterable[str] | None = None, *, until_empty: bool = False) -> int:
        """Run workers until SIGTERM or SIGINT, then drain gracefully; return the exit code 0.

        On the signal: stop claiming, hand back claimed jobs that have not started, let running
        jobs finish within `shutdown_grace` seconds. A second signal skips the grace period.

        With `until_empty` (batch runs, cron-driven workers) it also stops, the same graceful
        way, once the queues are empty: no job of them is runnable now, none is running or
        claimed in this process, and every acknowledgement is written. Jobs due later (delayed
        jobs, retries waiting out their backoff) do not keep it running, nor do jobs that other
        workers run; a paused queue counts as empty.
        """
        from .runtime.signals import run_until_signalled

        selected = self._selected(queues)  # configuration errors surface before any signal
        return run_until_signalled(
            lambda: self.start([q.name for q in selected]),
            grace=self.settings.shutdown_grace,
            until_empty=until_empty,
        )

    def _selected(self, queues: Iterable[str] | None) -> list[QueueDefinition]:
        if not self.queues:
            raise ConfigurationError("no queues are defined: call app.queue(name, workers, jobs)")
        if queues is None:
            return list(self.queues.values())
        names = [check.queue_name(q) for q in queues]
        unknown = sorted(set(names) - set(self.queues))
        if unknown:
            raise ConfigurationError(
                f"unknown queues {unknown}; this application defines {sorted(self.queues)}"
            )
        return [self.queues[name] for name in dict.fromkeys(names)]

    # -- operating the queues ------------------------------------------------------------------

    def cancel(self, *jids: UUID) -> dict[UUID, str]:
        """Cancel jobs: waiting ones never run ("cancelled"); running ones are asked to stop
        ("requested": a sync job sees ``cancel_requested``, an async job is cancelled, and a
        requested job that is released or rescued goes dead, never runs again). A jid that is
        absent from the result was not found or had already finished."""
        return self.store.cancel_jobs(list(jids), dead_letter_ttl=self.settings.dead_letter_ttl)

    def retry(self, *jids: UUID) -> list[UUID]:
        """Run jobs now; a dead job is re-driven with a fresh retry budget, errors kept."""
        return self.store.retry_jobs(list(jids))

    def pause(self, queue: str) -> bool:
        """Pause `queue` in every worker (within one poll interval); True if it was running."""
        return self.store.pause_queue(queue)

    def resume(self, queue: str) -> bool:
        """Resume a paused `queue`; True if it was paused."""
        return self.store.resume_queue(queue)

    def stats(self) -> dict[str, QueueStats]:
        """Per queue: what it holds now and its running totals (one cheap query)."""
        return self.store.queue_stats()

    def close(self) -> None:
        """Close the store's connections (and the async store's)."""
        with self._store_lock:
            if self._async_store is not None:
                self._async_store.close()
            if self._store is not None:
                self._store.close()

    async def aclose(self) -> None:
        """Close the async store's connections on the running event loop (call it before the
        loop ends, e.g. at the end of your web application's lifespan)."""
        if self._async_store is not None:
            await self._async_store.aclose()


#: Option sets whose checked rows new_job keeps (per application) for the jobs that follow.
MAX_ROW_MAKERS = 256
#: Connections of the application's async store when settings name no pool_size.
ASYNC_POOL_SIZE = 10


def _row_options(
    queue: object,
    job_type: object,
    priority: object,
    retries: object,
    expires: object,
    on_duplicate: object,
) -> tuple[Any, ...] | None:
    """new_job's options as a key of its row makers; None when one is not of a plain type
    whose equal values are checked alike (True == 1, but a priority of True is refused; an
    expiry of 60 and one of 60.0 are both 60.0 seconds)."""
    plain = (
        type(queue) is str
        and type(job_type) is str
        and type(priority) is int
        and type(retries) is int
        and (expires is None or type(expires) in (int, float))
        and type(on_duplicate) is str
    )
    return (queue, job_type, priority, retries, expires, on_duplicate) if plain else None


def _job_row_maker(row: NewJob, klass: type[Job]) -> Callable[[Job, UUID], NewJob]:
    """``make(job, jid)``: the row of another `klass` job, with `row`'s options (see
    NewJob.sibling_maker). A class that keeps Job's unique_key (no key) is not asked for
    one per job."""
    make = row.sibling_maker()
    to_args = klass.to_args
    if klass.unique_key is Job.unique_key:
        return lambda job, jid: make(jid, to_args(job), None)
    unique_key = klass.unique_key
    return lambda job, jid: make(jid, to_args(job), unique_key(job))


def _sets_own(klass: type[Job], name: str) -> bool:
    """True when `klass` (or a base below Job) sets `name` itself, not inheriting Job's."""
    return any(name in c.__dict__ for c in klass.__mro__ if c is not Job and issubclass(c, Job))


def _job_type(klass: Any) -> str:
    return getattr(klass, "job_type", getattr(klass, "__name__", repr(klass)))


def _sets_own_queue(klass: type[Job]) -> bool:
    return _sets_own(klass, "queue")


def _import_job_class(reference: str, queue: str) -> type[Job]:
    module_name, _, attribute = reference.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            f"queue {queue!r}: cannot import job class {reference!r} ({exc}); "
            "use 'package.module:ClassName'"
        ) from None
    if not (isinstance(value, type) and issubclass(value, Job)):
        raise ConfigurationError(f"queue {queue!r}: {reference!r} is not a Job subclass")
    return value
