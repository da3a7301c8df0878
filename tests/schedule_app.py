"""A worker application with a one-second recurring job, for scheduler tests in subprocesses.

JOOBQ_DATABASE_URL=... python -m tests.schedule_app
"""

from __future__ import annotations

import os
import sys

import psycopg
from sqlalchemy.engine import make_url

from joobq_sql import Job, JoobQ


def _dsn() -> str:
    url = make_url(os.environ["JOOBQ_DATABASE_URL"]).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class SchedTick(Job):
    queue = "ticks"

    def perform(self) -> None:
        with psycopg.connect(_dsn(), autocommit=True) as conn:
            conn.execute("INSERT INTO tick_log (jid) VALUES (%s)", (self.jid,))


app = JoobQ(poll_interval=0.2, maintenance_interval=1, shutdown_grace=5)
app.queue("ticks", workers=2, jobs=[SchedTick])
app.every(1, SchedTick, name="every-second")


def main() -> None:
    sys.exit(app.run())


if __name__ == "__main__":
    main()
