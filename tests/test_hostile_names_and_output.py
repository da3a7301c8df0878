"""Hostile names, and hostile text on its way to a terminal or a shell (issue 14, items 9-12).

Names (queue names, job types, schedule names, unique keys) are NFC-normalised wherever they
enter, so "café" typed as e + U+0301 (NFD) and as é (NFC) is one queue, one job type, one
schedule and one unique key. A name that is blank, padded with whitespace, or holds an invisible
or control character, or starts with a combining mark, is refused at every entry point with a
message that names the character by code point and Unicode name. Each refused input below goes
through every entry point that takes that kind of name: the Job class (queue, job_type),
app.queue(...), enqueue (queue), unique keys, schedule names (app.every / app.cron), the CLI
(`enqueue --queue`, `enqueue JOB_TYPE`, `queues pause`) and the REST enqueue (job_type; its
queue field is ASCII-only already). Rows written before this rule, whose names it now refuses,
stay listable and can be looked up by those names.

What reaches a terminal: no control character from stored data (job errors, queue names, job
types, transaction ids) reaches the terminal from any command: each is shown as a visible
escape such as \\x1b, and rich markup in stored text is printed as the text it is. The doctor's
advice quotes the SQL it offers, so pasting it does what it says. Each CLI case runs
`python -m joobq_sql ...` as a real subprocess and reads its bytes (the `jobs show` one through a
real pseudo-terminal, as an operator's terminal would get them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from psycopg import sql

from joobq_sql import (
    ConfigurationError,
    Job,
    JobDefinitionError,
    JobStatus,
    JoobQ,
    NewJob,
    PostgresStore,
)
from joobq_sql.runtime.maintenance import LeaseRescuer, Maintainer
from joobq_sql.web import create_app
from joobq_sql.web.server import BackgroundServer
from tests.cli_app import REPO_ROOT, cli_env, run_cli, run_cli_in_process
from tests.conftest import _create_database, _drop_database, libpq_url
from tests.fault_server import DedicatedServer, dedicated_server
from tests.helpers import wait_until
from tests.test_web_support import fail_queue

NFC_CAFE = "caf\u00e9"
NFD_CAFE = "cafe\u0301"
#: The job error text stored for the terminal cases: an OSC that sets the terminal's title
#: (ESC ] 0 ; ... BEL), a CSI colour, an 8-bit CSI (U+009B) and rich markup, one of which
#: ("[/]") closes a tag nobody opened.
OSC_TITLE = "\x1b]0;pwned\x07"
HOSTILE_ERROR = f"{OSC_TITLE} then \x1b[31mred\x1b[0m, \u009b2J and [bold]markup[/] [/]"
#: A prepared transaction's id that, formatted into SQL unquoted, drops the jobs table.
HOSTILE_GID = "x'; DROP TABLE joobq.jobs; --"


@dataclass(frozen=True)
class Refused:
    """A name every entry point refuses, and what its message must name."""

    value: str
    names: str


REFUSED = {
    "line separator U+2028": Refused("\u2028", "U+2028 LINE SEPARATOR"),
    "paragraph separator U+2029": Refused("\u2029", "U+2029 PARAGRAPH SEPARATOR"),
    "a lone space": Refused(" ", "U+0020 SPACE"),
    "trailing space 'hr '": Refused("hr ", "U+0020 SPACE"),
    "hangul filler U+3164": Refused("\u3164", "U+3164 HANGUL FILLER"),
    "lone combining acute U+0301": Refused("\u0301", "U+0301 COMBINING ACUTE ACCENT"),
}
REFUSED_FIRST = REFUSED["line separator U+2028"]
refused_names = pytest.mark.parametrize("case", list(REFUSED.values()), ids=list(REFUSED))


class HostileNameJob(Job):
    queue = "hostile-names"
    n: int = 0

    def perform(self) -> None:
        pass


class CafeQueueJob(Job):
    """Its queue is spelled NFD in the source; it must be the NFC queue."""

    queue = NFD_CAFE

    def perform(self) -> None:
        pass


class CafeTypeJob(Job):
    """Its job_type is spelled NFD in the source; the stored tag is NFC."""

    job_type = NFD_CAFE
    queue = "hostile-names"

    def perform(self) -> None:
        pass


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_url(admin_url: str, migrated_template: str) -> Iterator[str]:
    """One migrated database for the cases that are refused before anything is written."""
    name = f"joobq_t_{uuid.uuid4().hex[:12]}"
    yield _create_database(admin_url, name, template=migrated_template)
    _drop_database(admin_url, name)


@pytest.fixture(scope="module")
def module_app(module_url: str) -> Iterator[JoobQ]:
    app = JoobQ(store=PostgresStore(module_url), database_url=module_url)
    app.queue("hostile-names", workers=1, jobs=[HostileNameJob, CafeTypeJob])
    yield app
    app.close()


@pytest.fixture
def app(database_url: str) -> Iterator[JoobQ]:
    """An application on a database of the test's own, for the cases that write."""
    app = JoobQ(store=PostgresStore(database_url), database_url=database_url)
    yield app
    app.close()


@pytest.fixture(scope="module")
def rest(module_app: JoobQ) -> Iterator[httpx.Client]:
    with (
        BackgroundServer(
            create_app(module_app), host="127.0.0.1", port=0, log_level="warning"
        ).start() as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def job_rows(url: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute("SELECT queue, job_type, unique_key FROM joobq.jobs").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def names_rows_of(url: str, value: str) -> int:
    """Jobs stored with `value` as queue, job type or unique key."""
    return sum(value in row for row in job_rows(url))


# -- names: every entry point refuses each hostile name -----------------------------------------


@refused_names
def test_a_job_class_queue_is_refused(case: Refused) -> None:
    with pytest.raises(JobDefinitionError, match=re.escape(case.names)):
        type("HostileQueueOption", (Job,), {"queue": case.value, "perform": lambda self: None})


@refused_names
def test_a_job_class_job_type_is_refused(case: Refused) -> None:
    with pytest.raises(JobDefinitionError, match=re.escape(case.names)):
        type("HostileTypeOption", (Job,), {"job_type": case.value, "perform": lambda self: None})


@refused_names
def test_app_queue_refuses_the_name(case: Refused, module_app: JoobQ) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(case.names)):
        module_app.queue(case.value, workers=1, jobs=[HostileNameJob])
    assert case.value not in module_app.queues


@refused_names
def test_enqueue_refuses_the_queue_and_writes_nothing(
    case: Refused, module_app: JoobQ, module_url: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(case.names)):
        module_app.enqueue(HostileNameJob(), queue=case.value)
    with pytest.raises(ValueError, match=re.escape(case.names)):
        HostileNameJob.enqueue(queue=case.value)
    assert names_rows_of(module_url, case.value) == 0


@refused_names
def test_enqueue_refuses_the_unique_key_and_writes_nothing(
    case: Refused, module_app: JoobQ, module_url: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(case.names)):
        module_app.enqueue(HostileNameJob(), unique_key=case.value)
    assert names_rows_of(module_url, case.value) == 0


@refused_names
def test_schedule_names_are_refused(case: Refused, module_app: JoobQ) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(case.names)):
        module_app.every(timedelta(minutes=5), HostileNameJob, name=case.value)
    with pytest.raises(ConfigurationError, match=re.escape(case.names)):
        module_app.cron("0 * * * *", HostileNameJob, name=case.value)
    assert case.value not in module_app.schedules


#: The command line runs every case in this process (the same code, no interpreter start-up,
#: which costs seconds on a busy machine); the first case, U+2028, also as a real subprocess.
cli_cases = pytest.mark.parametrize(
    ("run", "case"),
    [pytest.param(run_cli_in_process, case, id=name) for name, case in REFUSED.items()]
    + [pytest.param(run_cli, REFUSED_FIRST, id="subprocess")],
)


@cli_cases
def test_cli_enqueue_refuses_the_queue_as_bad_usage(
    run: Callable[..., Any], case: Refused, module_url: str
) -> None:
    result = run(module_url, "enqueue", "HostileNameJob", "--queue", case.value)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert case.names in result.stderr
    assert names_rows_of(module_url, case.value) == 0


@cli_cases
def test_cli_enqueue_refuses_the_job_type_as_bad_usage(
    run: Callable[..., Any], case: Refused, module_url: str
) -> None:
    result = run(module_url, "enqueue", case.value, "--queue", "hostile-names")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert case.names in result.stderr
    assert names_rows_of(module_url, case.value) == 0


@cli_cases
def test_cli_queues_pause_refuses_the_name(
    run: Callable[..., Any], case: Refused, module_url: str
) -> None:
    result = run(module_url, "queues", "pause", case.value)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert case.names in result.stderr
    assert PostgresStore(module_url).paused_queues() == set()


@refused_names
def test_rest_enqueue_refuses_the_job_type_naming_the_character(
    case: Refused, rest: httpx.Client, module_url: str
) -> None:
    response = rest.post("/joobq/jobs", json={"job_type": case.value, "data": {}})
    assert response.status_code == 422, response.text
    assert case.names in response.text
    # its queue field takes [a-zA-Z0-9_-] only, so it refuses every hostile name too
    response = rest.post("/joobq/jobs", json={"job_type": "HostileNameJob", "queue": case.value})
    assert response.status_code == 422, response.text
    assert names_rows_of(module_url, case.value) == 0


def test_a_name_inside_text_is_refused_naming_the_character() -> None:
    from joobq_sql import _validation as check

    with pytest.raises(ValueError) as raised:
        check.queue_name("a\u2028b")
    assert str(raised.value) == (
        "queue name 'a\\u2028b' contains U+2028 LINE SEPARATOR; use visible characters"
    )
    for inner in ("a\u00a0b", "a\u200bb", "a\u3164b", "a\u2800b", "a\ue000b", "a\u0378b"):
        with pytest.raises(ValueError, match=r"contains (control characters \()?U\+"):
            check.queue_name(inner)
    assert check.queue_name("mail high") == "mail high"  # a plain space inside is fine
    assert check.queue_name("x'; DROP TABLE jobs; --") == "x'; DROP TABLE jobs; --"


# -- names: NFD "café" and NFC "café" are one name -----------------------------------------------


def test_nfd_cafe_is_the_nfc_queue_everywhere_in_the_python_api(app: JoobQ) -> None:
    assert CafeQueueJob.queue == NFC_CAFE
    app.queue(NFD_CAFE, workers=1, jobs=[CafeQueueJob])
    assert list(app.queues) == [NFC_CAFE]
    with pytest.raises(ConfigurationError, match="defined twice"):
        app.queue(NFC_CAFE, workers=1, jobs=[])
    app.enqueue(CafeQueueJob(), queue=NFD_CAFE)
    app.enqueue(CafeQueueJob(), queue=NFC_CAFE)
    CafeQueueJob.enqueue()
    assert {name for name in app.store.queue_stats()} == {NFC_CAFE}
    # a worker of the queue configured in NFD claims all three
    claimed = app.store.claim_jobs(app.queues[NFC_CAFE].name, "w-cafe", 10)
    assert len(claimed) == 3
    assert app.store.claim_jobs(NFD_CAFE, "w-cafe", 10) == []  # nothing left in a second queue


def test_nfd_cafe_is_the_nfc_job_type(app: JoobQ, database_url: str) -> None:
    assert CafeTypeJob.job_type == NFC_CAFE
    app.queue("hostile-names", workers=1, jobs=[CafeTypeJob])
    app.enqueue(CafeTypeJob())
    assert [row[1] for row in job_rows(database_url)] == [NFC_CAFE]
    assert len(app.store.search_jobs(job_type=NFD_CAFE)) == 1


def test_nfd_and_nfc_cafe_are_one_unique_key(app: JoobQ, database_url: str) -> None:
    app.queue("hostile-names", workers=1, jobs=[HostileNameJob])
    first = app.enqueue(HostileNameJob(), unique_key=NFD_CAFE)
    second = app.enqueue(HostileNameJob(), unique_key=NFC_CAFE)
    assert first == second
    assert [row[2] for row in job_rows(database_url)] == [NFC_CAFE]


def test_nfd_and_nfc_cafe_are_one_schedule_name(app: JoobQ) -> None:
    schedule = app.every(timedelta(minutes=5), HostileNameJob, name=NFD_CAFE)
    assert schedule.name == NFC_CAFE and list(app.schedules) == [NFC_CAFE]
    with pytest.raises(ConfigurationError, match="defined twice"):
        app.cron("0 * * * *", HostileNameJob, name=NFC_CAFE)


def test_cli_enqueue_and_pause_store_nfd_cafe_as_nfc(database_url: str) -> None:
    result = run_cli(database_url, "enqueue", "HostileNameJob", "--queue", NFD_CAFE)
    assert result.returncode == 0, result.stderr
    result = run_cli(database_url, "enqueue", NFD_CAFE, "--queue", NFD_CAFE)
    assert result.returncode == 0, result.stderr
    assert sorted(job_rows(database_url)) == sorted(
        [(NFC_CAFE, "HostileNameJob", None), (NFC_CAFE, NFC_CAFE, None)]
    )
    result = run_cli(database_url, "queues", "pause", NFD_CAFE)
    assert result.returncode == 0, result.stderr
    store = PostgresStore(database_url)
    try:
        assert store.paused_queues() == {NFC_CAFE}
    finally:
        store.close()


def test_rest_enqueue_stores_an_nfd_job_type_as_nfc(rest: httpx.Client, module_url: str) -> None:
    response = rest.post("/joobq/jobs", json={"job_type": NFD_CAFE, "queue": "hostile-names"})
    assert response.status_code == 201, response.text
    jid = UUID(response.json()["jid"])
    store = PostgresStore(module_url)
    try:
        record = store.get_job(jid)
        assert record is not None and record.job_type == NFC_CAFE
        store.delete_jobs([jid])
    finally:
        store.close()


def test_rows_stored_under_a_now_refused_name_stay_listable_by_it(
    app: JoobQ, database_url: str, pg: psycopg.Connection
) -> None:
    app.queue("hostile-names", workers=1, jobs=[HostileNameJob])
    jid = app.enqueue(HostileNameJob())
    pg.execute("UPDATE joobq.jobs SET queue = 'hr ', job_type = 'hr '")  # as written before
    assert [r.jid for r in app.store.search_jobs(queue="hr ")] == [jid]
    assert [r.jid for r in app.store.search_jobs(job_type="hr ")] == [jid]
    assert "hr " in app.store.queue_stats()
    # The seed's lookups by queue name (JoobQ's Store interface) find them too.
    assert app.store.queue_size("hr ") == 1
    assert len(app.store.list_jobs("hr ")) == 1
    assert app.store.processing_queue_size("hr ") == 0
    listed = run_cli(database_url, "--json", "jobs", "list", "--queue", "hr ", "--type", "hr ")
    assert listed.returncode == 0, listed.stderr
    assert str(jid) in listed.stdout
    assert app.store.delete_jobs([jid]) == 1


def test_rest_filters_find_rows_stored_under_a_now_refused_name(
    module_app: JoobQ, module_url: str, rest: httpx.Client
) -> None:
    """The REST filters look rows up as the store's filters do (`existing`): rows written
    under 'hr ' before the visible-name rule stay listable over HTTP."""
    store = PostgresStore(module_url)
    try:
        jid = store.enqueue_jobs([NewJob.from_job(HostileNameJob())])[0]
        with psycopg.connect(libpq_url(module_url), autocommit=True) as conn:
            conn.execute(
                "UPDATE joobq.jobs SET queue = 'hr ', job_type = 'hr ' WHERE jid = %s", (jid,)
            )
        for params in ({"queue": "hr "}, {"job_type": "hr "}, {"queue": "hr ", "type": "hr "}):
            response = rest.get("/joobq/jobs", params=params)
            assert response.status_code == 200, (params, response.text)
            assert str(jid) in response.text, params
        response = rest.post("/joobq/queues/hr%20/resume")
        assert response.status_code == 200, response.text
        response = rest.post("/joobq/queues/hr%20/pause")  # would write the name: refused
        assert response.status_code == 422 and "U+0020 SPACE" in response.text, response.text
    finally:
        store.delete_jobs([jid])
        store.close()


@pytest.mark.parametrize("name", [".", ".."])
def test_a_queue_named_a_path_step_is_refused(
    name: str, module_app: JoobQ, module_url: str
) -> None:
    """'.' and '..' cannot travel in a URL (browsers resolve even %2e%2e as a path step), so
    the dashboard could never act on such a queue: refused, as a queue name only."""
    with pytest.raises(ConfigurationError, match="path step"):
        module_app.queue(name, workers=1, jobs=[])
    with pytest.raises(ValueError, match="path step"):
        HostileNameJob.enqueue(queue=name)
    result = run_cli_in_process(module_url, "enqueue", "HostileNameJob", "--queue", name)
    assert result.returncode == 2 and "path step" in result.stderr, result.stderr
    result = run_cli_in_process(module_url, "queues", "pause", name)
    assert result.returncode == 2 and "path step" in result.stderr, result.stderr
    assert names_rows_of(module_url, name) == 0


# -- what reaches a terminal --------------------------------------------------------------------


def run_cli_on_a_terminal(database_url: str, *args: str, timeout: float = 60) -> bytes:
    """Run `python -m joobq_sql *args` with stdout and stderr on a real pseudo-terminal (as an
    operator runs it); return every byte it wrote there."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "joobq_sql", *args],
        cwd=REPO_ROOT,
        env=cli_env(database_url, COLUMNS="200", LINES="50"),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed its side of the terminal
                break
            if not chunk:
                break
            output += chunk
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    return bytes(output)


def hostile_sequences(output: bytes) -> list[bytes]:
    """The control sequences of HOSTILE_ERROR that made it into `output` raw."""
    raw = [b"\x1b]0;pwned", b"\x07", b"\x1b[31mred", "\u009b".encode(), b"\xc2\x9b"]
    return [sequence for sequence in raw if sequence in output]


@pytest.fixture
def failed_job(app: JoobQ) -> UUID:
    """A dead job whose error is HOSTILE_ERROR."""
    app.queue("hostile-names", workers=1, jobs=[HostileNameJob])
    app.enqueue(HostileNameJob())
    (jid,) = fail_queue(app, "hostile-names", RuntimeError(HOSTILE_ERROR))
    return jid


def test_jobs_show_on_a_terminal_shows_an_error_s_osc_sequence_as_visible_text(
    failed_job: UUID, database_url: str
) -> None:
    output = run_cli_on_a_terminal(database_url, "jobs", "show", str(failed_job))
    assert str(failed_job).encode() in output, output
    assert hostile_sequences(output) == [], output
    assert b"\\x1b]0;pwned\\x07" in output, output
    assert b"[bold]markup[/] [/]" in output, output  # markup is text, printed as it is


@pytest.fixture
def hostile_rows(failed_job: UUID, pg: psycopg.Connection) -> UUID:
    """The failed job, its queue and job type then set by hand to hostile text too."""
    pg.execute(
        "UPDATE joobq.jobs SET queue = %(text)s, job_type = %(text)s",
        {"text": f"q{OSC_TITLE}[/]"},
    )
    return failed_job


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "list"],
        ["jobs", "show", "{jid}"],
        ["dead", "list"],
        ["queues", "list"],
        ["stats"],
        ["doctor"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_no_command_prints_a_control_character_from_stored_text(
    argv: list[str], hostile_rows: UUID, database_url: str
) -> None:
    args = [part.format(jid=hostile_rows) for part in argv]
    result = subprocess.run(
        [sys.executable, "-m", "joobq_sql", *args],
        cwd=REPO_ROOT,
        env=cli_env(database_url),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert b"Traceback" not in result.stderr, output  # `jobs show` prints the job's own
    assert result.returncode == 0, output
    assert b"\x1b" not in output and b"\x07" not in output, output
    assert "\u009b".encode() not in output, output
    assert b"q\\x1b]0;pwned\\x07[/]" in output, output


WORKER_ARGS = ("--log-level", "info", "--app", "tests.hostile_output_app:app")


def test_the_worker_s_log_shows_a_job_s_error_text_as_visible_text(
    database_url: str, tmp_path: Path
) -> None:
    from tests.hostile_output_app import QUEUE, HostileEchoJob

    store = PostgresStore(database_url)
    try:
        app = JoobQ(store=store, database_url=database_url)
        app.queue(QUEUE, workers=1, jobs=[HostileEchoJob])
        jid = app.enqueue(HostileEchoJob(text=HOSTILE_ERROR))
        log = tmp_path / "worker.log"
        with log.open("wb") as sink:
            worker = subprocess.Popen(
                [sys.executable, "-m", "joobq_sql", "worker", *WORKER_ARGS],
                cwd=REPO_ROOT,
                env=cli_env(database_url),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )
        try:
            wait_until(
                lambda: (
                    (record := store.get_job(jid)) is not None and record.status is JobStatus.DEAD
                ),
                timeout=60,
                what="the job to fail and go dead",
            )
            wait_until(lambda: b"attempt 1 failed" in log.read_bytes(), timeout=30)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    finally:
        store.close()
    output = log.read_bytes()
    assert hostile_sequences(output) == [], output
    assert b"cannot handle \\x1b]0;pwned\\x07" in output, output


# -- what reaches a shell: the doctor's advice --------------------------------------------------


@pytest.fixture(scope="module")
def two_phase_server() -> Iterator[DedicatedServer]:
    """A server that allows prepared transactions (the session's server allows none)."""
    with dedicated_server(settings={"max_prepared_transactions": 4}) as server:
        server.create_database("doctor")
        yield server


@contextlib.contextmanager
def prepared_transaction(server: DedicatedServer, gid: str) -> Iterator[None]:
    """A transaction prepared with `gid` that holds a transaction id (so it pins the xmin
    horizon), rolled back afterwards if the test did not end it."""
    with psycopg.connect(server.dsn("doctor"), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_current_xact_id()")
        conn.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(gid)))
    try:
        yield
    finally:
        with psycopg.connect(server.dsn("doctor"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchone():
                conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))


def doctor_advice(server: DedicatedServer) -> str:
    url = server.url("doctor")
    result = run_cli(url, "doctor", "--max-transaction-age", "0.001s")
    assert result.returncode == 1, (result.stdout, result.stderr)
    return result.stderr


def test_doctor_advice_for_a_hostile_prepared_transaction_quotes_its_gid(
    two_phase_server: DedicatedServer,
) -> None:
    with prepared_transaction(two_phase_server, HOSTILE_GID):
        advice = doctor_advice(two_phase_server)
        assert "ROLLBACK PREPARED 'x''; DROP TABLE joobq.jobs; --'" in advice, advice
        match = re.search(r"end it \((ROLLBACK PREPARED .*)\)$", advice.strip())
        assert match, advice
        # pasting the advice ends the transaction, and drops nothing
        with psycopg.connect(two_phase_server.dsn("doctor"), autocommit=True) as conn:
            conn.execute(match[1])  # type: ignore[arg-type]
            assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)
            assert conn.execute("SELECT to_regclass('joobq.jobs') IS NOT NULL").fetchone() == (
                True,
            )


def test_doctor_offers_no_sql_for_a_gid_holding_control_characters(
    two_phase_server: DedicatedServer,
) -> None:
    with prepared_transaction(two_phase_server, f"t{OSC_TITLE}"):
        advice = doctor_advice(two_phase_server)
    assert "\x1b" not in advice and "\x07" not in advice, advice
    assert "t\\x1b]0;pwned\\x07" in advice, advice
    assert "ROLLBACK PREPARED" in advice and "pg_prepared_xacts" in advice, advice


# -- item 12: what an operator reads about a bad URL, and about an outage ------------------------


def test_a_bad_sslmode_is_reported_as_a_bad_url_not_as_a_server_that_is_down() -> None:
    url = "postgresql://app@127.0.0.1:1/app?sslmode=bogus"
    result = run_cli(None, "--database-url", url, "jobs", "list")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert "is it running" not in line, line
    assert 'invalid sslmode value: "bogus"' in line and "--database-url" in line, line


def test_a_non_integer_port_in_the_url_s_query_is_reported_as_a_bad_url() -> None:
    url = "postgresql://app@127.0.0.1/app?port=abc"
    result = run_cli(None, "--database-url", url, "jobs", "list")
    assert result.returncode == 1, (result.stdout, result.stderr)
    (line,) = result.stderr.splitlines()
    assert "unexpected" not in line and "Traceback" not in line, line
    assert "database URL in --database-url is not valid" in line and "abc" in line, line


def test_a_duty_s_first_failure_in_an_outage_logs_one_line_and_the_traceback_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PostgresStore("postgresql+psycopg://joobq@127.0.0.1:1/joobq?connect_timeout=2")
    maintainer = Maintainer([LeaseRescuer(store, interval=60)])
    caplog.set_level(logging.DEBUG, logger="joobq_sql.runtime.maintenance")
    try:
        maintainer.run_pending()
    finally:
        store.close()
    assert maintainer.stats()["lease_rescuer"]["errors"] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    (warning,) = warnings
    assert warning.exc_info is None and "\n" not in warning.getMessage(), warning.getMessage()
    assert "lease_rescuer failed" in warning.getMessage()
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(debug) == 1, caplog.records
