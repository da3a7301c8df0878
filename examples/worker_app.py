"""A JoobQ application with a queue, retries and a delayed job, run until its jobs are done.

    python examples/worker_app.py          # JOOBQ_DATABASE_URL, else the embedded PostgreSQL

In production you would call `app.run()`, which blocks until SIGTERM/SIGINT and then drains.
"""

from __future__ import annotations

import time
from datetime import timedelta

from joobq_sql import Job, JoobQ


class SendEmail(Job):
    queue = "mail"
    retries = 3
    to: str
    subject: str = "hello"

    def perform(self) -> None:
        print(f"  sent {self.subject!r} to {self.to} (attempt {self.attempt})")


class FlakyReport(Job):
    queue = "mail"
    name: str

    def perform(self) -> None:
        if self.attempt < 2:
            raise ConnectionError("the report server is busy")  # retried after 1 s
        print(f"  built report {self.name} on attempt {self.attempt}")


app = JoobQ(poll_interval=0.5)
app.queue("mail", workers=4, jobs=[SendEmail, FlakyReport])


def main() -> None:
    SendEmail.enqueue(to="ada@example.com")
    SendEmail(to="grace@example.com", subject="welcome").enqueue()
    SendEmail.delay(timedelta(seconds=1), to="edsger@example.com", subject="later")
    FlakyReport.enqueue(name="weekly")

    worker = app.start()  # app.run() would block and handle signals instead
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = app.stats()["mail"]
            if stats.totals["completed"] >= 4 and stats.waiting + stats.due_later == 0:
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    stats = app.stats()["mail"]
    print(
        f"mail: completed={stats.totals['completed']} retried={stats.totals['retried']} "
        f"dead={stats.totals['dead']}"
    )
    app.close()


if __name__ == "__main__":
    main()
