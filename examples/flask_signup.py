"""A Flask application (sync SQLAlchemy) that enqueues a job inside its request's transaction.

    python examples/flask_signup.py          # drives the app with Flask's test client, then exits
    flask --app examples.flask_signup run    # serves it; run the worker beside it with
    joobq-sql worker --app examples.flask_signup:jobs

``POST /signups`` inserts a user and enqueues ``SendWelcome`` in the same Session transaction:
the job exists if and only if the user does, so a refused signup (rolled back after the enqueue)
leaves no job. A worker (threaded queue) sends the welcomes and records each one in the
``welcomes`` table, which ``GET /welcomes`` lists.
"""

from __future__ import annotations

import os
import time

from flask import Flask, abort, request
from sqlalchemy import String, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from joobq_sql import Job, JoobQ
from joobq_sql.migrate import upgrade


def database_url() -> str:
    url = os.environ.get("JOOBQ_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        from joobq_sql.embedded import ensure_database

        url = ensure_database()
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)


DATABASE_URL = database_url()
engine = create_engine(DATABASE_URL)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "example_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)


class Welcome(Base):
    __tablename__ = "example_welcomes"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200))


class SendWelcome(Job):
    queue = "mail"
    retries = 3
    email: str

    def perform(self) -> None:
        with Session(engine) as session, session.begin():  # stands in for the mail service
            session.add(Welcome(email=self.email))


jobs = JoobQ(database_url=DATABASE_URL, poll_interval=0.5)
jobs.queue("mail", workers=4, jobs=[SendWelcome])

app = Flask(__name__)


@app.post("/signups")
def sign_up() -> tuple[dict[str, str], int]:
    email = str((request.get_json(silent=True) or {}).get("email", ""))
    if not email:
        abort(400, "email is required")
    try:
        with Session(engine) as session, session.begin():  # the user and the job, or neither
            session.add(User(email=email))
            session.flush()
            jid = SendWelcome.enqueue(email=email, connection=session)
            if email.endswith("@blocked.example"):
                # Raised inside the transaction: it rolls back, the enqueued job with it.
                abort(422, f"{email} may not sign up")
    except IntegrityError:
        abort(409, f"{email} has signed up already")
    return {"email": email, "welcome_job": str(jid)}, 201


@app.get("/welcomes")
def welcomes() -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Welcome.email).order_by(Welcome.email)))


def set_up() -> None:
    upgrade(DATABASE_URL)  # joobq's tables; idempotent
    Base.metadata.create_all(engine)


def main() -> None:
    set_up()
    worker = jobs.start()  # in production: `joobq-sql worker --app examples.flask_signup:jobs`
    try:
        client = app.test_client()
        for email in ("ada@example.com", "grace@example.com"):
            response = client.post("/signups", json={"email": email})
            print(f"signup {email}: {response.status_code}")
        for email in ("mallory@blocked.example", "ada@example.com"):
            response = client.post("/signups", json={"email": email})
            print(f"signup {email}: {response.status_code}")
        deadline = time.monotonic() + 20
        while len(sent := client.get("/welcomes").get_json()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"welcomes sent: {', '.join(sent)}")
    finally:
        worker.stop()
    stats = jobs.stats()["mail"]
    print(f"mail: completed={stats.totals['completed']} waiting={stats.waiting}")
    jobs.close()
    engine.dispose()
    if sent != ["ada@example.com", "grace@example.com"] or stats.totals["completed"] != 2:
        raise SystemExit("the welcomes are not what the signups asked for")


if __name__ == "__main__":
    main()
