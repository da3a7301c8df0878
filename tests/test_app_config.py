"""Configuring the application: in code, from JOOBQ_* variables, from a TOML file; and the
error monitor's alert."""

from __future__ import annotations

from pathlib import Path

import pytest

from joobq_sql import ConfigurationError, Job, JoobQ, MemoryStore
from joobq_sql.runtime.error_monitor import AlertEvent
from tests.helpers import wait_until
from tests.runtime_support import start


class CfgMail(Job):
    queue = "mail"
    to: str

    def perform(self) -> None:
        pass


class CfgBroken(Job):
    def perform(self) -> None:
        raise RuntimeError("broken")


def test_a_toml_file_configures_settings_and_queues(tmp_path: Path) -> None:
    config = tmp_path / "joobq.toml"
    config.write_text(
        """
[joobq]
worker_batch_size = 25
expires = "2h"
notify = false

[[joobq.queues]]
name = "mail"
workers = 3
jobs = ["tests.test_app_config:CfgMail"]
throttle = { limit = 10, period = "1s" }
"""
    )
    app = JoobQ(store=MemoryStore(), config_file=config)
    assert (app.settings.worker_batch_size, app.settings.expires, app.settings.notify) == (
        25,
        7200.0,
        False,
    )
    mail = app.queues["mail"]
    assert (mail.workers, mail.job_classes, mail.throttle_limit, mail.throttle_period) == (
        3,
        (CfgMail,),
        10,
        1.0,
    )


class CfgAsyncPing(Job):
    async def perform(self) -> None:
        pass


def test_a_toml_queue_can_run_in_async_mode_and_only_with_async_jobs(tmp_path: Path) -> None:
    config = tmp_path / "joobq.toml"
    queue = '[joobq]\n[[joobq.queues]]\nname = "pings"\nworkers = 200\nmode = "async"\n'
    config.write_text(queue + 'jobs = ["tests.test_app_config:CfgAsyncPing"]\n')
    app = JoobQ(store=MemoryStore(), config_file=config)
    assert (app.queues["pings"].mode, app.queues["pings"].workers) == ("async", 200)

    config.write_text(queue + 'jobs = ["tests.test_app_config:CfgMail"]\n')
    with pytest.raises(ConfigurationError, match=r"CfgMail\.perform must be an `async def`"):
        JoobQ(store=MemoryStore(), config_file=config)

    config.write_text(queue.replace('"async"', '"fibers"'))
    with pytest.raises(ConfigurationError, match=r"mode must be one of \('threads', 'async'\)"):
        JoobQ(store=MemoryStore(), config_file=config)


def test_environment_variables_override_the_file_and_code_overrides_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "joobq.toml"
    config.write_text("[joobq]\nretries = 5\npoll_interval = 2\n")
    monkeypatch.setenv("JOOBQ_RETRIES", "7")
    app = JoobQ(store=MemoryStore(), config_file=config, poll_interval=0.5)
    assert (app.settings.retries, app.settings.poll_interval) == (7, 0.5)


def test_a_bad_environment_value_fails_at_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOOBQ_WORKER_BATCH_SIZE", "ten")
    with pytest.raises(ConfigurationError, match="JOOBQ_WORKER_BATCH_SIZE"):
        JoobQ(store=MemoryStore())


def test_a_queue_naming_a_class_that_does_not_exist_fails_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "joobq.toml"
    config.write_text(
        '[joobq]\n[[joobq.queues]]\nname = "mail"\nworkers = 1\njobs = ["tests.nowhere:Nothing"]\n'
    )
    with pytest.raises(ConfigurationError, match=r"tests\.nowhere:Nothing"):
        JoobQ(store=MemoryStore(), config_file=config)


def test_app_defaults_apply_to_classes_that_do_not_set_their_own() -> None:
    app = JoobQ(store=MemoryStore(), retries=6, expires=60)
    app.queue("mail", workers=1, jobs=[CfgMail])
    row = app.new_job(CfgMail(to="a@example.com"))
    assert (row.max_retries, row.expires_in, row.queue) == (6, 60.0, "mail")


def test_the_error_monitor_alerts_once_at_its_threshold(make_app) -> None:
    alerts: list[AlertEvent] = []
    app = make_app(error_alert_threshold=3, retries=0, on_error_alert=alerts.append)
    app.queue("default", workers=2, jobs=[CfgBroken])
    CfgBroken.batch_enqueue([CfgBroken() for _ in range(5)])
    start(app)
    wait_until(lambda: app.errors.total() == 5, timeout=10)
    assert len(alerts) == 1 and alerts[0].count == 3
    assert alerts[0].by_queue == {"default": 3}


def test_the_memory_store_runs_the_same_runtime() -> None:
    app = JoobQ(store=MemoryStore(), poll_interval=0.05)
    app.queue("mail", workers=2, jobs=[CfgMail])
    jid = CfgMail.enqueue(to="a@example.com")
    worker = app.start()
    try:
        wait_until(lambda: app.store.get_job(jid) is None, timeout=5)
        assert app.stats()["mail"].totals["completed"] == 1
    finally:
        worker.stop()
