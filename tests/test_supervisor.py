"""`joobq-sql worker --processes N` under real signals, and the workers table after a SIGKILL.

- A child that dies, whichever it is, is logged with its exit status and restarted (with a
  backoff); past --max-restarts a minute the supervisor stops the others and exits 1.
- A child whose supervisor is gone, whatever killed it, drains and exits.
- A SIGKILLed worker's row ages out of the workers table, and doctor and the dashboard count a
  worker alive only while it was heard from within a few of its own heartbeat intervals.

The supervisor runs tests/cli_app.py (a 0.5 s heartbeat, 0.5 s maintenance). Children are found
by their rows in the workers table (a child writes its row once its signal handlers are in, so
a row means a signal drains it). Every wait polls a condition with a deadline; processes left
over, supervisors and orphaned children alike, are killed by the fixture.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from joobq_sql import JoobQ, MemoryStore, NewJob, PostgresStore
from tests.cli_app import QUEUE, REPO_ROOT, CliCountJob, assert_usage_error, cli_env, run_cli
from tests.helpers import wait_until

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)"
)
pytest_plugins = ["tests.test_web_support"]

#: Generous: the machine is shared, and a Python process takes a second or two to start.
DEADLINE = 40.0


def running(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (an orphan's zombie may linger if
    nothing reaps it, so a vanished /proc entry is not the only sign of an exit)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def is_our_worker(pid: int) -> bool:
    """A guard before killing a recorded pid at teardown: still a joobq_sql process."""
    try:
        return b"joobq_sql" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False


def registered(pg: psycopg.Connection) -> set[int]:
    """Pids of the rows in the workers table, whatever their age."""
    return {row[0] for row in pg.execute("SELECT pid FROM joobq.workers").fetchall()}


class Supervised:
    """A `python -m joobq_sql worker --app tests.cli_app:app ...` subprocess, output in a file."""

    def __init__(self, database_url: str, log: Path, pg: psycopg.Connection, *args: str) -> None:
        self.log_path = log
        self.pg = pg
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "joobq_sql", "worker", "--app", "tests.cli_app:app", *args],
            cwd=REPO_ROOT,
            env=cli_env(database_url),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid
        #: Every child pid seen, for the teardown.
        self.seen: set[int] = set()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> set[int]:
        """Registered workers that are running children of this supervisor."""
        pids = {pid for pid in registered(self.pg) if running(pid) and parent_of(pid) == self.pid}
        self.seen |= pids
        return pids

    def wait_children(self, count: int, *, besides: set[int] = frozenset()) -> set[int]:
        """Wait until `count` children not in `besides` run and are registered."""

        def ready() -> set[int] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"the supervisor exited {self.proc.returncode}:\n{self.log()}")
            found = self.children() - besides
            return found if len(found) >= count else None

        return wait_until(
            ready, timeout=DEADLINE, interval=0.1, what=f"{count} children:\n{self.log()}"
        )

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the supervisor did not exit:\n{self.log()}") from None

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.wait_exit()

    def kill_all(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.seen:
            if running(pid) and is_our_worker(pid):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


@pytest.fixture
def supervise(database_url: str, pg: psycopg.Connection, tmp_path: Path) -> Iterator:
    """supervise(*args) starts `worker --processes 2 *args`; everything left is killed after."""
    started: list[Supervised] = []

    def start(*args: str, processes: int = 2) -> Supervised:
        log = tmp_path / f"supervisor-{len(started)}.log"
        sup = Supervised(database_url, log, pg, "--processes", str(processes), *args)
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.kill_all()


# -- 1. any child that dies is restarted -------------------------------------------------------


def test_any_child_that_dies_is_logged_and_restarted(supervise) -> None:
    sup = supervise()
    children = sup.wait_children(2)
    # The order the supervisor started them in is the order of their pids in its first line.
    started = sup.log().split("started 2 worker processes: ", 1)[1].splitlines()[0]
    first, second = (int(pid) for pid in started.split(", "))
    assert {first, second} == children

    # The second first: the supervisor used to look no further than the first live child.
    os.kill(second, signal.SIGKILL)
    (replacement,) = sup.wait_children(1, besides=children)
    log = sup.log()
    assert f"worker process {second} was killed by SIGKILL" in log, log
    assert f"restarted worker process {second} as {replacement}" in log, log
    assert running(first) and sup.proc.poll() is None

    os.kill(first, signal.SIGKILL)
    (another,) = sup.wait_children(1, besides=children | {replacement})
    log = sup.log()
    assert f"worker process {first} was killed by SIGKILL" in log, log
    assert f"restarted worker process {first} as {another}" in log, log
    assert running(replacement) and sup.proc.poll() is None

    assert sup.stop() == 0, sup.log()
    assert not running(replacement) and not running(another)


def test_past_the_restart_limit_the_supervisor_stops_the_others_and_exits_1(
    supervise, pg: psycopg.Connection
) -> None:
    sup = supervise("--max-restarts", "1")
    children = sup.wait_children(2)
    first, other = sorted(children)
    os.kill(first, signal.SIGKILL)
    (replacement,) = sup.wait_children(1, besides=children)
    os.kill(replacement, signal.SIGKILL)

    assert sup.wait_exit() == 1, sup.log()
    log = sup.log()
    assert f"worker process {replacement} was killed by SIGKILL" in log, log
    assert "more than --max-restarts 1 allows" in log, log
    wait_until(lambda: not running(other), timeout=DEADLINE, what="the other child to exit")
    assert other not in registered(pg), "the other child drained (its row removed on its stop)"


def test_max_restarts_must_not_be_negative(database_url: str) -> None:
    result = run_cli(
        database_url, "worker", "--app", "tests.cli_app:app", "--processes", "2",
        "--max-restarts", "-1",
    )  # fmt: skip
    assert_usage_error(result, "--max-restarts", "-1", "x>=0")


def test_restart_delays_double_from_one_second_to_thirty_and_reset_after_a_stable_run() -> None:
    from joobq_sql.cli._supervisor import Backoff

    backoff = Backoff(first=1.0, limit=30.0, stable_after=60.0)
    quick = [backoff.next_delay(ran_for=0.5) for _ in range(7)]
    assert quick == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.next_delay(ran_for=60.0) == 1.0, "a child that ran a minute starts afresh"
    assert backoff.next_delay(ran_for=59.0) == 2.0


def test_the_restart_budget_counts_restarts_over_the_last_minute() -> None:
    from joobq_sql.cli._supervisor import RestartBudget

    budget = RestartBudget(per_minute=2)
    assert [budget.spend(now=t) for t in (0.0, 10.0, 20.0)] == [True, True, False]
    assert budget.spend(now=60.5) is True, "the restart at 0 s is a minute old"
    assert RestartBudget(per_minute=0).spend(now=0.0) is False


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("RestartBudget", {"per_minute": -1}, "per_minute must be >= 0, got -1"),
        ("Backoff", {"first": 0}, "first must be > 0 s, got 0"),
        ("Backoff", {"first": 2, "limit": 1}, "limit must be >= first (2 s), got 1"),
    ],
    ids=["negative-budget", "zero-delay", "limit-below-first"],
)
def test_restart_settings_are_checked(kind: str, options: dict[str, Any], message: str) -> None:
    from joobq_sql.cli import _supervisor

    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(_supervisor, kind)(**options)


# -- 2. children exit when their supervisor is gone --------------------------------------------


def test_children_drain_and_exit_when_their_supervisor_is_sigkilled(
    supervise, pg: psycopg.Connection, pg_store: PostgresStore
) -> None:
    pg.execute("CREATE TABLE cli_perform_log (pid int, jid uuid, attempt int)")
    sup = supervise()
    children = sup.wait_children(2)
    pg_store.enqueue_jobs([NewJob.from_job(CliCountJob(n=1, seconds=1.5), queue=QUEUE)])
    running_jobs = "SELECT count(*) FROM joobq.jobs WHERE status = 'running'"
    wait_until(
        lambda: pg.execute(running_jobs).fetchone()[0], timeout=DEADLINE, what="the job to start"
    )

    sup.proc.kill()
    sup.proc.wait(10)
    wait_until(
        lambda: not any(running(pid) for pid in children),
        timeout=DEADLINE,
        what=f"the children {sorted(children)} to exit:\n{sup.log()}",
    )
    log = sup.log()
    for pid in children:
        assert f"supervisor {sup.pid} is gone: worker process {pid} drains" in log, log
    # Drained, not killed: the running job finished and was acknowledged, and each child's
    # stop removed its row.
    assert pg.execute("SELECT count(*) FROM cli_perform_log").fetchone()[0] == 1
    assert pg.execute("SELECT count(*) FROM joobq.jobs").fetchone()[0] == 0
    assert registered(pg) & children == set()


# -- 3. dead workers' rows age out and are not counted alive -----------------------------------


def test_a_sigkilled_workers_row_stops_counting_alive_and_is_pruned(
    supervise, pg: psycopg.Connection, pg_store: PostgresStore
) -> None:
    # --processes 1: each is a worker itself, no supervisor.
    victim, survivor = supervise(processes=1), supervise(processes=1)
    for worker in (victim, survivor):
        _plain_worker(pg, worker)
    victim.proc.kill()
    victim.proc.wait(10)
    assert victim.pid in registered(pg), "a SIGKILLed worker leaves its row behind"
    wait_until(
        lambda: [w.pid for w in pg_store.live_workers()] == [survivor.pid],
        timeout=DEADLINE,
        what="the dead worker to stop counting as alive",
    )

    wait_until(
        lambda: victim.pid not in registered(pg),
        timeout=DEADLINE,
        what="the survivor's maintenance to prune the dead worker's row",
    )
    assert [w.pid for w in pg_store.live_workers()] == [survivor.pid]


def _plain_worker(pg: psycopg.Connection, worker: Supervised) -> Supervised:
    """With --processes 1 the worker is the process itself: wait for its own row."""

    def ready() -> bool:
        if worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited {worker.proc.returncode}:\n{worker.log()}")
        return worker.pid in registered(pg)

    wait_until(ready, timeout=DEADLINE, interval=0.1, what=f"worker {worker.pid}'s row")
    return worker


@pytest.fixture
def aged_workers(pg_store: PostgresStore, pg: psycopg.Connection) -> dict[str, str]:
    """Two rows, backdated: a 1 s heartbeat last heard 10 s ago (dead: ten beats missed) and a
    60 s heartbeat (a 180 s lease) last heard 90 s ago (alive: between two of its beats)."""
    pg_store.worker_seen("h:1:dead", host="h", pid=1, queues=["q"], heartbeat_interval=1.0)
    pg_store.worker_seen("h:2:slow", host="h", pid=2, queues=["q"], heartbeat_interval=60.0)
    pg.execute(
        "UPDATE joobq.workers SET last_seen_at = now() - CASE worker_id "
        "WHEN 'h:1:dead' THEN interval '10 seconds' ELSE interval '90 seconds' END"
    )
    return {"dead": "h:1:dead", "alive": "h:2:slow"}


def test_doctor_counts_a_worker_alive_within_three_of_its_own_heartbeats(
    aged_workers: dict[str, str], database_url: str
) -> None:
    result = run_cli(database_url, "doctor", "--json")
    assert result.returncode == 0, result.stderr
    live = json.loads(result.stdout)["workers"]["live"]
    assert [w["worker_id"] for w in live] == [aged_workers["alive"]]
    text = run_cli(database_url, "doctor").stdout
    assert "workers: 1 alive" in text, text


def test_the_dashboard_counts_a_worker_alive_within_three_of_its_own_heartbeats(
    aged_workers: dict[str, str],
    make_app: Callable[..., JoobQ],
    serve: Callable[..., httpx.Client],
) -> None:
    page = serve(make_app()).get("/").text
    alive = page.split('id="workers-alive"', 1)[1].split("</div>", 1)[0]
    assert '<span class="value">1</span>' in alive
    table = page.split('id="workers"', 1)[1]
    assert aged_workers["alive"] in table and aged_workers["dead"] not in table


@pytest.mark.parametrize("kind", ["postgres", "memory"])
def test_live_and_pruned_workers_follow_each_workers_heartbeat(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The store contract, on both stores: alive within 3 heartbeats (at least 1 s), pruned
    after 10 (at least 5 s)."""
    if kind == "postgres":
        store: Any = request.getfixturevalue("pg_store")
        pg = request.getfixturevalue("pg")

        def age(worker_id: str, seconds: float) -> None:
            pg.execute(
                "UPDATE joobq.workers SET last_seen_at = now() - make_interval(secs => %s) "
                "WHERE worker_id = %s",
                (seconds, worker_id),
            )

    else:
        clock = {"now": MemoryStore().now()}
        store = MemoryStore(clock=lambda: clock["now"])
        seen_at: dict[str, Any] = {}

        def age(worker_id: str, seconds: float) -> None:
            # Write the row `seconds` ago by moving the clock back, then forward again.
            now = clock["now"]
            clock["now"] = now - timedelta(seconds=seconds)
            store.worker_seen(worker_id, **seen_at[worker_id])
            clock["now"] = now

    rows = {  # worker_id: (heartbeat interval, seconds since last heard)
        "h:1:beating": (1.0, 2.0),  # alive: 2 of 3 beats missed
        "h:2:silent": (1.0, 9.0),  # dead, kept: 9 beats missed, not yet 10
        "h:3:gone": (0.3, 6.0),  # pruned: 20 beats missed, and past 5 s
        "h:4:tiny": (0.1, 0.9),  # alive: 9 beats missed, but within the 1 s floor
        "h:5:floor": (0.3, 4.0),  # dead, kept: 13 beats missed, but within the 5 s floor
        "h:6:slow": (60.0, 599.0),  # dead, kept: not yet 10 beats of a minute
        "h:7:slower": (60.0, 601.0),  # pruned
    }
    for n, (worker_id, (interval, _)) in enumerate(rows.items()):
        options = {"host": "h", "pid": n, "queues": ["q"], "heartbeat_interval": interval}
        store.worker_seen(worker_id, **options)
        if kind == "memory":
            seen_at[worker_id] = options
    for worker_id, (_, silent) in rows.items():
        age(worker_id, silent)

    assert [w.worker_id for w in store.live_workers()] == ["h:1:beating", "h:4:tiny"]
    assert {w.worker_id: w.heartbeat_interval for w in store.live_workers()} == {
        "h:1:beating": 1.0,
        "h:4:tiny": 0.1,
    }
    assert len(store.live_workers(within=3600)) == 7, "a fixed window still works"
    assert store.prune_workers(limit=1) == 1
    assert store.prune_workers(limit=10) == 1
    assert store.prune_workers(limit=10) == 0
    assert [w.worker_id for w in store.live_workers(within=3600)] == [
        "h:1:beating",
        "h:2:silent",
        "h:4:tiny",
        "h:5:floor",
        "h:6:slow",
    ]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1"])
def test_a_heartbeat_interval_must_be_a_positive_number_of_seconds(
    pg_store: PostgresStore, bad: Any
) -> None:
    with pytest.raises((ValueError, TypeError), match="heartbeat_interval must be"):
        pg_store.worker_seen("h:1:x", host="h", pid=1, queues=["q"], heartbeat_interval=bad)
    assert pg_store.live_workers(within=3600) == [], "nothing written"
