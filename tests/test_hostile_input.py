"""Hostile and bad input, one table of named cases per surface: the Python API, the command line
(as a subprocess), the REST API (a real server) and rows altered directly in the jobs table.

Each case gets a clear error, one that names the bad value or says what to do, or, for a row a
worker cannot run, a dead job with a clear reason. The store is otherwise unchanged (the
counts of jobs, counters and performs are compared before and after), and no worker crashes:
for the row-level cases a worker runs, and it goes on to perform a good job queued behind the
bad one, and then one more.

Choices these tests document:

- A 10 MB payload is accepted by the Python API and by `enqueue --file` (argv cannot carry
  it): joobq sets no limit of its own below PostgreSQL's (a jsonb value may hold up to 255 MB),
  and the job round-trips intact. The REST API refuses any body over 1 MB with 413, naming its
  limit, as soon as the limit is crossed: size limits belong at the application's edge.
- Datetimes are accepted from year 1 to year 9999 when they carry a time zone; naive ones are
  refused, naming the field or argument.
- Queue names may hold quotes, semicolons and any visible Unicode in the Python API and the
  CLI (they only ever travel as SQL parameters), NFC-normalised; control characters (NUL
  included), invisible and blank names are refused (tests/test_hostile_names_and_output.py).
  The REST API is stricter ([a-zA-Z0-9_-], 50 characters) and says so.
- Values PostgreSQL's jsonb cannot hold (U+0000, a lone surrogate) and args nested beyond what
  JSON decoders take are refused at enqueue, naming the field; rows altered by hand that would
  wedge a claim (an attempt near int4's end, infinite times) are refused by CHECKs, and jsonb
  nested too deeply to decode makes its job dead, not the claim fail.
- The REST API accepts an unknown job_type unvalidated (its answer says "validated": false);
  a worker hands it back for a worker that knows the type, and once it has stayed unrunnable
  for `unrunnable_grace` it is dead as unrunnable (the row-level case "unknown job_type").

A bug found here is first marked xfail(strict=True), its reason saying what goes wrong and the
fix, and the mark goes when the fix lands. Every bug found so far is fixed.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from joobq_sql import ConfigurationError, Job, JobStatus, JoobQ, NewJob, PostgresStore
from joobq_sql._uuid7 import uuid7
from tests.cli_app import cli_env, run_cli
from tests.conftest import _create_database, _drop_database, libpq_url
from tests.fault_app import LOG_TABLE_DDL, FaultCountJob
from tests.fault_server import DedicatedServer, dedicated_server
from tests.helpers import wait_until

QUEUE = "hostile"
PASSWORD = "right-Pa55word"


class FaultHostileJob(Job):
    """The job the API cases enqueue: one field of each kind worth attacking."""

    queue = QUEUE
    n: int = 0
    text: str = ""
    amount: float = 0.0
    when: datetime | None = None
    anything: Any = None

    def perform(self) -> None:
        pass


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_url(admin_url: str, migrated_template: str) -> Iterator[str]:
    """One migrated database for the module (its cases use their own queues), with fault_log."""
    name = f"joobq_h_{uuid.uuid4().hex[:12]}"
    url = _create_database(admin_url, name, template=migrated_template)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(LOG_TABLE_DDL)
    yield url
    _drop_database(admin_url, name)


@pytest.fixture(scope="module")
def hostile_app(hostile_url: str) -> Iterator[JoobQ]:
    app = JoobQ(store=PostgresStore(hostile_url, pool_size=2), database_url=hostile_url)
    app.queue(QUEUE, workers=1, jobs=[FaultHostileJob])
    yield app
    app.close()


@pytest.fixture(scope="module")
def password_server() -> Iterator[DedicatedServer]:
    """A real server that demands passwords (scram-sha-256, every connection) over TCP."""
    with dedicated_server(password=PASSWORD) as server:
        yield server


@pytest.fixture
def db(hostile_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_url(hostile_url), autocommit=True) as conn:
        yield conn


def snapshot(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(jobs, sum of every counter, fault_log rows): what any write would change."""
    jobs = conn.execute("SELECT count(*) FROM joobq.jobs").fetchone()[0]
    counters = conn.execute("SELECT coalesce(sum(value), 0) FROM joobq.queue_counters").fetchone()
    performs = conn.execute("SELECT count(*) FROM fault_log").fetchone()[0]
    return jobs, int(counters[0]), performs


def nested(depth: int) -> list[Any]:
    """[[[...]]], `depth` lists deep."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def far_dates_row(conn: psycopg.Connection, jid: UUID) -> tuple:
    return conn.execute(
        "SELECT queue, status, run_at, args FROM joobq.jobs WHERE jid = %s", (jid,)
    ).fetchone()


# -- the Python API -----------------------------------------------------------------------------


@dataclass
class Ctx:
    app: JoobQ
    store: PostgresStore
    db: psycopg.Connection
    password_server: Callable[[], DedicatedServer]


@dataclass
class ApiCase:
    """`run(ctx)` either raises `error` with each of `says` in its message (nothing written),
    or returns a jid, and `check(ctx, jid)` then verifies the one job it wrote."""

    run: Callable[[Ctx], Any]
    error: type[BaseException] | None = None
    says: tuple[str, ...] = ()
    check: Callable[[Ctx, UUID], None] | None = None
    not_in_message: tuple[str, ...] = ()


def _enqueue(**fields: Any) -> Callable[[Ctx], UUID]:
    return lambda ctx: FaultHostileJob.enqueue(**fields)


def _row(**fields: Any) -> Callable[[Ctx], UUID]:
    """Straight to the store, as NewJob: the layer under Job's typed fields."""

    def run(ctx: Ctx) -> UUID:
        defaults: dict[str, Any] = {"jid": uuid7(), "queue": QUEUE, "job_type": "FaultHostileJob"}
        return ctx.store.enqueue_jobs([NewJob(**{**defaults, **fields})])[0]

    return run


def _queue_stored(name: str) -> Callable[[Ctx, UUID], None]:
    def check(ctx: Ctx, jid: UUID) -> None:
        row = far_dates_row(ctx.db, jid)
        assert row[0] == name, row
        assert name in ctx.store.queue_stats(), "counted under its own name"
        assert ctx.db.execute("SELECT to_regclass('joobq.jobs')").fetchone() == ("joobq.jobs",)

    return check


def _run_at(expected: datetime, status: str) -> Callable[[Ctx, UUID], None]:
    def check(ctx: Ctx, jid: UUID) -> None:
        _, stored_status, run_at, _ = far_dates_row(ctx.db, jid)
        assert (run_at, stored_status) == (expected, status)
        record = ctx.store.get_job(jid)
        assert record is not None and record.run_at == expected

    return check


def _big_payload(ctx: Ctx, jid: UUID) -> None:
    record = ctx.store.get_job(jid)
    assert record is not None and len(record.args["text"]) == 10_000_000
    job = FaultHostileJob.from_args(record.args)
    assert job.text == "x" * 10_000_000


def _fields_round_trip(ctx: Ctx, jid: UUID) -> None:
    record = ctx.store.get_job(jid)
    assert record is not None
    job = FaultHostileJob.from_args(record.args)
    assert job.when == datetime(1, 1, 1, tzinfo=UTC)
    assert job.anything == {"end": "9999-12-31T23:59:59.999999+00:00"}


def _wrong_password(ctx: Ctx) -> None:
    server = ctx.password_server()
    store = PostgresStore(server.url(password="wrong-Pa55word"), pool_size=1)
    try:
        store.queue_stats()
    finally:
        store.close()


def _unreachable(url: str) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        store = PostgresStore(url, pool_size=1)
        try:
            store.queue_stats()
        finally:
            store.close()

    return run


def _cron(pattern: str, tz: str = "UTC") -> Callable[[Ctx], None]:
    return lambda ctx: ctx.app.cron(pattern, FaultHostileJob, tz=tz, name=f"c-{uuid.uuid4()}")


BAD_SQL_QUEUE = "x'; DROP TABLE joobq.jobs; --"
QUOTED_QUEUE = 'it\'s "quoted"; SELECT 1'
UNICODE_QUEUE = "очередь-队列-🚀"

API_CASES: dict[str, ApiCase | Any] = {
    "non-JSON value (a set)": ApiCase(
        _enqueue(anything={1, 2}), TypeError, ("FaultHostileJob.anything", "set")
    ),
    "non-JSON value (an object)": ApiCase(
        _enqueue(anything=object()), TypeError, ("FaultHostileJob.anything", "object")
    ),
    "NaN": ApiCase(_enqueue(amount=math.nan), TypeError, ("FaultHostileJob.amount", "nan")),
    "infinity": ApiCase(_enqueue(amount=math.inf), TypeError, ("FaultHostileJob.amount", "inf")),
    "NaN deep in a JSON value": ApiCase(
        _enqueue(anything={"a": [1, -math.inf]}), TypeError, ("anything.a[1]", "inf")
    ),
    "NaN in a NewJob's args": ApiCase(
        _row(args={"amount": math.nan}), TypeError, ("field 'amount'", "not JSON compliant")
    ),
    "10,000 levels of nesting in a typed field": ApiCase(
        _enqueue(anything=nested(10_000)), TypeError, ("anything", "nested more than 64 levels")
    ),
    "10,000 levels of nesting in a NewJob's args": ApiCase(
        _row(args={"anything": nested(10_000)}), TypeError, ("nested too deeply", "flatten")
    ),
    "10 MB payload (accepted)": ApiCase(_enqueue(text="x" * 10_000_000), check=_big_payload),
    "naive datetime in a field": ApiCase(
        _enqueue(when=datetime(2030, 1, 1)), TypeError, ("FaultHostileJob.when", "naive")
    ),
    "naive datetime to enqueue_at": ApiCase(
        lambda ctx: FaultHostileJob.enqueue_at(datetime(2030, 1, 1)),
        ValueError,
        ("2030-01-01T00:00:00", "naive datetime", "give it a timezone"),
    ),
    "enqueue_at year 1 (accepted, due at once)": ApiCase(
        lambda ctx: FaultHostileJob.enqueue_at(datetime(1, 1, 1, tzinfo=UTC)),
        check=_run_at(datetime(1, 1, 1, tzinfo=UTC), "scheduled"),
    ),
    "enqueue_at year 9999 (accepted, due later)": ApiCase(
        lambda ctx: FaultHostileJob.enqueue_at(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        check=_run_at(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "scheduled"),
    ),
    "datetimes of year 1 and 9999 in fields (accepted)": ApiCase(
        _enqueue(
            when=datetime(1, 1, 1, tzinfo=UTC),
            anything={"end": "9999-12-31T23:59:59.999999+00:00"},
        ),
        check=_fields_round_trip,
    ),
    "queue name with quotes and a semicolon (accepted)": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue=QUOTED_QUEUE), check=_queue_stored(QUOTED_QUEUE)
    ),
    "queue name that is SQL (accepted, verbatim)": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue=BAD_SQL_QUEUE), check=_queue_stored(BAD_SQL_QUEUE)
    ),
    "queue name in Unicode (accepted)": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue=UNICODE_QUEUE), check=_queue_stored(UNICODE_QUEUE)
    ),
    "queue name with NUL": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue="a\x00b"),
        ValueError,
        ("'a\\x00b'", "control characters"),
    ),
    "queue name with a right-to-left override": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue="abc\u202edef"), ValueError, ("control",)
    ),
    "empty queue name": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue=""), ValueError, ("queue name must not be empty",)
    ),
    "queue name of 101 characters": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(queue="q" * 101), ValueError, ("101", "at most 100")
    ),
    "U+0000 in a str field": ApiCase(
        _enqueue(text="a\x00b"), TypeError, ("field 'text'", "U+0000")
    ),
    "a lone surrogate in a str field": ApiCase(
        _enqueue(text="a\ud800b"), TypeError, ("field 'text'", "lone surrogate")
    ),
    "U+0000 in a NewJob's args": ApiCase(
        _row(args={"text": "a\x00b"}), TypeError, ("field 'text'", "U+0000")
    ),
    "a field the class does not have": ApiCase(_enqueue(nope=1), TypeError, ("nope",)),
    "priority out of range": ApiCase(
        lambda ctx: FaultHostileJob.enqueue(priority=40_000), ValueError, ("-32768..32767", "40000")
    ),
    "negative delay": ApiCase(
        lambda ctx: FaultHostileJob.delay(-5), ValueError, ("delay", ">= 0", "-5")
    ),
    "NaN delay": ApiCase(
        lambda ctx: FaultHostileJob.delay(math.nan), ValueError, ("delay", "finite", "nan")
    ),
    "invalid cron pattern": ApiCase(_cron("61 * * * *"), ConfigurationError, ("61",)),
    "cron pattern of 3 fields": ApiCase(_cron("* * *"), ConfigurationError, ("'* * *'",)),
    "unknown timezone": ApiCase(
        _cron("0 * * * *", tz="Mars/Olympus_Mons"), ConfigurationError, ("Mars/Olympus_Mons",)
    ),
    "interval of zero": ApiCase(
        lambda ctx: ctx.app.every(0, FaultHostileJob, name="zero"), ConfigurationError, ("0",)
    ),
    "wrong password (a real scram-sha-256 server)": ApiCase(
        _wrong_password,
        Exception,
        ('password authentication failed for user "postgres"',),
        not_in_message=("wrong-Pa55word",),
    ),
    "unreachable host (nothing listens)": ApiCase(
        _unreachable("postgresql://app:s3cret@127.0.0.1:1/app"),
        Exception,
        ("127.0.0.1", "port 1", "Connection refused"),
        not_in_message=("s3cret",),
    ),
    "unknown host": ApiCase(
        _unreachable("postgresql://app@no-such-host.invalid/app"),
        Exception,
        ("no-such-host.invalid",),
    ),
    "a URL that is not one": ApiCase(
        _unreachable("not a url"), ConfigurationError, ("'not a url'", "not a valid URL")
    ),
    "a URL of another database": ApiCase(
        _unreachable("mysql://app@localhost/app"), ConfigurationError, ("'mysql'", "postgresql://")
    ),
}


def named(cases: dict[str, Any]) -> list[Any]:
    """pytest params from a table: each case named by its key, with the marks it carries."""
    params = []
    for name, case in cases.items():
        if hasattr(case, "marks"):  # a pytest.param(case, marks=...)
            params.append(pytest.param(*case.values, id=name, marks=case.marks))
        else:
            params.append(pytest.param(case, id=name))
    return params


@pytest.mark.parametrize("case", named(API_CASES))
def test_python_api(case: ApiCase, hostile_app: JoobQ, db: psycopg.Connection, password_server):
    ctx = Ctx(hostile_app, hostile_app.store, db, lambda: password_server)  # type: ignore[arg-type]
    before = snapshot(db)
    if case.error is None:
        jid = case.run(ctx)
        assert isinstance(jid, UUID)
        assert case.check is not None
        case.check(ctx, jid)
        jobs, counters, performs = snapshot(db)
        assert (jobs, counters, performs) == (before[0] + 1, before[1], before[2]), "one row"
        return
    with pytest.raises(case.error) as raised:
        case.run(ctx)
    message = str(raised.value)
    for text in case.says:
        assert text in message, message[:2000]
    for text in case.not_in_message:
        assert text not in message
    assert snapshot(db) == before, "nothing was written"


# -- the command line ---------------------------------------------------------------------------

WRONG_PASSWORD = "wrong-Pa55word"


@dataclass
class CliCase:
    """`joobq-sql *argv` exits with `code`; on failure, one `error:` line holds each of `says`;
    on success, `says` are in stdout and `check(db, stdout)` verifies what it wrote. `file`
    is written to a file whose path replaces "{file}" in argv. `url` is the database URL the
    command gets: None for the module's database, WRONG_PASSWORD for the password server
    with a wrong password, else that URL."""

    argv: tuple[str, ...]
    code: int
    says: tuple[str, ...] = ()
    new_rows: int = 0
    file: str | None = None
    url: str | None = None
    check: Callable[[psycopg.Connection, str], None] | None = None
    not_in_output: tuple[str, ...] = ()


def _enqueue_argv(*options: str) -> tuple[str, ...]:
    return ("enqueue", "FaultHostileJob", *options)


def _stored_queue(name: str) -> Callable[[psycopg.Connection, str], None]:
    def check(db: psycopg.Connection, stdout: str) -> None:
        row = db.execute("SELECT queue FROM joobq.jobs WHERE jid = %s", (stdout.strip(),))
        assert row.fetchone() == (name,)
        assert db.execute("SELECT to_regclass('joobq.jobs')").fetchone() == ("joobq.jobs",)

    return check


def _stored_run_at(moment: datetime) -> Callable[[psycopg.Connection, str], None]:
    def check(db: psycopg.Connection, stdout: str) -> None:
        row = db.execute("SELECT run_at FROM joobq.jobs WHERE jid = %s", (stdout.strip(),))
        assert row.fetchone() == (moment,)

    return check


CLI_CASES: dict[str, CliCase | Any] = {
    "args that are not JSON": CliCase(
        _enqueue_argv("--args", "{not json"), 2, ("--args is not valid JSON",)
    ),
    "args that are not an object": CliCase(
        _enqueue_argv("--args", "[1, 2]"), 2, ("--args must be a JSON object", "list")
    ),
    "NaN in args": CliCase(
        _enqueue_argv("--args", '{"amount": NaN}'), 2, ("field 'amount'", "not JSON compliant")
    ),
    "infinity in args": CliCase(
        _enqueue_argv("--args", '{"amount": -Infinity}'), 2, ("field 'amount'",)
    ),
    "10,000 levels of nesting in args": CliCase(
        _enqueue_argv("--args", '{"anything": ' + "[" * 10_000 + "]" * 10_000 + "}"),
        2,
        ("--args", "nested too deeply"),
    ),
    "10 MB payload from --file (accepted)": CliCase(
        _enqueue_argv("--file", "{file}"),
        0,
        ("enqueued 1 FaultHostileJob jobs",),
        new_rows=1,
        file=json.dumps({"text": "x" * 10_000_000}) + "\n",
    ),
    "U+0000 in args": CliCase(
        _enqueue_argv("--args", '{"text": "a\\u0000b"}'), 2, ("field 'text'", "U+0000")
    ),
    "a lone surrogate in args": CliCase(
        _enqueue_argv("--args", '{"text": "a\\ud800b"}'), 2, ("field 'text'", "lone surrogate")
    ),
    "naive --at": CliCase(
        _enqueue_argv("--at", "2030-01-01T00:00:00"), 2, ("has no time zone", "+00:00")
    ),
    "--at year 1 (accepted)": CliCase(
        _enqueue_argv("--at", "0001-01-01T00:00:00+00:00"),
        0,
        new_rows=1,
        check=_stored_run_at(datetime(1, 1, 1, tzinfo=UTC)),
    ),
    "--at year 9999 (accepted)": CliCase(
        _enqueue_argv("--at", "9999-12-31T23:59:59+00:00"),
        0,
        new_rows=1,
        check=_stored_run_at(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ),
    "--at that is not a time": CliCase(
        _enqueue_argv("--at", "tomorrow"), 2, ("'tomorrow' is not an ISO 8601 time",)
    ),
    "negative --delay": CliCase(_enqueue_argv("--delay=-5s"), 2, ("--delay", "'-5s'")),
    "queue name that is SQL (accepted, verbatim)": CliCase(
        _enqueue_argv("--queue", BAD_SQL_QUEUE), 0, new_rows=1, check=_stored_queue(BAD_SQL_QUEUE)
    ),
    "queue name with quotes (accepted)": CliCase(
        _enqueue_argv("--queue", QUOTED_QUEUE), 0, new_rows=1, check=_stored_queue(QUOTED_QUEUE)
    ),
    "queue name in Unicode (accepted)": CliCase(
        _enqueue_argv("--queue", UNICODE_QUEUE), 0, new_rows=1, check=_stored_queue(UNICODE_QUEUE)
    ),
    # (NUL cannot be passed in argv at all: execve refuses it.)
    "queue name with a control character": CliCase(
        _enqueue_argv("--queue", "a\x01b"), 2, ("--queue", "control characters")
    ),
    "queue name of 101 characters": CliCase(
        _enqueue_argv("--queue", "q" * 101), 2, ("--queue", "at most 100")
    ),
    "pause a queue whose name has a control character": CliCase(
        ("queues", "pause", "a\x1bb"), 2, ("control characters",)
    ),
    "job type with an escape character": CliCase(
        ("enqueue", "a\x1bb"), 2, ("job_type", "control characters")
    ),
    "priority out of range": CliCase(_enqueue_argv("--priority", "99999"), 2, ("99999",)),
    "a bad line in --file": CliCase(
        _enqueue_argv("--file", "{file}"),
        1,
        ("line 2", "not valid JSON", "nothing of its batch was written"),
        file='{"n": 1}\n{oops\n{"n": 3}\n',
    ),
    "jobs show with a jid that is not one": CliCase(
        ("jobs", "show", "not-a-uuid"), 2, ("'not-a-uuid' is not a valid UUID",)
    ),
    "doctor with a negative threshold": CliCase(
        ("doctor", "--max-wait", "-1s"), 2, ("--max-wait", "-1s")
    ),
    "wrong password (a real scram-sha-256 server)": CliCase(
        ("stats",),
        1,
        ('password authentication failed for user "postgres"', "check the password in"),
        url=WRONG_PASSWORD,
        not_in_output=(WRONG_PASSWORD,),
    ),
    "unreachable host (nothing listens)": CliCase(
        ("stats",),
        1,
        ("cannot connect to PostgreSQL at 127.0.0.1:1", "connection refused"),
        url="postgresql://app:s3cret@127.0.0.1:1/app",
        not_in_output=("s3cret",),
    ),
    "unknown host": CliCase(
        ("jobs", "list"),
        1,
        ("no-such-host.invalid:5432", "unknown host"),
        url="postgresql://app@no-such-host.invalid/app",
    ),
    "a URL that is not one": CliCase(
        ("stats",), 1, ("'not a url'", "not a valid URL"), url="not a url"
    ),
}


@pytest.mark.parametrize("case", named(CLI_CASES))
def test_command_line(
    case: CliCase, hostile_url: str, db: psycopg.Connection, password_server, tmp_path: Path
):
    if case.url is None:
        url = hostile_url
    elif case.url == WRONG_PASSWORD:
        url = password_server.url(password=WRONG_PASSWORD)
    else:
        url = case.url
    argv = list(case.argv)
    if case.file is not None:
        path = tmp_path / "jobs.jsonl"
        path.write_text(case.file)
        argv = [str(path) if arg == "{file}" else arg for arg in argv]
    before = snapshot(db)
    result = run_cli(None, *argv, env=cli_env(url), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == case.code, output[-3000:]
    assert "Traceback" not in output
    for text in case.not_in_output:
        assert text not in output
    if case.code == 0:
        for text in case.says:
            assert text in result.stdout, result.stdout
        if case.check is not None:
            case.check(db, result.stdout)
    else:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
        for text in case.says:
            assert text in lines[0], lines[0]
    jobs, counters, performs = snapshot(db)
    assert (jobs, counters, performs) == (before[0] + case.new_rows, before[1], before[2])


# -- rows altered in the table ------------------------------------------------------------------


@dataclass
class RowCase:
    """`alter` runs on the row of a waiting FaultCountJob (%(jid)s is its jid), queued ahead
    of a good one. Either the database refuses it (`refused`, with each of `says` in its
    error) and the row is unchanged, or a worker then claims the altered row: `outcome` "dead"
    (with each of `says` in its dead_reason) or "completed" (it runs). Either way the worker
    goes on and performs the good job. `timezone` runs the case in a database of its own
    whose sessions use that time zone; `run_at` is given to the bad job at its enqueue."""

    alter: str | None
    refused: type[psycopg.Error] | None = None
    says: tuple[str, ...] = ()
    outcome: str = "completed"
    timezone: str | None = None
    run_at: datetime | None = None


DEEP_ARGS = '{"n": 1, "deep": ' + "[" * 5000 + "]" * 5000 + "}"

ROW_CASES: dict[str, RowCase | Any] = {
    "unknown job_type": RowCase(
        "UPDATE joobq.jobs SET job_type = 'FaultNoSuchJob' WHERE jid = %(jid)s",
        says=("unrunnable", "'FaultNoSuchJob'"),
        outcome="dead",
    ),
    "empty job_type": RowCase(
        "UPDATE joobq.jobs SET job_type = '' WHERE jid = %(jid)s",
        says=("unrunnable", "job_type ''"),
        outcome="dead",
    ),
    "args missing a field": RowCase(
        "UPDATE joobq.jobs SET args = '{}' WHERE jid = %(jid)s",
        says=("unrunnable", "lack the field 'n'"),
        outcome="dead",
    ),
    "args of the wrong type": RowCase(
        """UPDATE joobq.jobs SET args = '{"n": "seven"}' WHERE jid = %(jid)s""",
        says=("unrunnable", "n", "seven"),
        outcome="dead",
    ),
    "args with an unknown field": RowCase(
        """UPDATE joobq.jobs SET args = '{"n": 1, "zzz": 2}' WHERE jid = %(jid)s""",
        says=("unrunnable", "unknown fields ['zzz']"),
        outcome="dead",
    ),
    "invalid JSON": RowCase(
        "UPDATE joobq.jobs SET args = '{bad' WHERE jid = %(jid)s",
        refused=psycopg.errors.InvalidTextRepresentation,
        says=("invalid input syntax for type json", 'Token "bad" is invalid'),
    ),
    "args that are a JSON array": RowCase(
        "UPDATE joobq.jobs SET args = '[1, 2]' WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_args_object_check",),
    ),
    "negative attempt": RowCase(
        "UPDATE joobq.jobs SET attempt = -1 WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_attempt_check",),
    ),
    "negative max_retries": RowCase(
        "UPDATE joobq.jobs SET max_retries = -3 WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_max_retries_check",),
    ),
    "unknown status": RowCase(
        "UPDATE joobq.jobs SET status = 'paused' WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_status_check",),
    ),
    "running without a worker or a lease": RowCase(
        "UPDATE joobq.jobs SET status = 'running' WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_running_lease_check",),
    ),
    "dead without a purge time": RowCase(
        "UPDATE joobq.jobs SET status = 'dead' WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_dead_expiry_check",),
    ),
    "priority beyond smallint": RowCase(
        "UPDATE joobq.jobs SET priority = 40000 WHERE jid = %(jid)s",
        refused=psycopg.errors.NumericValueOutOfRange,
        says=("smallint out of range",),
    ),
    "NULL queue": RowCase(
        "UPDATE joobq.jobs SET queue = NULL WHERE jid = %(jid)s",
        refused=psycopg.errors.NotNullViolation,
        says=('"queue"',),
    ),
    "running on a worker that is gone (expired lease)": RowCase(
        "UPDATE joobq.jobs SET status = 'running', attempt = 1, max_retries = 1, "
        "worker_id = 'gone:1:dead', lease_expires_at = now() - interval '1 minute' "
        "WHERE jid = %(jid)s",
        outcome="completed",
    ),
    # Rows that once wedged their queue (one failing claim after another): now refused.
    "attempt at the integer maximum": RowCase(
        "UPDATE joobq.jobs SET attempt = 2147483647 WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_attempt_bound_check",),
    ),
    "expires_at of infinity": RowCase(
        "UPDATE joobq.jobs SET expires_at = 'infinity' WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_times_finite_check",),
    ),
    "run_at of -infinity": RowCase(
        "UPDATE joobq.jobs SET run_at = '-infinity' WHERE jid = %(jid)s",
        refused=psycopg.errors.CheckViolation,
        says=("jobs_times_finite_check",),
    ),
    "args nested 5,000 levels (jsonb takes them)": RowCase(
        f"UPDATE joobq.jobs SET args = '{DEEP_ARGS}' WHERE jid = %(jid)s",
        says=("unrunnable", "nested too deeply to decode"),
        outcome="dead",
    ),
    "enqueued due in year 1, on a database west of UTC": RowCase(
        None, run_at=datetime(1, 1, 1, tzinfo=UTC), timezone="America/New_York"
    ),
}

ROW_WAIT = 15.0


@pytest.fixture
def row_database(admin_url: str, migrated_template: str) -> Iterator[Callable[[str], str]]:
    """own(timezone) -> the URL of a database of its own whose sessions use `timezone`."""
    made: list[str] = []

    def own(timezone: str) -> str:
        name = f"joobq_tz_{uuid.uuid4().hex[:12]}"
        made.append(name)
        url = _create_database(admin_url, name, template=migrated_template)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(LOG_TABLE_DDL)
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET timezone = {}").format(
                    sql.Identifier(name), sql.Literal(timezone)
                )
            )
        return url

    yield own
    for name in made:
        _drop_database(admin_url, name)


def _claim_failures(caplog: pytest.LogCaptureFixture, queue: str) -> int:
    return sum(
        1 for r in caplog.records if r.getMessage().startswith(f"claiming from {queue!r} failed")
    )


@pytest.mark.parametrize("case", named(ROW_CASES))
def test_rows_altered_in_the_table(
    case: RowCase,
    hostile_url: str,
    row_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level("WARNING", logger="joobq_sql")
    url = hostile_url if case.timezone is None else row_database(case.timezone)
    monkeypatch.setenv("FAULT_LOG_DSN", libpq_url(url))
    queue = f"row-{uuid.uuid4().hex[:8]}"
    store = PostgresStore(url, pool_size=2)
    app = JoobQ(
        store=store,
        database_url=url,
        lease=5,
        poll_interval=0.1,
        maintenance_interval=0.2,
        retry_jitter=0,
        shutdown_grace=2,
        unrunnable_grace=0.3,  # a row no worker can run is handed back, then dead after this
    )
    app.queue(queue, workers=2, jobs=[FaultCountJob])
    bad, good = FaultCountJob(n=1), FaultCountJob(n=2)
    store.enqueue_jobs(
        [
            # The bad job is claimed first.
            NewJob.from_job(bad, queue=queue, priority=10, max_retries=0, run_at=case.run_at),
            NewJob.from_job(good, queue=queue, priority=0),
        ]
    )
    worker = None
    with psycopg.connect(libpq_url(url), autocommit=True) as db:

        def row() -> tuple | None:
            return db.execute(
                "SELECT to_jsonb(j) - 'updated_at' FROM joobq.jobs AS j WHERE jid = %s",
                (bad.jid,),
            ).fetchone()

        def performed(jid: UUID) -> bool:
            found = db.execute("SELECT 1 FROM fault_log WHERE jid = %s", (jid,)).fetchone()
            return found is not None

        try:
            before = row()
            if case.refused is not None:
                assert case.alter is not None
                with pytest.raises(case.refused) as refused:
                    db.execute(case.alter, {"jid": bad.jid})
                message = f"{refused.value}\n{refused.value.diag.message_detail}"
                for text in case.says:
                    assert text in message, message
                assert row() == before, "the refused statement changed nothing"
            elif case.alter is not None:
                db.execute(case.alter, {"jid": bad.jid})

            worker = app.start([queue])
            # The good job is performed, or the worker is stuck failing its claims.
            wait_until(
                lambda: performed(good.jid) or _claim_failures(caplog, queue) >= 3,
                timeout=ROW_WAIT,
                what="the good job to run, or the claims to fail",
            )
            failures = [r.getMessage() for r in caplog.records if "claiming from" in r.getMessage()]
            assert performed(good.jid), f"the queue is blocked: {failures[:1]}"
            if case.outcome == "dead":

                def dead() -> tuple | None:
                    return db.execute(
                        "SELECT status, dead_reason FROM joobq.jobs WHERE jid = %s AND status = %s",
                        (bad.jid, JobStatus.DEAD.value),
                    ).fetchone()

                _status, reason = wait_until(dead, timeout=ROW_WAIT, what="the bad row dead")
                for text in case.says:
                    assert text in reason, reason
                assert not performed(bad.jid)
            else:
                wait_until(lambda: performed(bad.jid), timeout=ROW_WAIT, what="the bad row")
            # The worker is alive and goes on: one more job runs.
            after = FaultCountJob(n=3)
            store.enqueue_jobs([NewJob.from_job(after, queue=queue)])
            wait_until(lambda: performed(after.jid), timeout=ROW_WAIT, what="the next job")
            assert not [r for r in caplog.records if "crashed" in r.getMessage()]
        finally:
            if worker is not None:
                worker.stop(grace=2)
            app.close()


# -- the REST API (joobq_sql.web) ---------------------------------------------------------------


@dataclass
class RestCase:
    """A request to a real server of the module's application: `body` is sent as JSON (a
    dict) or as it is (bytes). It answers `status` with each of `says` in its "error" (or, for
    a 201, `new_rows` jobs were written)."""

    path: str
    status: int
    says: tuple[str, ...] = ()
    body: dict[str, Any] | bytes | None = None
    new_rows: int = 0


def _job(**data: Any) -> dict[str, Any]:
    return {"job_type": "FaultHostileJob", "data": data}


REST_500 = (
    "BUG: {what} reaches the REST API as an unhandled exception, so the answer is a bare "
    "'500 Internal Server Error' (and uvicorn logs a traceback) instead of a 4xx naming the "
    "field. {fix}"
)
REST_JSONB_FIX = (
    "Since edb002f, NewJob refuses U+0000 and lone surrogates with a TypeError naming the "
    "field, but web/api/enqueue.py EnqueueRequest.new_job builds the row (app.new_job, line "
    "128, and NewJob for an unregistered type, line 117) outside _decode's try, which is what "
    "turns TypeError/ValueError into 422. Fix: build the row inside that try (or catch "
    "TypeError/ValueError around new_job in enqueue()) and answer 422 with field 'data'."
)

REST_CASES: dict[str, RestCase | Any] = {
    "a body that is not JSON": RestCase(
        "/joobq/jobs", 400, ("the body is not valid JSON",), body=b"{not json"
    ),
    "NaN in the body": RestCase(
        "/joobq/jobs",
        400,
        ("NaN is not valid JSON",),
        body=b'{"job_type": "FaultHostileJob", "data": {"amount": NaN}}',
    ),
    "Infinity in the body": RestCase(
        "/joobq/jobs",
        400,
        ("Infinity is not valid JSON",),
        body=b'{"job_type": "FaultHostileJob", "data": {"amount": -Infinity}}',
    ),
    "a body that is an array": RestCase(
        "/joobq/jobs", 400, ("must be a JSON object", "array"), body=b"[1, 2]"
    ),
    "10,000 levels of nesting": RestCase(
        "/joobq/jobs",
        400,
        ("nested",),
        body=(
            '{"job_type": "FaultHostileJob", "data": {"anything": '
            + "[" * 10_000
            + "]" * 10_000
            + "}}"
        ).encode(),
    ),
    "a naive datetime in data": RestCase(
        "/joobq/jobs", 422, ("when", "has no timezone"), body=_job(when="2030-01-01T00:00:00")
    ),
    "a datetime of year 1 in data (accepted)": RestCase(
        "/joobq/jobs", 201, body=_job(when="0001-01-01T00:00:00+00:00"), new_rows=1
    ),
    "a datetime of year 9999 in data (accepted)": RestCase(
        "/joobq/jobs", 201, body=_job(when="9999-12-31T23:59:59+00:00"), new_rows=1
    ),
    "a queue name with NUL": RestCase(
        "/joobq/jobs",
        422,
        ("queue must be", "a\\u0000b"),
        body={**_job(), "queue": "a\x00b"},
    ),
    "a queue name that is SQL (refused by the REST rule)": RestCase(
        "/joobq/jobs",
        422,
        ("queue must be", BAD_SQL_QUEUE),
        body={**_job(), "queue": BAD_SQL_QUEUE},
    ),
    "U+0000 in a str field": RestCase("/joobq/jobs", 422, ("text",), body=_job(text="a\x00b")),
    "a lone surrogate in a str field": RestCase(
        "/joobq/jobs", 422, ("text",), body=_job(text="a\ud800b")
    ),
    "a field the class does not have": RestCase(
        "/joobq/jobs", 422, ("unknown fields ['zzz']",), body=_job(zzz=1)
    ),
    "priority out of range": RestCase(
        "/joobq/jobs", 422, ("priority", "40000"), body={**_job(), "priority": 40_000}
    ),
    "negative delay": RestCase("/joobq/jobs", 422, ("delay", "-5"), body={**_job(), "delay": -5}),
    "an unknown job_type (accepted unvalidated; a worker dead-letters it)": RestCase(
        "/joobq/jobs", 201, body={"job_type": "FaultNoSuchJob", "data": {}}, new_rows=1
    ),
    "a jid that is not one": RestCase("/joobq/jobs/not-a-uuid", 422, ("'not-a-uuid'",)),
    "a negative page size": RestCase("/joobq/jobs?limit=-1", 422, ("limit", "-1")),
    "a queue filter with NUL": RestCase("/joobq/jobs?queue=a%00b", 422, ("control characters",)),
}


@pytest.fixture(scope="module")
def rest_url(hostile_app: JoobQ) -> Iterator[str]:
    from joobq_sql.web import create_app
    from joobq_sql.web.server import BackgroundServer

    with BackgroundServer(
        create_app(hostile_app), host="127.0.0.1", port=0, log_level="critical"
    ).start() as server:
        yield server.url


@pytest.mark.parametrize("case", named(REST_CASES))
def test_rest_api(case: RestCase, rest_url: str, db: psycopg.Connection):
    import httpx

    before = snapshot(db)
    # A client per request: after a 500 the server closes the connection.
    with httpx.Client(base_url=rest_url, timeout=60) as client:
        if case.body is None:
            response = client.get(case.path)
        else:
            content = case.body if isinstance(case.body, bytes) else json.dumps(case.body)
            response = client.post(
                case.path, content=content, headers={"content-type": "application/json"}
            )
    assert response.status_code == case.status, response.text[:500]
    if case.status >= 400:
        error = response.json()["error"]
        for text in case.says:
            assert text in error, error
    jobs, counters, performs = snapshot(db)
    assert (jobs, counters, performs) == (before[0] + case.new_rows, before[1], before[2])


def test_rest_api_refuses_a_10_mb_body_with_413_before_reading_it_all(
    rest_url: str, db: psycopg.Connection
):
    """The REST API's choice: a body over 1 MB is refused with 413 and its limit, answered as
    soon as the limit is crossed (the rest is never read). Sent over a raw socket, because an
    HTTP client that sends the whole body first meets the server's close instead of its
    answer.

    The client announces 10 MB but sends only the first 2 MB and then waits: a server that
    read the whole body before answering would never answer, so an answer proves it stopped
    at the limit, whatever the machine's speed (no race on how much got through first)."""
    import select
    import socket
    from urllib.parse import urlsplit

    before = snapshot(db)
    address = urlsplit(rest_url)
    body = b'{"job_type": "FaultHostileJob", "data": {"text": "' + b"x" * 10_000_000 + b'"}}'
    head = (
        f"POST /joobq/jobs HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    part = 2 * 1024 * 1024  # over the 1 MB limit, far short of what Content-Length announces
    sent, answer = 0, b""
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        deadline = time.monotonic() + 30
        while sent < part and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 0.5)
            if readable:
                break  # the server answered before we sent all we meant to
            if writable:
                try:
                    sent += sock.send(body[sent : min(sent + 65536, part)])
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.settimeout(30)  # now only wait: the rest of the body is never sent
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert sent <= part < len(body)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:500]
    assert b"the body is over 1048576 bytes, the most allowed" in rest
    assert snapshot(db) == before


def test_a_job_due_in_year_9999_on_a_database_east_of_utc_can_be_listed(
    row_database: Callable[[str], str],
):
    url = row_database("Asia/Tokyo")
    store = PostgresStore(url, pool_size=1)
    try:
        moment = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        (jid,) = store.enqueue_jobs(
            [NewJob.from_job(FaultHostileJob(), queue=QUEUE, run_at=moment)]
        )
        (record,) = store.list_queue(QUEUE, offset=0, limit=10)
        assert record.jid == jid and record.run_at == moment
    finally:
        store.close()
