"""The runtime model: real JoobQ workers (threads, and worker subprocesses in the long version)
over a real PostgreSQL, run under a seeded plan of faults, then checked against the invariants
of tests/runtime_model_check.py.

The seed decides the plan: when each wave of jobs is enqueued and what it holds (short, long,
failing, unstorable-message, doomed, expiring, timing-out, unknown-type and seed-queue jobs),
when the driver cancels (within milliseconds of an enqueue, or during a run), sends stale and
foreign finishes, kills a worker's connection, and when it stalls a worker, refuses every
presence write for a while, holds one or every scheduler back, prunes the schedule's ticks,
starts a worker that knows the new job type, stops a worker, writes a hostile row, or (long
version) SIGKILLs a worker process and starts another. Which job a cancel hits, what the
seed-API client does, and the faults each worker's store calls meet
(tests/runtime_model_faults.py) come from seeded streams too. Thread timing is not seeded: a
seed replays the same plan and the same fault sequences, and a race it found is found again in
most runs of it, not in every one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy.engine import make_url

from joobq_sql import Job, JoobQ, PostgresStore
from joobq_sql.errors import JoobQError
from joobq_sql.runtime.worker import Worker
from joobq_sql.store.records import Completion, Failure, NewJob
from tests.runtime_model_check import (
    INFINITY,
    CancelReport,
    Checker,
    DriverRecord,
    Expectation,
    Impairment,
    StaleFinish,
    Violation,
    explain,
    observe,
)
from tests.runtime_model_faults import Chaos, FaultyStore, observation_ddl
from tests.runtime_model_jobs import (
    QUEUE,
    RUNS_DDL,
    SEED_QUEUE,
    ModelDoomed,
    ModelExpiring,
    ModelSeed,
    ModelTick,
    ModelTimeout,
    ModelUnique,
    ModelWork,
    acting_as,
    configure_log,
    late_job_class,
    logged_run,
    model_middleware,
    queue_classes,
)

logger = logging.getLogger("tests.runtime_model")

#: The workers' settings: leases that lapse within seconds, renewed five times a lease.
MODEL_SETTINGS: dict[str, Any] = {
    "lease": 3,
    "heartbeat_interval": 0.5,
    "poll_interval": 0.1,
    "maintenance_interval": 0.2,
    "retry_jitter": 0,
    "shutdown_grace": 2,
    "prefetch": 2,
    "worker_batch_size": 4,
    "dead_letter_ttl": 3600,
}
TICK_SCHEDULE = "model-tick"
TICK_INTERVAL = 0.5
SEED_CLIENT = "model-seed-client"
DRIVER_APPLICATION_NAME = "model-driver"


def misfire_grace() -> float:
    try:
        from joobq_sql.scheduler.runner import MISFIRE_GRACE
    except ImportError:  # pragma: no cover - the constant moved
        return 5.0
    return float(MISFIRE_GRACE.total_seconds())


def libpq(url: str, **query: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if query:
        parsed = parsed.update_query_dict(query)
    return parsed.render_as_string(hide_password=False)


@dataclass
class ModelConfig:
    seed: int
    name: str = "short"
    duration: float = 15.0  # seconds of chaos
    thread_workers: int = 3
    slots: int = 3  # worker threads of the model queue, per worker
    process_workers: int = 0
    kill_every: float | None = None  # SIGKILL a worker process this often (seconds)
    wave_every: float = 0.5
    wave_size: tuple[int, int] = (4, 8)
    drain_timeout: float = 30.0
    #: Seconds after the start of the chaos of each one-off event (scaled for longer runs).
    events: dict[str, float] = field(default_factory=dict)
    #: Actions or one-off events the plan leaves out (to isolate what a seed found).
    without: tuple[str, ...] = ()


@dataclass
class ModelResult:
    config: ModelConfig
    violations: list[Violation]
    summary: str
    details: str
    full_details: str = ""
    every_job: str = ""

    def write(self, path: Path, command: str) -> None:
        """Every violation and the story of every job concerned, in a file; with violations,
        the story of every job too, beside it (…-all-jobs.txt)."""
        lines = [self.report(command, limit=None), "", "all jobs concerned:", self.full_details]
        path.write_text("\n".join(lines), errors="backslashreplace")
        if self.violations:
            every = path.with_name(path.stem + "-all-jobs.txt")
            every.write_text(self.every_job, errors="backslashreplace")

    def report(self, command: str, limit: int | None = 6) -> str:
        lines = [
            f"runtime model {self.config.name!r} with seed {self.config.seed}: "
            f"{len(self.violations)} invariant violations",
            f"reproduce: {command}",
            "",
        ]
        by_invariant: dict[str, list[Violation]] = {}
        for violation in self.violations:
            by_invariant.setdefault(violation.invariant, []).append(violation)
        for invariant, found in by_invariant.items():
            lines.append(f"[{invariant}] x{len(found)}")
            for violation in found[:limit]:
                where = f"job {violation.jid}: " if violation.jid else ""
                lines.append(f"  - {where}{violation.text}")
        lines += ["", self.summary, "", "runs and history of the first jobs concerned:"]
        lines.append(self.details)
        return "\n".join(lines)


class _Driver:
    """The driver's own database access: a clean store (no faults) and a connection."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).update_query_dict(
            {"application_name": DRIVER_APPLICATION_NAME}
        )
        self.url = url.render_as_string(hide_password=False)
        self.store = PostgresStore(
            self.url, lease=MODEL_SETTINGS["lease"], dead_letter_ttl=3600, pool_size=4
        )
        self.app = JoobQ(store=self.store, database_url=self.url, retry_jitter=0)
        self.conn = psycopg.connect(
            libpq(database_url, application_name=DRIVER_APPLICATION_NAME), autocommit=True
        )
        self.lock = threading.Lock()
        self.origin = 0.0
        self.origin = self.now()

    def now(self) -> float:
        """The database's clock, in seconds since the driver started."""
        with self.lock:
            row = self.conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
            return float(row.fetchone()[0]) - self.origin  # type: ignore[index]

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return list(self.conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self.app.close()
        self.conn.close()


class ModelRun:
    def __init__(self, database_url: str, config: ModelConfig, workdir: Path) -> None:
        self.database_url = database_url
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)
        self.chaos = Chaos(config.seed)
        self.record = DriverRecord(
            lease=float(MODEL_SETTINGS["lease"]), misfire_grace=misfire_grace()
        )
        self.record.skip_schedules.add(TICK_SCHEDULE)
        self.driver = _Driver(database_url)
        self.workers: dict[str, Worker] = {}  # store name -> thread worker
        self.apps: list[JoobQ] = []
        self.processes: dict[str, Any] = {}  # name -> tests.fault_support.FaultWorker
        self.stoppers: list[threading.Thread] = []
        self.late: type[Job] | None = None
        self.late_type = f"ModelLate_{config.seed}_{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._recent: list[UUID] = []
        self._counter = 0
        self._seed_counter = 1_000_000  # the seed client's jobs, numbered apart
        self._streams: dict[str, random.Random] = {}
        self._errors: list[str] = []

    # -- set-up ------------------------------------------------------------------------------

    def stream(self, name: str) -> random.Random:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = random.Random(f"{self.config.seed}:driver:{name}")
        return stream

    def prepare_database(self) -> None:
        with psycopg.connect(libpq(self.database_url), autocommit=True) as conn:
            conn.execute(RUNS_DDL)
            conn.execute(observation_ddl())
        configure_log(libpq(self.database_url))

    def start_thread_worker(self, index: int) -> str:
        name = f"model-w{index}"
        store = FaultyStore(
            self.database_url,
            chaos=self.chaos,
            name=name,
            lease=MODEL_SETTINGS["lease"],
            dead_letter_ttl=3600,
            pool_size=6,
        )
        app = JoobQ(store=store, database_url=self.database_url, **MODEL_SETTINGS)
        for queue, classes in queue_classes(self.late).items():
            app.queue(queue, workers=self.config.slots if queue == QUEUE else 1, jobs=classes)
        app.every(timedelta(seconds=TICK_INTERVAL), ModelTick, name=TICK_SCHEDULE, misfire="skip")
        app.use(model_middleware)
        self.apps.append(app)
        self.workers[name] = app.start()
        return name

    def start_process_worker(self, index: int, *, wait: bool = True) -> str:
        from tests.fault_support import FaultWorker

        name = f"model-p{index}"
        env = {
            "MODEL_SEED": str(self.config.seed),
            "MODEL_NAME": name,
            "MODEL_LOG_DSN": libpq(self.database_url),
            "MODEL_SLOTS": str(self.config.slots),
            "FAULT_LOG_LEVEL": "WARNING",
        }
        if self.late is not None:
            env["MODEL_LATE_TYPE"] = self.late_type
        worker = FaultWorker(
            self.database_url,
            self.workdir / f"{name}.log",
            env,
            module="tests.runtime_model_app",
        )
        self.processes[name] = worker
        if wait:
            worker.wait_ready(timeout=30)
        return name

    # -- the plan ----------------------------------------------------------------------------

    def plan(self) -> list[tuple[float, str, Any]]:
        """Every driver action with its time, from the seed: (seconds from the start, action,
        its argument). `ModelConfig.without` leaves out periodic actions or one-off events by
        name."""
        c, rng = self.config, self.rng
        d = c.duration
        periodic: list[tuple[float, str]] = []

        def every(action: str, first: float, low: float, high: float, until: float) -> None:
            t = first
            while t < until:
                periodic.append((t, action))
                t += rng.uniform(low, high)

        every("wave", 0.0, c.wave_every, c.wave_every, d - 3)
        # A cancel within milliseconds of a wave's enqueue meets the workers' claims of it.
        waves = [t for t, action in periodic if action == "wave"]
        periodic += [(t + rng.uniform(0.0, 0.01), "cancel_fresh") for t in waves]
        every("unique", 0.2, 0.05, 0.15, d - 1)
        every("cancel", 0.3, 0.15, 0.45, d - 1)
        every("stale", 1.0, 0.5, 1.0, d - 1)
        every("kill_connection", 0.7, 0.8, 1.6, d - 1)
        if c.kill_every:
            every("kill_process", c.kill_every, 0.7 * c.kill_every, 1.3 * c.kill_every, d - 2)
        lease = float(MODEL_SETTINGS["lease"])
        grace = self.record.misfire_grace
        # name: (when, action, argument)
        one_off: dict[str, tuple[float, str, Any]] = {
            # Jobs that outlive their lease, so that they need its renewals, then a while in
            # which every presence write is refused (a grant on the workers table revoked).
            "long_jobs": (0.1 * d, "long_jobs", 2 * c.thread_workers),
            "refuse_presence": (0.1 * d + 0.5, "refuse_presence", (None, lease * 1.5)),
            "hostile_row": (0.2 * d, "hostile_row", None),
            "stall_worker": (0.27 * d, "stall_worker", ("model-w1", lease + 1.5)),
            "hold_one_scheduler": (0.1 * d, "hold_scheduler", ("model-w0", 2.0)),
            "prune_ticks": (0.1 * d + 1.2, "prune_ticks", None),
            "define_late_type": (0.5 * d, "define_late_type", None),
            "start_late_worker": (0.5 * d + 0.3, "start_late_worker", None),
            "stop_worker": (0.58 * d, "stop_worker", "model-w2"),
            "hold_all_schedulers": (
                min(d - grace - 4.0, 0.6 * d),
                "hold_scheduler",
                (None, grace + 2.0),
            ),
        }
        without = set(c.without)
        events = [(t, action, None) for t, action in periodic if action not in without]
        events += [
            (c.events.get(name, when), action, argument)
            for name, (when, action, argument) in one_off.items()
            if name not in without
        ]
        return sorted(events, key=lambda e: e[0])

    def wave(self) -> list[tuple[NewJob, Expectation]]:
        """The jobs of one wave, drawn from the seed."""
        rng = self.rng
        rows: list[tuple[NewJob, Expectation]] = []
        for _ in range(rng.randint(*self.config.wave_size)):
            self._counter += 1
            n = self._counter
            pick = rng.random()
            priority = rng.choice((-1, 0, 0, 0, 1, 2))
            delay = rng.choice((0.0, 0.0, 0.0, 0.0, rng.uniform(0.05, 0.8)))
            job: Job
            if pick < 0.38:
                fail_until = rng.choice((0, 0, 0, 1, 1, 2))
                bad = fail_until > 0 and rng.random() < 0.4
                seconds = rng.choice((0.0, 0.02, 0.05, 0.1, 0.3, rng.uniform(0.5, 1.5)))
                if rng.random() < 0.05:
                    seconds = rng.uniform(1.2, 1.6) * float(MODEL_SETTINGS["lease"])
                job = ModelWork(n=n, seconds=seconds, fail_until=fail_until, bad_message=bad)
                expect = Expectation(
                    "work", f"{seconds:.2f}s, fails {fail_until}x" + (" (NUL)" if bad else "")
                )
            elif pick < 0.43:
                job = ModelDoomed(n=n, fail_until=99, bad_message=rng.random() < 0.5)
                expect = Expectation("doomed")
            elif pick < 0.49:
                job = ModelExpiring(n=n, seconds=2.0, slow_until=1, fail_until=1)
                expect = Expectation("expiring", "runs 2.0s, fails once, expires in 1.5s")
                delay = 0.0
            elif pick < 0.57:
                step = rng.choice((0.05, 0.05, 1.0))
                job = ModelTimeout(n=n, seconds=1.2, step=step)
                expect = Expectation("timeout", f"overruns its timeout, steps of {step}s")
            elif pick < 0.65 and self.late is None:
                args = {"n": n, "seconds": rng.choice((0.0, 0.05))}
                row = NewJob(
                    jid=uuid.uuid4(),
                    queue=QUEUE,
                    job_type=self.late_type,
                    args=args,
                    priority=priority,
                    max_retries=ModelWork.retries,
                )
                rows.append((row, Expectation("late", "a type no worker knows yet")))
                continue
            else:
                job = ModelSeed(n=n, seconds=rng.choice((0.05, 0.1, 0.2)))
                expect = Expectation("seed")
            rows.append((self.driver.app.new_job(job, priority=priority, delay=delay), expect))
        return rows

    # -- actions -----------------------------------------------------------------------------

    def act(self, action: str, argument: Any) -> None:
        getattr(self, f"do_{action}")(argument)

    def do_wave(self, _: Any) -> None:
        rows = self.wave()
        self.driver.store.enqueue_jobs([row for row, _ in rows])
        for row, expect in rows:
            self.record.jobs[row.jid] = expect
        self._recent = [row.jid for row, _ in rows]

    def do_unique(self, _: Any) -> None:
        rng = self.stream("unique")
        job = ModelUnique(key=rng.randrange(3), seconds=rng.choice((0.0, 0.01, 0.05)))
        row = self.driver.app.new_job(job)
        try:
            (jid,) = self.driver.store.enqueue_jobs([row])
        except JoobQError as exc:
            self.record.enqueue_errors.append(f"enqueue of unique key {job.unique_key()}: {exc}")
            return
        if jid == row.jid:
            self.record.jobs[jid] = Expectation("unique")

    def do_cancel_fresh(self, _: Any) -> None:
        """Cancel a job of the wave just enqueued: it is waiting, or being claimed now."""
        rng = self.stream("cancel_fresh")
        if self._recent and rng.random() < 0.8:
            self._cancel(self._recent[rng.randrange(len(self._recent))])

    def do_cancel(self, _: Any) -> None:
        rng = self.stream("cancel")
        choice = rng.random()
        if choice < 0.3 and self._recent:
            candidates = self._recent
        elif choice < 0.8:
            candidates = [
                jid
                for (jid,) in self.driver.rows(
                    "SELECT DISTINCT jid FROM model_runs WHERE ended_at IS NULL ORDER BY jid"
                )
            ]
        else:
            candidates = list(self.record.jobs)
        if not candidates:
            return
        self._cancel(candidates[rng.randrange(len(candidates))])

    def _cancel(self, jid: UUID) -> None:
        before = self.driver.now()
        outcome = self.driver.store.cancel_jobs([jid]).get(jid)
        self.record.cancels.append(CancelReport(jid, outcome, before, self.driver.now()))

    def do_stale(self, _: Any) -> None:
        rng = self.stream("stale")
        old = self.driver.rows(
            "SELECT r.jid, r.attempt, r.worker_id FROM model_runs r "
            "JOIN joobq.jobs j USING (jid) "
            "WHERE r.ended_at IS NOT NULL AND j.attempt > r.attempt ORDER BY r.run_id LIMIT 100"
        )
        if old:
            jid, attempt, worker = old[rng.randrange(len(old))]
            changed = self.driver.store.complete_jobs([Completion(jid, attempt, worker)])
            self.record.stale_finishes.append(
                StaleFinish(jid, attempt, worker, "completion", tuple(changed))
            )
            error = {"error_type": "model_stale", "message": "a finish of an older attempt"}
            failed = self.driver.store.fail_jobs([Failure(jid, attempt, worker, error, 0.1)])
            self.record.stale_finishes.append(
                StaleFinish(jid, attempt, worker, "failure", tuple(failed.items()))
            )
        running = self.driver.rows(
            "SELECT jid, attempt FROM joobq.jobs WHERE status = 'running' ORDER BY jid LIMIT 100"
        )
        if running:
            jid, attempt = running[rng.randrange(len(running))]
            changed = self.driver.store.complete_jobs([Completion(jid, attempt, "model-foreign")])
            self.record.stale_finishes.append(
                StaleFinish(jid, attempt, "model-foreign", "foreign completion", tuple(changed))
            )

    def do_kill_connection(self, _: Any) -> None:
        rng = self.stream("kill_connection")
        backends = self.driver.rows(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE 'model-w%%' AND pid <> pg_backend_pid() ORDER BY pid"
        )
        if backends:
            (pid,) = backends[rng.randrange(len(backends))]
            self.driver.rows("SELECT pg_terminate_backend(%s)", (pid,))
            self.chaos.count("connection killed")

    def do_kill_process(self, _: Any) -> None:
        alive = sorted(name for name, w in self.processes.items() if w.alive())
        if not alive:
            return
        rng = self.stream("kill_process")
        name = alive[rng.randrange(len(alive))]
        worker = self.processes[name]
        at = self.driver.now()
        worker.sigkill()
        self.record.impairments.append(Impairment(f"SIGKILL {name}", at, INFINITY, pid=worker.pid))
        self.chaos.count("process killed")
        self.start_process_worker(len(self.processes), wait=False)  # it joins when it is up

    def do_long_jobs(self, count: int) -> None:
        """Jobs that run longer than a lease: only renewals keep them."""
        rng = self.stream("long_jobs")
        lease = float(MODEL_SETTINGS["lease"])
        rows = []
        for _ in range(count):
            self._counter += 1
            seconds = rng.uniform(1.3, 1.7) * lease
            job = ModelWork(n=self._counter, seconds=seconds)
            rows.append(
                (self.driver.app.new_job(job), Expectation("work", f"{seconds:.1f}s (long)"))
            )
        self.driver.store.enqueue_jobs([row for row, _ in rows])
        for row, expect in rows:
            self.record.jobs[row.jid] = expect

    def do_refuse_presence(self, argument: tuple[str | None, float]) -> None:
        name, seconds = argument
        self.chaos.refuse_presence(name, seconds)

    def do_stall_worker(self, argument: tuple[str, float]) -> None:
        name, seconds = argument
        worker = self.workers.get(name)
        if worker is None:
            return
        at = self.driver.now()
        self.chaos.stall(name, seconds)
        self.record.impairments.append(
            Impairment(f"stall {name} {seconds:g}s", at, at + seconds + 0.5, worker.worker_id)
        )

    def do_hold_scheduler(self, argument: tuple[str | None, float]) -> None:
        name, seconds = argument
        self.chaos.hold_scheduler(name, seconds)

    def do_prune_ticks(self, _: Any) -> None:
        # As if the ticks' retention had passed while a scheduler was held back.
        self.driver.store.prune_ticks(older_than=0.0)

    def do_hostile_row(self, _: Any) -> None:
        jid = uuid.uuid4()
        document = {
            "jid": str(jid),
            "queue": QUEUE,
            "job_type": ModelWork.job_type,
            "args": {"n": -1},
            "attempt": 999_999_999,
            "max_retries": 8,
        }
        try:
            self.driver.store.schedule(json.dumps(document), 0)
        except (ValueError, TypeError, JoobQError) as exc:
            self.record.notes.append(f"hostile row refused: {exc}")
            return
        self.record.jobs[jid] = Expectation("hostile", "attempt 999,999,999 from a document")

    def do_define_late_type(self, _: Any) -> None:
        self.late = late_job_class(self.late_type)

    def do_start_late_worker(self, _: Any) -> None:
        self.start_thread_worker(len(self.workers))

    def do_stop_worker(self, name: str) -> None:
        worker = self.workers.get(name)
        if worker is None:
            return
        grace = float(MODEL_SETTINGS["shutdown_grace"])
        at = self.driver.now()
        self.record.impairments += [
            Impairment(f"stopping {name}", at, INFINITY, worker.worker_id, overlaps=False),
            Impairment(f"{name} past its grace", at + grace, INFINITY, worker.worker_id),
        ]
        stopper = threading.Thread(target=worker.stop, kwargs={"grace": grace}, daemon=True)
        stopper.start()
        self.stoppers.append(stopper)

    # -- background participants ---------------------------------------------------------------

    def seed_client(self) -> None:
        """A client of the seed API, beside the runtime's workers on the seed queue. Each round
        it enqueues three jobs due together, the later inserted the higher its priority (so
        claim order is not insertion order), claims them one at a time as they fall due,
        starts its oldest claim, and while that runs gives the others back with
        release_job_claims_batch (the seed's meaning: the most recently claimed jobs, not
        started), then completes it. The runtime's workers run what it gives back."""
        rng = self.stream("seed_client")
        with acting_as(SEED_CLIENT):
            while not self._stop.wait(rng.uniform(0.2, 0.6)):
                try:
                    self._seed_round()
                except Exception as exc:  # a driver error fails the model, it is not a fault
                    self._errors.append(f"seed client: {exc!r}")
                    return

    def _seed_round(self) -> None:
        store = self.driver.store
        rows = []
        for priority in (0, 1, 2):
            self._seed_counter += 1
            job = ModelSeed(n=self._seed_counter, seconds=0.5)
            rows.append(self.driver.app.new_job(job, priority=priority, delay=0.2))
        store.enqueue_jobs(rows)
        for row in rows:
            self.record.jobs[row.jid] = Expectation("seed", "for the seed-API client")
        documents: list[str] = []
        deadline = time.monotonic() + 1.0
        while len(documents) < 3 and time.monotonic() < deadline and not self._stop.is_set():
            document = store.claim_job(SEED_QUEUE, SEED_CLIENT)
            if document is None:
                time.sleep(0.01)
            else:
                documents.append(document)
        if not documents:
            return
        first = json.loads(documents[0])
        job = ModelSeed.from_args(first["args"], jid=UUID(first["jid"]), attempt=first["attempt"])
        with logged_run(job, "seed"):
            time.sleep(0.1)
            if len(documents) > 1:
                store.release_job_claims_batch(SEED_QUEUE, SEED_CLIENT, len(documents) - 1)
            time.sleep(max(job.seconds - 0.1, 0.0))
        store.mark_job_completed(documents[0], SEED_QUEUE)

    def sampler(self) -> None:
        """Watches for running jobs whose lease lapsed long ago and nobody rescued."""
        while not self._stop.wait(0.5):
            try:
                rows = self.driver.rows(
                    "SELECT jid, worker_id, extract(epoch FROM now() - lease_expires_at)::float8 "
                    "FROM joobq.jobs WHERE status = 'running' "
                    "AND lease_expires_at < now() - interval '5 seconds'"
                )
            except psycopg.Error as exc:
                self._errors.append(f"sampler: {exc!r}")
                return
            for jid, worker, seconds in rows:
                self.record.expired_leases_seen.setdefault(jid, (worker, seconds))

    # -- the run -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _background(self, *targets: Callable[[], None]) -> Iterator[None]:
        threads = [threading.Thread(target=t, daemon=True) for t in targets]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(10)

    def run(self) -> ModelResult:
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> ModelResult:
        self.prepare_database()
        events = self.plan()
        for index in range(self.config.thread_workers):
            self.start_thread_worker(index)
        for index in range(self.config.process_workers):
            self.start_process_worker(index)
        with self._background(self.seed_client, self.sampler):
            started = time.monotonic()
            for at, action, argument in events:
                delay = started + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.act(action, argument)
            remaining = started + self.config.duration - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            self.end_faults()
            drained = self.drain()
        for stopper in self.stoppers:
            stopper.join(15)
        for worker in self.workers.values():
            worker.stop(grace=5)
        with psycopg.connect(libpq(self.database_url), autocommit=True) as conn:
            observed = observe(conn, self.driver.origin)
        self.record.tick_records = list(self.chaos.ticks)
        violations = Checker(observed, self.record).check()
        for error in self._errors:
            violations.append(Violation("the driver ran without errors", None, error))
        if not drained:
            self.record.notes.append("the jobs did not all finish within the drain timeout")
        concerned = [v.jid for v in violations if v.jid is not None]
        first_of_each = {v.invariant: v.jid for v in reversed(violations) if v.jid is not None}
        return ModelResult(
            self.config,
            violations,
            self.summary(observed),
            explain(observed, [*first_of_each.values(), *concerned]),
            explain(observed, concerned, limit=None),
            explain(observed, observed.history, limit=None) if violations else "",
        )

    def end_faults(self) -> None:
        """The chaos is over: no more faults; no more ticks; worker processes drain and exit."""
        self.chaos.end()
        for worker in self.workers.values():
            worker.stop_scheduler()
        grace = float(MODEL_SETTINGS["shutdown_grace"])
        for name, process in self.processes.items():
            if not process.alive():
                continue
            at = self.driver.now()
            self.record.impairments += [
                Impairment(f"stopping {name}", at, INFINITY, pid=process.pid, overlaps=False),
                Impairment(f"{name} past its grace", at + grace, INFINITY, pid=process.pid),
            ]
            process.stop(timeout=30)

    def drain(self) -> bool:
        deadline = time.monotonic() + self.config.drain_timeout
        while time.monotonic() < deadline:
            ((live,),) = self.driver.rows("SELECT count(*) FROM joobq.jobs WHERE status <> 'dead'")
            if not live:
                return True
            time.sleep(0.2)
        return False

    def summary(self, observed: Any) -> str:
        runs = sum(len(r) for r in observed.runs.values())
        outcomes: dict[str, int] = {}
        for expect in self.record.jobs.values():
            outcomes[expect.kind] = outcomes.get(expect.kind, 0) + 1
        dead = sum(1 for row in observed.final.values() if row["status"] == "dead")
        cancels: dict[str, int] = {}
        for report in self.record.cancels:
            key = report.outcome or "nothing"
            cancels[key] = cancels.get(key, 0) + 1
        injected = ", ".join(f"{k} {v}" for k, v in sorted(self.chaos.injected.items()))
        workers = {name: worker.worker_id for name, worker in self.workers.items()}
        workers.update({name: f"pid {p.pid}" for name, p in self.processes.items()})
        return (
            f"workers: {workers}\n"
            f"jobs enqueued by kind: {outcomes}; schedule ticks {len(observed.ticks)}; "
            f"runs {runs}; dead at the end {dead}\n"
            f"cancels: {cancels}; stale finishes sent {len(self.record.stale_finishes)}; "
            f"impairments: {[f'{i.what} at {i.start:.1f}' for i in self.record.impairments]}\n"
            f"faults injected: {injected}\n"
            f"notes: {self.record.notes}"
        )

    def close(self) -> None:
        self._stop.set()
        self.chaos.end()
        for worker in self.workers.values():
            with contextlib.suppress(Exception):
                worker.stop(grace=1)
        for process in self.processes.values():
            with contextlib.suppress(Exception):
                process.close()
        for app in self.apps:
            with contextlib.suppress(Exception):
                app.close()
        self.driver.close()
