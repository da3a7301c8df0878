"""`joobq-sql web` as a subprocess: it serves the API, the dashboard and /metrics of an
application, and refuses to listen beyond loopback without a token (exit 2)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.cli_app import REPO_ROOT, assert_usage_error, cli_env, run_cli
from tests.helpers import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_a_non_loopback_host_without_a_token_is_bad_usage(host: str) -> None:
    result = run_cli(None, "web", "--host", host, "--port", "0")
    assert_usage_error(result, f"refusing to listen on '{host}' without a token", "JOOBQ_API_TOKEN")


@pytest.fixture
def web_process(database_url: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = cli_env(database_url, JOOBQ_API_TOKEN="cli-token")
    command = ["web", "--app", "tests.cli_app:app", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(
        [sys.executable, "-m", "joobq_sql", *command],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"joobq-sql web exited: {process.communicate()}")
        try:
            return httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout=30, interval=0.1, what="joobq-sql web to listen")
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.communicate()


def test_the_web_command_serves_an_applications_api_and_dashboard(
    web_process: tuple[str, subprocess.Popen[str]],
) -> None:
    base, process = web_process
    auth = {"Authorization": "Bearer cli-token"}
    assert httpx.get(f"{base}/joobq/health/check").status_code == 401
    assert httpx.get(f"{base}/joobq/health/check", headers=auth).json()["status"] == "ok"
    registry = httpx.get(f"{base}/joobq/jobs/registry", headers=auth).json()
    assert {"CliCountJob", "CliTypedJob"} <= {e["job_type"] for e in registry["job_types"]}
    created = httpx.post(
        f"{base}/joobq/jobs", json={"job_type": "CliTypedJob", "data": {"to": "x"}}, headers=auth
    )
    assert created.status_code == 201 and created.json()["queue"] == "cli"
    bad = httpx.post(
        f"{base}/joobq/jobs", json={"job_type": "CliTypedJob", "data": {"to": 1}}, headers=auth
    )
    assert bad.status_code == 422
    queues = httpx.get(f"{base}/joobq/queues", headers=auth).json()["queues"]
    assert {q["queue"]: q["waiting"] for q in queues}["cli"] == 1
    assert httpx.get(f"{base}/metrics", headers=auth).status_code == 200
    dashboard = httpx.get(f"{base}/", params={"token": "cli-token"}, follow_redirects=True)
    assert dashboard.status_code == 200 and 'data-queue="cli"' in dashboard.text
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_the_web_command_without_an_app_serves_the_database(database_url: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "joobq_sql", "web", "--port", str(port), "--log-level", "warning"],
        cwd=REPO_ROOT,
        env=cli_env(database_url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def health() -> int:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/joobq/health/check").status_code
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                return 0

        assert wait_until(health, timeout=30, what="the server to answer") == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        _out, err = process.communicate()
    assert f"serving on http://127.0.0.1:{port}/" in err


def test_an_allowed_hosts_entry_that_is_not_a_host_name_is_bad_usage() -> None:
    result = run_cli(None, "web", "--port", "0", "--allowed-hosts", "dash.example,http://x/")
    assert_usage_error(result, "'--allowed-hosts'", "'http://x/' is not a host name")


def test_the_web_command_answers_to_allowed_hosts_and_refuses_other_host_names(
    database_url: str,
) -> None:
    port = free_port()
    command = ["web", "--port", str(port), "--allowed-hosts", "dash.example"]
    process = subprocess.Popen(
        [sys.executable, "-m", "joobq_sql", *command, "--log-level", "warning"],
        cwd=REPO_ROOT,
        env=cli_env(database_url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def health() -> int:
            try:
                return httpx.get(f"{base}/joobq/health/check").status_code
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                return 0

        assert wait_until(health, timeout=30, what="the server to answer") == 200
        allowed = httpx.get(f"{base}/joobq/queues", headers={"Host": f"dash.example:{port}"})
        assert allowed.status_code == 200
        refused = httpx.get(f"{base}/joobq/queues", headers={"Host": f"evil.example:{port}"})
        assert refused.status_code == 403
        assert "Host 'evil.example:" in refused.json()["error"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        process.communicate()
