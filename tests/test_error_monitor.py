"""Error details stored on a failed job, their error_type, and the error monitor (no database)."""

from __future__ import annotations

import errno
import json
import logging
import pickle
import socket
import threading
import uuid
from datetime import datetime, timedelta

import psycopg
import psycopg.errors
import pytest
import sqlalchemy.exc

from joobq_sql.errors import ConfigurationError, JobDecodeError, UnknownJobTypeError
from joobq_sql.runtime.error_details import ERROR_TYPES, classify, error_details
from joobq_sql.runtime.error_monitor import AlertEvent, ErrorMonitor


class PaymentTimeout(Exception):
    """A user's error named for a timeout, with no timeout base class."""


class InvalidCoupon(Exception):
    """A user's error named for bad input."""


class BadAmount(ValueError):
    """A user's ValueError subclass with no telling name."""


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def raised(exc: BaseException) -> BaseException:
    """`exc` after a real raise, so that it has a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def details(queue: str = "default", error_type: str = "validation", **extra: object) -> dict:
    return {"queue": queue, "error_type": error_type, **extra}


# --- classify -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), "timeout"),
        (PaymentTimeout(), "timeout"),
        (psycopg.errors.QueryCanceled(), "timeout"),
        (sqlalchemy.exc.TimeoutError(), "timeout"),
        (ConnectionRefusedError(), "connection"),
        (socket.gaierror(), "connection"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "connection"),
        (psycopg.OperationalError(), "connection"),
        (psycopg.errors.SerializationFailure(), "connection"),
        (sqlalchemy.exc.DisconnectionError(), "connection"),
        (json.JSONDecodeError("Expecting value", "", 0), "serialization"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "serialization"),
        (pickle.UnpicklingError(), "serialization"),
        (JobDecodeError(), "serialization"),
        (ConfigurationError(), "configuration"),
        (UnknownJobTypeError(), "configuration"),
        (ModuleNotFoundError(), "configuration"),
        (ValueError(), "validation"),
        (BadAmount(), "validation"),
        (InvalidCoupon(), "validation"),
        (psycopg.IntegrityError(), "validation"),
        (ZeroDivisionError(), "implementation"),
        (KeyError("k"), "implementation"),
        (TypeError(), "implementation"),
        (NotImplementedError(), "implementation"),
        (AttributeError(), "implementation"),
        (Exception(), "unknown"),
        (RuntimeError(), "unknown"),
        (FileNotFoundError(), "unknown"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_classify_maps_an_exception_class_to_its_error_type(
    exc: BaseException, expected: str
) -> None:
    assert classify(exc) == expected
    assert expected in ERROR_TYPES


def test_classify_looks_through_a_sqlalchemy_wrapper_at_the_driver_error() -> None:
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.errors.QueryCanceled())
    assert classify(wrapped) == "timeout"


# --- error_details --------------------------------------------------------------------------


def test_error_details_records_the_job_the_error_and_the_process() -> None:
    jid = uuid.uuid4()
    before = datetime.now().astimezone()
    found = error_details(
        raised(json.JSONDecodeError("Expecting value", "x", 0)),
        jid=jid,
        queue="mail",
        job_type="SendMail",
        attempt=3,
        worker_id="worker-7",
    )
    assert found["error_class"] == "json.decoder.JSONDecodeError"
    assert found["message"] == "Expecting value: line 1 column 1 (char 0)"
    assert found["error_type"] == "serialization"
    assert (found["attempt"], found["retry_count"]) == (3, 2)
    assert (found["jid"], found["queue"], found["job_type"]) == (str(jid), "mail", "SendMail")
    assert found["worker_id"] == "worker-7"
    assert found["host"] == socket.gethostname()
    assert isinstance(found["pid"], int)
    failed_at = datetime.fromisoformat(found["failed_at"])
    assert failed_at.utcoffset() == timedelta(0)
    assert before <= failed_at <= datetime.now().astimezone()


def test_error_details_names_a_builtin_class_without_its_module() -> None:
    found = error_details(
        raised(ValueError("x")), jid="j", queue="q", job_type="T", attempt=1, worker_id="w"
    )
    assert found["error_class"] == "ValueError"
    assert found["retry_count"] == 0


def descend(depth: int) -> None:
    """Raise from `depth` frames down; alternating functions, which Python does not collapse."""
    if depth == 0:
        raise ZeroDivisionError("at the bottom")
    descend_again(depth - 1)


def descend_again(depth: int) -> None:
    descend(depth)


def test_error_details_keep_the_last_traceback_lines_of_a_deep_stack() -> None:
    try:
        descend(50)
    except ZeroDivisionError as caught:
        exc = caught
    found = error_details(exc, jid="j", queue="q", job_type="T", attempt=1, worker_id="w")
    lines = found["backtrace"].splitlines()
    assert len(lines) == 21
    assert lines[0].startswith("... ") and lines[0].endswith(" earlier lines cut")
    assert int(lines[0].split()[1]) > 100
    assert lines[-1] == "ZeroDivisionError: at the bottom"
    assert 'raise ZeroDivisionError("at the bottom")' in found["backtrace"]


def test_error_details_keep_a_short_traceback_whole() -> None:
    found = error_details(
        raised(ValueError("short")), jid="j", queue="q", job_type="T", attempt=1, worker_id="w"
    )
    assert found["backtrace"].startswith("Traceback (most recent call last):")
    assert "earlier lines cut" not in found["backtrace"]


def test_error_details_cut_a_long_message_to_2000_characters() -> None:
    found = error_details(
        ValueError("x" * 10_000), jid="j", queue="q", job_type="T", attempt=1, worker_id="w"
    )
    assert len(found["message"]) == 2000
    assert found["message"].startswith("x" * 1000)


def test_error_details_record_the_cause_of_a_chained_error() -> None:
    try:
        try:
            {}["missing"]
        except KeyError as key_error:
            raise RuntimeError("lookup failed") from key_error
    except RuntimeError as caught:
        exc = caught
    found = error_details(exc, jid="j", queue="q", job_type="T", attempt=1, worker_id="w")
    assert found["cause"] == "KeyError('missing')"


def test_error_details_have_no_cause_when_it_was_raised_from_none() -> None:
    try:
        try:
            {}["missing"]
        except KeyError:
            raise RuntimeError("lookup failed") from None
    except RuntimeError as caught:
        exc = caught
    found = error_details(exc, jid="j", queue="q", job_type="T", attempt=1, worker_id="w")
    assert found["cause"] is None


def test_error_details_have_no_cause_for_a_lone_error() -> None:
    found = error_details(
        raised(ValueError("alone")), jid="j", queue="q", job_type="T", attempt=1, worker_id="w"
    )
    assert found["cause"] is None


def test_error_details_survive_a_json_round_trip() -> None:
    exc = raised(psycopg.OperationalError("server closed the connection unexpectedly"))
    found = error_details(exc, jid=uuid.uuid4(), queue="q", job_type="T", attempt=2, worker_id="w")
    assert json.loads(json.dumps(found)) == found


# --- ErrorMonitor: construction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"window": 0}, "window"),
        ({"alert_threshold": 0}, "alert_threshold"),
        ({"recent_limit": 0}, "recent_limit"),
    ],
)
def test_monitor_rejects_a_bad_setting_by_name(kwargs: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ErrorMonitor(**kwargs)


# --- ErrorMonitor: recent ---------------------------------------------------------------------


def test_recent_lists_newest_first_up_to_the_limit() -> None:
    monitor = ErrorMonitor(clock=FakeClock())
    for n in range(5):
        monitor.record(details(n=n))
    assert [entry["n"] for entry in monitor.recent(3)] == [4, 3, 2]


def test_recent_keeps_only_the_recent_limit_newest_errors() -> None:
    monitor = ErrorMonitor(recent_limit=3, clock=FakeClock())
    for n in range(10):
        monitor.record(details(n=n))
    assert [entry["n"] for entry in monitor.recent(100)] == [9, 8, 7]


def test_recent_filters_by_queue_and_error_type() -> None:
    monitor = ErrorMonitor(clock=FakeClock())
    monitor.record(details("mail", "timeout", n=1))
    monitor.record(details("mail", "validation", n=2))
    monitor.record(details("billing", "timeout", n=3))
    assert [e["n"] for e in monitor.recent(queue="mail")] == [2, 1]
    assert [e["n"] for e in monitor.recent(error_type="timeout")] == [3, 1]
    assert [e["n"] for e in monitor.recent(queue="mail", error_type="timeout")] == [1]


def test_recent_returns_copies_the_caller_cannot_change() -> None:
    monitor = ErrorMonitor(clock=FakeClock())
    monitor.record(details(n=1))
    monitor.recent()[0]["n"] = 99
    assert monitor.recent()[0]["n"] == 1


# --- ErrorMonitor: windowed counts ------------------------------------------------------------


def test_counts_group_errors_by_type_and_by_queue() -> None:
    monitor = ErrorMonitor(clock=FakeClock())
    monitor.record(details("mail", "timeout"))
    monitor.record(details("mail", "validation"))
    monitor.record(details("billing", "timeout"))
    assert monitor.counts_by_type() == {"timeout": 2, "validation": 1}
    assert monitor.counts_by_queue() == {"mail": 2, "billing": 1}
    assert monitor.total() == 3


def test_counts_forget_errors_older_than_the_window() -> None:
    clock = FakeClock()
    monitor = ErrorMonitor(window=300, clock=clock)
    monitor.record(details("mail", "timeout"))
    clock.advance(200)
    monitor.record(details("billing", "validation"))
    clock.advance(100)  # the first error is now exactly 300 s old
    assert monitor.counts_by_type() == {"validation": 1}
    assert monitor.counts_by_queue() == {"billing": 1}
    clock.advance(200)
    assert monitor.total() == 0
    assert monitor.stats()["total_errors"] == 0


def test_counts_over_a_shorter_window_see_only_its_errors() -> None:
    clock = FakeClock()
    monitor = ErrorMonitor(window=300, clock=clock)
    monitor.record(details("mail", "timeout"))
    clock.advance(100)
    monitor.record(details("billing", "validation"))
    clock.advance(10)
    assert monitor.counts_by_type(window=60) == {"validation": 1}
    assert monitor.counts_by_queue(window=60) == {"billing": 1}
    assert monitor.total(window=60) == 1
    assert monitor.total() == 2


def test_counts_reject_a_window_longer_than_the_monitors() -> None:
    monitor = ErrorMonitor(window=300, clock=FakeClock())
    with pytest.raises(ValueError, match="window"):
        monitor.total(window=301)


def test_recent_still_lists_errors_that_left_the_window() -> None:
    clock = FakeClock()
    monitor = ErrorMonitor(window=300, clock=clock)
    monitor.record(details(n=1))
    clock.advance(1000)
    assert monitor.total() == 0
    assert [e["n"] for e in monitor.recent()] == [1]


def test_stats_summarize_the_window() -> None:
    clock = FakeClock()
    monitor = ErrorMonitor(window=300, clock=clock)
    monitor.record(details("mail", "timeout"))
    clock.advance(400)
    monitor.record(details("mail", "timeout"))
    monitor.record(details("billing", "connection"))
    stats = monitor.stats()
    assert stats["total_errors"] == 2
    assert stats["window_seconds"] == 300
    assert stats["by_type"] == {"timeout": 1, "connection": 1}
    assert stats["by_queue"] == {"mail": 1, "billing": 1}
    assert stats["recent_count"] == 3
    json.dumps(stats)


def test_details_without_type_or_queue_count_as_unknown() -> None:
    monitor = ErrorMonitor(clock=FakeClock())
    monitor.record({"message": "no context"})
    assert monitor.counts_by_type() == {"unknown": 1}
    assert monitor.counts_by_queue() == {"unknown": 1}


# --- ErrorMonitor: alert ----------------------------------------------------------------------


def test_alert_fires_once_when_the_count_reaches_the_threshold() -> None:
    clock = FakeClock()
    events: list[AlertEvent] = []
    monitor = ErrorMonitor(window=300, alert_threshold=3, on_alert=events.append, clock=clock)
    monitor.record(details("mail", "timeout"))
    clock.advance(10)
    monitor.record(details("mail", "timeout"))
    assert events == []
    clock.advance(10)
    monitor.record(details("billing", "connection"))
    assert events == [
        AlertEvent(
            count=3,
            window=300.0,
            by_type={"timeout": 2, "connection": 1},
            by_queue={"mail": 2, "billing": 1},
            first_at=1000.0,
            last_at=1020.0,
        )
    ]


def test_alert_does_not_fire_again_while_the_count_stays_at_or_above_the_threshold() -> None:
    clock = FakeClock()
    events: list[AlertEvent] = []
    monitor = ErrorMonitor(window=300, alert_threshold=3, on_alert=events.append, clock=clock)
    for _ in range(50):
        monitor.record(details())
        clock.advance(1)
    assert len(events) == 1
    assert monitor.alerting


def test_alert_fires_again_after_the_count_falls_below_and_rises_to_the_threshold() -> None:
    clock = FakeClock()
    events: list[AlertEvent] = []
    monitor = ErrorMonitor(window=300, alert_threshold=3, on_alert=events.append, clock=clock)
    for _ in range(3):
        monitor.record(details())
    clock.advance(300)  # the three errors leave the window
    assert not monitor.alerting
    for _ in range(2):
        monitor.record(details())
    assert len(events) == 1
    monitor.record(details())
    assert [event.count for event in events] == [3, 3]


def test_a_raising_on_alert_is_logged_and_does_not_break_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: AlertEvent) -> None:
        raise RuntimeError("pager is down")

    monitor = ErrorMonitor(alert_threshold=1, on_alert=broken, clock=FakeClock())
    with caplog.at_level(logging.ERROR, logger="joobq_sql.error_monitor"):
        monitor.record(details(n=1))
    assert monitor.recent()[0]["n"] == 1
    assert monitor.total() == 1
    [log] = caplog.records
    assert log.name == "joobq_sql.error_monitor"
    assert log.exc_info is not None and "pager is down" in str(log.exc_info[1])


def test_on_alert_may_read_the_monitor_it_is_called_from() -> None:
    seen: list[int] = []

    def read_back(event: AlertEvent) -> None:
        seen.append(monitor.stats()["total_errors"])  # deadlocks if called under the lock

    monitor = ErrorMonitor(alert_threshold=2, on_alert=read_back, clock=FakeClock())
    monitor.record(details())
    monitor.record(details())
    assert seen == [2]


# --- ErrorMonitor: threads --------------------------------------------------------------------


def test_concurrent_records_from_eight_threads_are_all_counted() -> None:
    events: list[AlertEvent] = []
    monitor = ErrorMonitor(alert_threshold=5000, on_alert=events.append, clock=FakeClock())
    per_thread = 1000
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for _ in range(per_thread):
            monitor.record(details(queue=f"q{n}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert monitor.total() == 8 * per_thread
    assert monitor.counts_by_queue() == {f"q{n}": per_thread for n in range(8)}
    assert len(events) == 1
