"""Settings: defaults, validation, durations, and the file < environment < code precedence.

Pure Python: no database is needed.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from joobq_sql.errors import ConfigurationError
from joobq_sql.settings import QueueConfig, Settings, load_toml, mask_password, parse_duration

DAY = 86400.0


def write(tmp_path: Path, text: str, name: str = "joobq.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and normalization ---------------------------------------------------------------


def test_defaults_are_the_documented_values() -> None:
    assert Settings().describe() == {
        "database_url": None,
        "schema": "joobq",
        "default_queue": "default",
        "retries": 3,
        "expires": 3 * DAY,
        "timeout": None,
        "dead_letter_ttl": 7 * DAY,
        "keep_completed": None,
        "worker_batch_size": 100,
        "prefetch": 0,
        "lease": 30.0,
        "heartbeat_interval": None,
        "poll_interval": 1.0,
        "notify": True,
        "maintenance_interval": 10.0,
        "shutdown_grace": 30.0,
        "retry_jitter": 0.1,
        "max_backoff": 3600.0,
        "pool_size": None,
        "error_window": 300.0,
        "error_alert_threshold": 10,
        "restart_limit": 5,
        "restart_cooldown": 5.0,
        "unrunnable_grace": 3600.0,
        "self_vacuum": True,
        "self_vacuum_threshold": 0.1,
        "claim_ahead": 0.05,
    }


def test_heartbeat_defaults_to_a_third_of_the_lease() -> None:
    assert Settings(lease=60).heartbeat_seconds == 20.0
    assert Settings(lease=60, heartbeat_interval="5s").heartbeat_seconds == 5.0


def test_durations_are_stored_as_float_seconds_whatever_form_they_are_given_in() -> None:
    settings = Settings(
        lease=timedelta(minutes=2), timeout="1h30m", dead_letter_ttl=90, expires=1.5
    )
    assert (settings.lease, settings.timeout, settings.dead_letter_ttl, settings.expires) == (
        120.0,
        5400.0,
        90.0,
        1.5,
    )
    assert all(isinstance(v, float) for v in (settings.lease, settings.dead_letter_ttl))


def test_keep_completed_of_zero_means_no_retention() -> None:
    assert Settings(keep_completed=0).keep_completed is None
    assert Settings(keep_completed="1h").keep_completed == 3600.0


def test_unrunnable_grace_is_a_duration_and_zero_means_dead_at_once() -> None:
    assert Settings(unrunnable_grace="30m").unrunnable_grace == 1800.0
    assert Settings(unrunnable_grace=0).unrunnable_grace == 0.0
    assert Settings.build(environ={"JOOBQ_UNRUNNABLE_GRACE": "2h"})[0].unrunnable_grace == 7200.0


def test_none_is_accepted_where_documented() -> None:
    settings = Settings(expires=None, timeout=None, pool_size=None, heartbeat_interval=None)
    assert (settings.expires, settings.timeout, settings.pool_size) == (None, None, None)


# --- validation ---------------------------------------------------------------------------------

BAD_VALUES = [
    ("retries", -1),
    ("retries", True),
    ("retries", 2.0),
    ("retries", "3"),
    ("expires", 0),
    ("expires", -5),
    ("timeout", 0),
    ("timeout", "soon"),
    ("dead_letter_ttl", 0),
    ("dead_letter_ttl", None),
    ("keep_completed", -1),
    ("worker_batch_size", 0),
    ("worker_batch_size", 1001),
    ("worker_batch_size", False),
    ("lease", 0.5),
    ("lease", "500ms"),
    ("heartbeat_interval", 0),
    ("heartbeat_interval", 30),
    ("heartbeat_interval", 45),
    ("poll_interval", 0),
    ("poll_interval", 3601),
    ("poll_interval", float("nan")),
    ("maintenance_interval", 0),
    ("shutdown_grace", -1),
    ("retry_jitter", -0.1),
    ("retry_jitter", 1.5),
    ("retry_jitter", True),
    ("max_backoff", 0),
    ("max_backoff", float("inf")),
    ("pool_size", 0),
    ("error_window", 0),
    ("error_alert_threshold", 0),
    ("restart_limit", 0),
    ("restart_cooldown", timedelta(seconds=-1)),
    ("unrunnable_grace", -1),
    ("unrunnable_grace", "soon"),
    ("unrunnable_grace", None),
    ("notify", "false"),
    ("notify", 1),
    ("schema", "Bad-Name"),
    ("schema", ""),
    ("default_queue", "tab\there"),
    ("default_queue", 7),
]


@pytest.mark.parametrize(("setting", "value"), BAD_VALUES, ids=lambda v: repr(v))
def test_a_bad_value_raises_configuration_error_naming_the_setting_and_value(
    setting: str, value: object
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(**{setting: value})  # type: ignore[arg-type]
    assert setting in str(caught.value)
    assert repr(value) in str(caught.value)


def test_an_empty_default_queue_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"^default_queue must not be empty$"):
        Settings(default_queue="")


def test_a_bad_value_message_says_what_is_valid() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^worker_batch_size must be an integer in 1\.\.1000, got 0$"
    ):
        Settings(worker_batch_size=0)


def test_heartbeat_interval_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ConfigurationError, match=r"heartbeat_interval .* < lease \(10 s\)"):
        Settings(lease=10, heartbeat_interval=10)


def test_database_url_errors_do_not_echo_the_value() -> None:
    with pytest.raises(ConfigurationError, match="database_url") as caught:
        Settings(database_url=b"postgresql://u:secret@h/db")  # type: ignore[arg-type]
    assert "secret" not in str(caught.value)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Settings(retries=-1)


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("3d", 3 * DAY),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("1h 30m 15s", 5415.0),
        ("2H", 7200.0),
        (" 45 ", 45.0),
        ("0.25", 0.25),
        ("0s", 0.0),
    ],
)
def test_parse_duration_reads_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text, setting="lease") == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "seconds"), [(timedelta(minutes=1), 60.0), (2, 2.0), (0.5, 0.5)])
def test_parse_duration_takes_timedeltas_and_numbers_as_seconds(
    value: object, seconds: float
) -> None:
    assert parse_duration(value, setting="lease") == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ten",
        "5x",
        "m",
        "1h30",
        "-5s",
        "5 minutes",
        "1e3",
        "inf",
        "nan",
        "5m s",
        True,
        None,
        [1],
    ],
    ids=repr,
)
def test_parse_duration_rejects_anything_else_naming_the_setting(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^poll_interval must be a duration"):
        parse_duration(value, setting="poll_interval")


def test_parse_duration_rejects_negative_durations() -> None:
    with pytest.raises(ConfigurationError, match=r"timeout must be a duration >= 0 s, got -1"):
        parse_duration(-1, setting="timeout")


# --- environment ----------------------------------------------------------------------------------


def test_env_overrides_are_parsed_into_typed_values() -> None:
    found = Settings.from_env(
        {
            "JOOBQ_WORKER_BATCH_SIZE": "50",
            "JOOBQ_EXPIRES": "3d",
            "JOOBQ_LEASE": "45",
            "JOOBQ_RETRY_JITTER": "0.5",
            "JOOBQ_SCHEMA": "jobs",
        }
    )
    assert found == {
        "worker_batch_size": 50,
        "expires": 3 * DAY,
        "lease": 45.0,
        "retry_jitter": 0.5,
        "schema": "jobs",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        ("on", True),
        ("off", False),
    ],
)
def test_env_bools_accept_the_usual_spellings(text: str, expected: bool) -> None:
    assert Settings.from_env({"JOOBQ_NOTIFY": text}) == {"notify": expected}


@pytest.mark.parametrize("text", ["none", "None", "", "null"])
def test_env_none_or_empty_means_none_where_none_is_allowed(text: str) -> None:
    assert Settings.from_env({"JOOBQ_TIMEOUT": text, "JOOBQ_POOL_SIZE": text}) == {
        "timeout": None,
        "pool_size": None,
    }


def test_env_database_url_prefers_joobq_database_url_over_database_url() -> None:
    both = {"JOOBQ_DATABASE_URL": "postgresql://a/x", "DATABASE_URL": "postgresql://b/y"}
    assert Settings.from_env(both) == {"database_url": "postgresql://a/x"}
    assert Settings.from_env({"DATABASE_URL": "postgresql://b/y"}) == {
        "database_url": "postgresql://b/y"
    }
    assert Settings.from_env({"JOOBQ_DATABASE_URL": "", "DATABASE_URL": ""}) == {}


def test_env_variables_of_other_tools_are_ignored() -> None:
    env = {
        "JOOBQ_TEST_DATABASE_URL": "postgresql://t/t",
        "JOOBQ_EMBEDDED_DIR": "/tmp/pg",
        "JOOBQ_API_TOKEN": "secret",
        "JOOBQ_CONFIG": "joobq.toml",
        "PATH": "/usr/bin",
    }
    assert Settings.from_env(env) == {}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("JOOBQ_WORKER_BATCH_SIZE", "ten", "JOOBQ_WORKER_BATCH_SIZE='ten' is not an integer"),
        ("JOOBQ_RETRIES", "", "JOOBQ_RETRIES='' is not an integer"),
        ("JOOBQ_NOTIFY", "maybe", "JOOBQ_NOTIFY='maybe' is not a boolean"),
        ("JOOBQ_LEASE", "30 seconds", "JOOBQ_LEASE='30 seconds' is not a duration"),
        ("JOOBQ_RETRY_JITTER", "lots", "JOOBQ_RETRY_JITTER='lots' is not a number"),
        ("JOOBQ_DEAD_LETTER_TTL", "none", "JOOBQ_DEAD_LETTER_TTL='none' is not a duration"),
    ],
)
def test_env_value_that_does_not_parse_names_the_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match="^" + message.replace("(", r"\(")):
        Settings.from_env({variable: value})


# --- TOML files ---------------------------------------------------------------------------------

FULL_FILE = """
[joobq]
database_url = "postgresql+psycopg://app@db/app"
retries = 5
expires = "2d"
lease = 60
heartbeat_interval = "10s"
notify = false
timeout = "none"

[[joobq.queues]]
name = "mail"
workers = 10
jobs = ["myapp.jobs:SendEmail", "myapp.jobs:SendSms"]
throttle = {limit = 10, period = "1s"}

[[joobq.queues]]
name = "reports"
workers = 2

[tool.other]
ignored = true
"""


def test_toml_file_gives_settings_with_durations_parsed(tmp_path: Path) -> None:
    values, _ = load_toml(write(tmp_path, FULL_FILE))
    assert values == {
        "database_url": "postgresql+psycopg://app@db/app",
        "retries": 5,
        "expires": 2 * DAY,
        "lease": 60,
        "heartbeat_interval": 10.0,
        "notify": False,
        "timeout": None,
    }
    assert Settings(**values).lease == 60.0


def test_toml_file_declares_queues_with_jobs_and_throttle(tmp_path: Path) -> None:
    _, queues = load_toml(write(tmp_path, FULL_FILE))
    assert queues == [
        QueueConfig(
            name="mail",
            workers=10,
            jobs=("myapp.jobs:SendEmail", "myapp.jobs:SendSms"),
            throttle_limit=10,
            throttle_period=1.0,
        ),
        QueueConfig(name="reports", workers=2),
    ]


def test_toml_unknown_key_names_the_key_the_file_and_the_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[joobq]\nworker_batch = 5\n")
    with pytest.raises(ConfigurationError) as caught:
        load_toml(path)
    message = str(caught.value)
    assert "'worker_batch'" in message and str(path) in message
    assert "worker_batch_size" in message and "queues" in message


def test_toml_unknown_queue_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[[joobq.queues]]\nname = "mail"\nworkers = 1\nthreads = 4\n')
    with pytest.raises(ConfigurationError, match=r"queue 'mail': unknown key 'threads'"):
        load_toml(path)


def test_toml_that_does_not_parse_names_the_path_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[joobq]\nretries = 3\nlease = = 4\n")
    with pytest.raises(ConfigurationError, match=r"is not readable TOML") as caught:
        load_toml(path)
    assert str(path) in str(caught.value) and "line 3" in str(caught.value)


def test_toml_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        load_toml(path)
    assert str(path) in str(caught.value)


def test_toml_without_a_joobq_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no \[joobq\] table"):
        load_toml(write(tmp_path, "retries = 3\n"))


def test_toml_throttle_needs_both_limit_and_period(tmp_path: Path) -> None:
    path = write(tmp_path, '[[joobq.queues]]\nname = "mail"\nworkers = 1\nthrottle = {limit = 5}\n')
    with pytest.raises(ConfigurationError, match=r"queue 'mail': a throttle needs both"):
        load_toml(path)


def test_toml_queue_declared_twice_is_an_error(tmp_path: Path) -> None:
    queue = '[[joobq.queues]]\nname = "mail"\nworkers = 1\n'
    with pytest.raises(ConfigurationError, match="declared twice"):
        load_toml(write(tmp_path, queue + queue))


# --- queues -------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, -1])
def test_a_queue_needs_at_least_one_worker(workers: int) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"^queue 'mail': workers must be >= 1, got {workers}$"
    ):
        QueueConfig(name="mail", workers=workers)


def test_a_queue_with_zero_workers_in_a_file_names_the_file_and_queue(tmp_path: Path) -> None:
    path = write(tmp_path, '[[joobq.queues]]\nname = "mail"\nworkers = 0\n')
    with pytest.raises(
        ConfigurationError, match=r"queue 'mail': workers must be >= 1, got 0"
    ) as caught:
        load_toml(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("reference", ["myapp.jobs.SendEmail", "myapp:", ":Send", "a b:C"])
def test_a_queue_job_must_be_a_module_colon_class_reference(reference: str) -> None:
    with pytest.raises(ConfigurationError, match=r"package\.module:ClassName"):
        QueueConfig(name="mail", workers=1, jobs=(reference,))


def test_a_queue_throttle_period_accepts_durations() -> None:
    queue = QueueConfig(name="mail", workers=1, throttle_limit=3, throttle_period="500ms")
    assert queue.throttle_period == 0.5


# --- precedence -----------------------------------------------------------------------------------


def test_precedence_is_defaults_then_file_then_environment_then_code(tmp_path: Path) -> None:
    path = write(tmp_path, "[joobq]\nretries = 5\nlease = 60\nworker_batch_size = 20\n")
    env = {"JOOBQ_LEASE": "90s", "JOOBQ_WORKER_BATCH_SIZE": "40"}
    settings, _ = Settings.build(config_file=path, environ=env, worker_batch_size=80)
    assert settings.retries == 5  # file over default
    assert settings.lease == 90.0  # environment over file
    assert settings.worker_batch_size == 80  # code over environment
    assert settings.schema == "joobq"  # default where nothing else speaks


def test_build_reads_the_file_named_by_joobq_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[joobq]\nretries = 7\n[[joobq.queues]]\nname = "q"\nworkers = 3\n')
    settings, queues = Settings.build(environ={"JOOBQ_CONFIG": str(path)})
    assert settings.retries == 7
    assert queues == [QueueConfig(name="q", workers=3)]


def test_build_without_file_or_environment_gives_the_defaults() -> None:
    assert Settings.build(environ={}) == (Settings(), [])


def test_build_code_override_of_none_wins_over_the_environment() -> None:
    settings, _ = Settings.build(environ={"JOOBQ_TIMEOUT": "5s"}, timeout=None)
    assert settings.timeout is None


def test_build_names_the_variable_that_set_an_out_of_range_value() -> None:
    with pytest.raises(ConfigurationError, match=r"got 0 \(set by JOOBQ_WORKER_BATCH_SIZE\)$"):
        Settings.build(environ={"JOOBQ_WORKER_BATCH_SIZE": "0"})


def test_build_names_the_file_that_set_an_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[joobq]\nlease = 0\n")
    with pytest.raises(ConfigurationError, match=r"^lease must be .*set by config file") as caught:
        Settings.build(config_file=path, environ={})
    assert str(path) in str(caught.value)


def test_build_unknown_keyword_lists_the_valid_names() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown setting 'worker_count'.*worker_batch_size"
    ):
        Settings.build(environ={}, worker_count=3)


# --- describe -------------------------------------------------------------------------------------


def test_describe_masks_the_database_password_and_is_json_ready() -> None:
    settings = Settings(database_url="postgresql+psycopg://joe:hunter2@db:5432/app", timeout="2s")
    described = settings.describe()
    assert described["database_url"] == "postgresql+psycopg://joe:***@db:5432/app"
    assert described["timeout"] == 2.0
    assert "hunter2" not in json.dumps(described)


def test_repr_does_not_show_the_database_password() -> None:
    assert "hunter2" not in repr(Settings(database_url="postgresql://joe:hunter2@db/app"))


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://joe:p@ss@db/app", "postgresql://joe:***@db/app"),
        (
            "postgresql://db/app?user=joe&password=hunter2",
            "postgresql://db/app?user=joe&password=***",
        ),
        ("host=db user=joe password=hunter2", "host=db user=joe password=***"),
        ("postgresql://joe@db:5432/app", "postgresql://joe@db:5432/app"),
    ],
)
def test_mask_password_hides_every_written_form_of_a_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked


@pytest.mark.parametrize("value", [-1, 10001, 1.5, True])
def test_prefetch_must_be_an_integer_in_range(value: object) -> None:
    with pytest.raises(ConfigurationError, match="prefetch"):
        Settings(prefetch=value)  # type: ignore[arg-type]


def test_the_readme_toml_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the README has one TOML example"
    values, queues = load_toml(write(tmp_path, blocks[0]))
    assert values and [(q.name, q.mode) for q in queues] == [
        ("mail", "threads"),
        ("fetch", "async"),
    ]
