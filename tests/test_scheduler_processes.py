"""Three worker processes run one every(1 s) schedule: one job per tick, never two."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_three_processes_enqueue_one_job_per_tick(
    database_url: str, pg: psycopg.Connection
) -> None:
    pg.execute("CREATE TABLE tick_log (jid uuid NOT NULL, at timestamptz DEFAULT now())")
    env = {**os.environ, "JOOBQ_DATABASE_URL": database_url}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.schedule_app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        wait_until(
            lambda: (
                pg.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = 'joobq-sql listener'"
                ).fetchone()[0]
                == 3
            ),
            timeout=30,
            what="three workers listening",
        )
        (t0,) = pg.execute("SELECT now()").fetchone()
        end = t0 + timedelta(seconds=10)
        wait_until(
            lambda: pg.execute(
                "SELECT count(*) FROM joobq.schedule_ticks WHERE tick >= %s", (end,)
            ).fetchone()[0],
            timeout=30,
            what="ten seconds of ticks",
        )
        window = "FROM joobq.schedule_ticks WHERE tick > %s AND tick <= %s"
        ticks = pg.execute(f"SELECT count(*) {window}", (t0, end)).fetchone()[0]
        assert 9 <= ticks <= 11
        wait_until(
            lambda: (
                pg.execute(
                    f"SELECT count(*) FROM tick_log WHERE jid IN (SELECT jid {window})", (t0, end)
                ).fetchone()[0]
                == ticks
            ),
            timeout=15,
            what="every tick's job performed",
        )
        performed, distinct = pg.execute(
            "SELECT count(*), count(DISTINCT jid) FROM tick_log"
            f" WHERE jid IN (SELECT jid {window})",
            (t0, end),
        ).fetchone()
        assert performed == distinct == ticks  # one job per tick, each run once
        assert all(w.poll() is None for w in workers)  # nobody crashed
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                assert w.wait(timeout=20) == 0
            except subprocess.TimeoutExpired:
                w.kill()
                raise
