"""A FastAPI application that enqueues a job inside its request's database transaction.

    python examples/fastapi_signup.py        # drives the app with FastAPI's TestClient, then exits
    uvicorn examples.fastapi_signup:api      # serves it (JOOBQ_DATABASE_URL, else embedded)

``POST /signups`` inserts a user and enqueues ``SendWelcome`` in the same AsyncSession
transaction, so the job exists if and only if the user does: a refused signup rolls back after
the enqueue and leaves no job behind. The lifespan starts a worker whose "mail" queue runs in
async mode (many ``async def perform`` jobs at once on one event loop); each welcome it sends is
recorded in the ``welcomes`` table, which ``GET /welcomes`` lists.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from joobq_sql import Job, JoobQ
from joobq_sql.migrate import upgrade


def database_url() -> str:
    url = os.environ.get("JOOBQ_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        from joobq_sql.embedded import ensure_database

        url = ensure_database()
    # The asyncio engine needs psycopg named (plain postgresql:// means psycopg2 to SQLAlchemy).
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)


DATABASE_URL = database_url()


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


engine = create_async_engine(DATABASE_URL)
sessions = async_sessionmaker(engine, expire_on_commit=False)

# Jobs run on the worker's own event loop, and pooled asyncio connections belong to the loop
# that opened them: the jobs use an engine of their own, without a pool.
jobs_engine = create_async_engine(DATABASE_URL, poolclass=NullPool)


class SendWelcome(Job):
    queue = "mail"
    retries = 3
    email: str

    async def perform(self) -> None:
        await asyncio.sleep(0.05)  # stands in for the call to the mail service
        async with AsyncSession(jobs_engine) as session, session.begin():
            session.add(Welcome(email=self.email))


jobs = JoobQ(database_url=DATABASE_URL, poll_interval=0.5)
jobs.queue("mail", workers=50, jobs=[SendWelcome], mode="async")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await asyncio.to_thread(upgrade, DATABASE_URL)  # joobq's tables; idempotent
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    worker = await asyncio.to_thread(jobs.start)
    try:
        yield
    finally:
        await asyncio.to_thread(worker.stop)
        await jobs.aclose()
        await engine.dispose()
        await jobs_engine.dispose()


api = FastAPI(lifespan=lifespan)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


class Signup(BaseModel):
    email: str


@api.post("/signups", status_code=201)
async def sign_up(
    signup: Signup, session: Annotated[AsyncSession, Depends(get_session)]
) -> dict[str, str]:
    try:
        async with session.begin():  # one transaction: the user and the job, or neither
            session.add(User(email=signup.email))
            await session.flush()
            jid = await SendWelcome.enqueue_async(email=signup.email, connection=session)
            if signup.email.endswith("@blocked.example"):
                # Raised inside the transaction: it rolls back, the enqueued job with it.
                raise HTTPException(422, f"{signup.email} may not sign up")
    except IntegrityError:
        raise HTTPException(409, f"{signup.email} has signed up already") from None
    return {"email": signup.email, "welcome_job": str(jid)}


@api.get("/welcomes")
async def welcomes(session: Annotated[AsyncSession, Depends(get_session)]) -> list[str]:
    result = await session.execute(select(Welcome.email).order_by(Welcome.email))
    return list(result.scalars())


def main() -> None:
    from fastapi.testclient import TestClient

    with TestClient(api) as client:
        for email in ("ada@example.com", "grace@example.com"):
            response = client.post("/signups", json={"email": email})
            print(f"signup {email}: {response.status_code}")
        for email in ("mallory@blocked.example", "ada@example.com"):
            response = client.post("/signups", json={"email": email})
            print(f"signup {email}: {response.status_code} {response.json()['detail']}")
        deadline = time.monotonic() + 20
        while len(sent := client.get("/welcomes").json()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"welcomes sent: {', '.join(sent)}")
    stats = jobs.stats()["mail"]
    print(f"mail: completed={stats.totals['completed']} waiting={stats.waiting}")
    jobs.close()
    if sent != ["ada@example.com", "grace@example.com"] or stats.totals["completed"] != 2:
        raise SystemExit("the welcomes are not what the signups asked for")


if __name__ == "__main__":
    main()
