"""Settings at their limits (issue 14, item 4): absurd but finite durations and counts.

Every input the issue lists is a named case, tried where it can be set: the environment, a
TOML file, JoobQ(...) in code, the command line (a real `python -m joobq_sql` subprocess) and
the REST enqueue endpoint (a real server). Each is refused when it is set, with a message that
names the setting (and the variable or file that set it) and its range, and nothing is
written. Then the runtime side: background threads are given no value they cannot wait on,
every setting at the top of its range runs and fails a job on a real PostgreSQL, and a job
whose failure cannot be written still ends dead, never stuck `running`.

Ranges chosen (joobq_sql/settings.py BOUNDS, one table for every entry point): durations
written into rows (expires, dead_letter_ttl, keep_completed, max_backoff, unrunnable_grace,
timeout, a delay) at most 1000 years, so that now() plus any of them stays a time that
PostgreSQL and Python both hold; durations this process waits on (lease, maintenance_interval,
shutdown_grace, error_window, a throttle period) at most a day, since a longer one is an
operator's mistake; counts at most what their columns hold (retries: 100,000,000, the attempt
bound of every job row).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from joobq_sql import ConfigurationError, Job, JobStatus, JoobQ, MemoryStore, PostgresStore
from joobq_sql._validation import MAX_ATTEMPT, MAX_DURATION_SECONDS
from joobq_sql.runtime.heartbeat import Heartbeat
from joobq_sql.runtime.maintenance import LeaseRescuer, Maintainer
from joobq_sql.settings import Settings
from tests.cli_app import cli_env, run_cli
from tests.conftest import _create_database, _drop_database, libpq_url
from tests.helpers import wait_until
from tests.runtime_support import start

QUEUE = "hostile-settings"
DAY = 86400.0


class HostileSettingsJob(Job):
    queue = QUEUE
    n: int = 0

    def perform(self) -> None:
        pass


class HostileSettingsFails(Job):
    """Fails on its one run (retries = 0), so its failure is the write that matters."""

    queue = QUEUE
    retries = 0

    def perform(self) -> None:
        raise RuntimeError("this job always fails")


# -- the inputs of the issue ----------------------------------------------------------------------


@dataclass(frozen=True)
class SettingCase:
    """One absurd value of `setting`: as the issue wrote it in the environment (`env`), as a
    TOML literal (`toml`) and as a Python value (`code`); `says` is in the range's text."""

    setting: str
    env: str
    toml: str
    code: object
    says: str

    @property
    def variable(self) -> str:
        return "JOOBQ_" + self.setting.upper()


SETTING_CASES = {
    "JOOBQ_DEAD_LETTER_TTL=100000000000000": SettingCase(
        "dead_letter_ttl", "100000000000000", "100000000000000", 1e14, "1000 years"
    ),
    "JOOBQ_LEASE=1e20": SettingCase("lease", "1e20", "1e20", 1e20, "1 day"),
    "JOOBQ_MAINTENANCE_INTERVAL=1e20": SettingCase(
        "maintenance_interval", "1e20", "1e20", 1e20, "1 day"
    ),
    "JOOBQ_KEEP_COMPLETED=1e14": SettingCase("keep_completed", "1e14", "1e14", 1e14, "1000 years"),
    "JOOBQ_RETRIES=2147483648": SettingCase(
        "retries", "2147483648", "2147483648", 2**31, str(MAX_ATTEMPT)
    ),
    "JOOBQ_EXPIRES=1e14": SettingCase("expires", "1e14", "1e14", 1e14, "1000 years"),
}


def setting_cases() -> list[Any]:
    return [pytest.param(case, id=name) for name, case in SETTING_CASES.items()]


# -- environment, file, code ----------------------------------------------------------------------


@pytest.mark.parametrize("case", setting_cases())
def test_an_absurd_value_in_the_environment_is_refused_naming_variable_and_range(
    case: SettingCase,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.build(environ={case.variable: case.env})
    message = str(caught.value)
    for text in (case.variable, case.setting, case.says):
        assert text in message, message


@pytest.mark.parametrize("case", setting_cases())
def test_an_absurd_value_in_a_toml_file_is_refused_naming_file_and_range(
    case: SettingCase, tmp_path: Path
) -> None:
    path = tmp_path / "joobq.toml"
    path.write_text(f"[joobq]\n{case.setting} = {case.toml}\n")
    with pytest.raises(ConfigurationError) as caught:
        Settings.build(config_file=path, environ={})
    message = str(caught.value)
    for text in (str(path), case.setting, case.says):
        assert text in message, message


@pytest.mark.parametrize("case", setting_cases())
def test_an_absurd_value_given_to_joobq_in_code_is_refused_naming_setting_and_range(
    case: SettingCase,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        JoobQ(store=MemoryStore(), **{case.setting: case.code})
    message = str(caught.value)
    assert message.startswith(f"{case.setting} must be"), message
    assert case.says in message, message


@pytest.mark.parametrize(
    ("options", "says"),
    [
        pytest.param({"workers": 10**9}, "10000", id="a billion workers"),
        pytest.param({"limit": 10, "period": 1e20}, "1 day", id="a throttle period of 1e20 s"),
    ],
)
def test_an_absurd_queue_option_is_refused_naming_it_and_its_range(
    options: dict[str, Any], says: str
) -> None:
    app = JoobQ(store=MemoryStore())
    with pytest.raises(ConfigurationError, match=says):
        app.queue(QUEUE, jobs=[HostileSettingsJob], **options)
    assert app.queues == {}


def test_a_python_int_too_large_for_a_float_is_out_of_range_not_an_overflow() -> None:
    with pytest.raises(ConfigurationError, match=r"^dead_letter_ttl must be .*1000 years"):
        Settings(dead_letter_ttl=10**400)


def test_every_numeric_setting_has_a_bound_it_takes_and_refuses_the_next_value_above() -> None:
    from joobq_sql.settings import BOUNDS

    numeric = {
        f.name for f in fields(Settings) if f.type in ("int", "float", "int | None", "float | None")
    }
    assert {"retries", "lease", "dead_letter_ttl", "pool_size"} <= numeric, numeric
    # retry_jitter is a fraction in 0..1; heartbeat_interval's bound is the lease.
    numeric -= {"retry_jitter", "heartbeat_interval"}
    assert numeric <= BOUNDS.keys(), numeric - BOUNDS.keys()
    for setting in sorted(numeric):
        bound = BOUNDS[setting]
        high: Any = int(bound.high) if bound.integer else bound.high
        above: Any = high + 1 if bound.integer else high * 1.001
        assert getattr(Settings(**{setting: high}), setting) == high
        with pytest.raises(ConfigurationError, match=f"^{setting} must be"):
            Settings(**{setting: above})


# -- the command line, a real process -------------------------------------------------------------


@pytest.fixture(scope="module")
def settings_url(admin_url: str, migrated_template: str) -> Iterator[str]:
    """One migrated database for the module's enqueue and REST cases."""
    name = f"joobq_hs_{uuid.uuid4().hex[:12]}"
    url = _create_database(admin_url, name, template=migrated_template)
    yield url
    _drop_database(admin_url, name)


def job_count(url: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM joobq.jobs").fetchone()
    assert row is not None
    return int(row[0])


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("case", setting_cases())
def test_the_cli_refuses_an_absurd_value_from_the_environment_before_writing(
    case: SettingCase, settings_url: str
) -> None:
    before = job_count(settings_url)
    env = cli_env(settings_url, **{case.variable: case.env})
    result = run_cli(None, "enqueue", "HostileSettingsJob", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    line = error_line(result.stderr)
    for text in (case.variable, case.setting, case.says):
        assert text in line, line
    assert job_count(settings_url) == before


def test_the_cli_refuses_a_delay_of_99999999999999999999_days_naming_the_option_and_range(
    settings_url: str,
) -> None:
    before = job_count(settings_url)
    result = run_cli(
        None,
        "enqueue",
        "HostileSettingsJob",
        "--delay",
        "99999999999999999999d",
        env=cli_env(settings_url),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    line = error_line(result.stderr)
    for text in ("--delay", "'99999999999999999999d'", "1000 years"):
        assert text in line, line
    assert job_count(settings_url) == before


# -- the REST enqueue endpoint, a real server ------------------------------------------------------


@pytest.fixture(scope="module")
def rest_url(settings_url: str) -> Iterator[str]:
    from joobq_sql.web import create_app
    from joobq_sql.web.server import BackgroundServer

    app = JoobQ(store=PostgresStore(settings_url, pool_size=2), database_url=settings_url)
    app.queue(QUEUE, workers=1, jobs=[HostileSettingsJob])
    with BackgroundServer(
        create_app(app), host="127.0.0.1", port=0, log_level="critical"
    ).start() as server:
        yield server.url
    app.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(
            "delay", 99999999999999999999 * 86400, id="delay of 99999999999999999999 days"
        ),
        pytest.param("delay", 1e20, id="delay of 1e20 s"),
        pytest.param("retries", 2147483648, id="retries 2147483648"),
    ],
)
@pytest.mark.parametrize("job_type", ["HostileSettingsJob", "NotRegisteredHere"])
def test_the_rest_api_refuses_an_absurd_number_with_422_naming_field_and_range(
    field: str, value: Any, job_type: str, rest_url: str, settings_url: str
) -> None:
    import httpx

    before = job_count(settings_url)
    body = json.dumps({"job_type": job_type, "data": {}, field: value})
    with httpx.Client(base_url=rest_url, timeout=60) as client:
        response = client.post(
            "/joobq/jobs", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text[:500]
    error = response.json()["error"]
    assert field in error and ".." in error, error
    assert job_count(settings_url) == before


# -- background threads ---------------------------------------------------------------------------


def test_a_heartbeat_refuses_an_interval_no_thread_can_wait(pg_store: PostgresStore) -> None:
    with pytest.raises(ValueError, match=r"heartbeat interval must be at most"):
        Heartbeat(pg_store, worker_id="w", lease=30, interval=1e20, held_jids=set)


def test_a_heartbeat_refuses_a_lease_no_job_row_can_hold(pg_store: PostgresStore) -> None:
    with pytest.raises(ValueError, match=r"^lease must be at most .*1000 years"):
        Heartbeat(pg_store, worker_id="w", lease=1e20, interval=10, held_jids=set)


def test_a_maintenance_duty_refuses_an_interval_no_thread_can_wait() -> None:
    # 500 years: within the 1000 years a job row holds, beyond what threading can wait on.
    with pytest.raises(ValueError, match=r"^lease_rescuer interval must be at most"):
        LeaseRescuer(MemoryStore(), interval=timedelta(days=500 * 365))


def test_the_maintainer_never_asks_its_thread_to_wait_longer_than_a_thread_can() -> None:
    duty = LeaseRescuer(MemoryStore(), interval=60)
    duty.interval = 1e20  # a value set after the duty checked its own
    maintainer = Maintainer([duty])
    assert maintainer.run_pending() <= threading.TIMEOUT_MAX
    assert maintainer.stats()["lease_rescuer"]["runs"] == 1


# -- the runtime at the top of every range, on PostgreSQL ------------------------------------------


def test_every_setting_at_the_top_of_its_range_runs_and_fails_a_job(make_app) -> None:
    """The highest values are ones PostgreSQL and Python both hold: a job fails to dead with a
    dead letter kept 1000 years, another completes and is kept 1000 years, every maintenance
    duty runs without an error, and the heartbeat and maintainer threads stay alive."""
    stored = {
        name: MAX_DURATION_SECONDS
        for name in (
            "dead_letter_ttl",
            "keep_completed",
            "expires",
            "max_backoff",
            "timeout",
            "unrunnable_grace",
        )
    }
    waited = {"lease": DAY, "maintenance_interval": DAY, "error_window": DAY}
    app = make_app(**stored, **waited, retries=MAX_ATTEMPT, heartbeat_interval=60)
    app.queue(QUEUE, workers=2, jobs=[HostileSettingsJob, HostileSettingsFails])
    ok = HostileSettingsJob.enqueue(n=1)
    failing = HostileSettingsFails.enqueue()
    assert app.store.get_job(ok).max_retries == MAX_ATTEMPT
    worker = start(app)
    dead = wait_until(
        lambda: (r := app.store.get_job(failing)) and r.status is JobStatus.DEAD and r,
        timeout=30,
        what="the failing job dead",
    )
    assert dead.dead_expires_at - app.store.now() > timedelta(seconds=MAX_DURATION_SECONDS - DAY)
    done = wait_until(
        lambda: (r := app.store.get_job(ok)) and r.status is JobStatus.COMPLETED and r,
        timeout=30,
        what="the good job completed and kept",
    )
    assert done.finished_at is not None
    stats = wait_until(
        lambda: (s := worker.maintainer.stats()) and all(d["runs"] for d in s.values()) and s,
        timeout=30,
        what="every maintenance duty ran once",
    )
    assert all(duty["errors"] == 0 for duty in stats.values()), stats
    assert worker.maintainer.running and worker.heartbeat.running


# -- a failure that cannot be written --------------------------------------------------------------

REFUSE_FAILURE_WRITES = """
CREATE FUNCTION refuse_failure_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The failure write, not the lease rescue (whose error is of type lease_expired).
    IF OLD.status = 'running' AND NEW.status IN ('retrying', 'dead')
       AND coalesce(NEW.last_error->>'error_type', '') NOT LIKE 'lease_expired%' THEN
        RAISE EXCEPTION 'interval out of range' USING ERRCODE = '22008';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_failure_writes BEFORE UPDATE ON joobq.jobs
    FOR EACH ROW EXECUTE FUNCTION refuse_failure_writes();
"""


def test_a_job_whose_failure_cannot_be_written_is_rescued_to_dead_not_left_running(
    make_app, pg: psycopg.Connection
) -> None:
    """The database refuses every write of the failure ("interval out of range", as a dead
    letter time beyond timestamptz's range once did): the worker stops renewing the job's
    lease, so the rescuer ends it dead, and the worker and its threads go on."""
    pg.execute(REFUSE_FAILURE_WRITES)
    app = make_app(lease=1, heartbeat_interval=0.3)
    app.queue(QUEUE, workers=1, jobs=[HostileSettingsJob, HostileSettingsFails])
    failing = HostileSettingsFails.enqueue()
    worker = start(app)
    dead = wait_until(
        lambda: (r := app.store.get_job(failing)) and r.status is JobStatus.DEAD and r,
        timeout=60,
        what="the job whose failure cannot be written rescued to dead",
    )
    assert dead.dead_reason == "lease expired on the last attempt"
    after = HostileSettingsJob.enqueue(n=2)
    wait_until(lambda: app.store.get_job(after) is None, timeout=30, what="a later job done")
    assert worker.maintainer.running and worker.heartbeat.running
