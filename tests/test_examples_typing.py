"""The public API passes ``mypy --strict``: checked the way users see it, as an installed package
that ships py.typed, with a small typed program, the examples, and a program whose type errors
mypy must find (so the check cannot pass by seeing nothing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["fastapi_signup.py", "flask_signup.py", "cron_and_retries.py"]
EXAMPLES += ["test_with_memory_store.py"]

USER_PROGRAM = """
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from joobq_sql import (
    AsyncPostgresStore, AsyncStore, Job, JobRecord, JobStatus, JoobQ, MemoryStore, NewJob,
    PostgresStore, QueueStats, Store,
)


class Fetch(Job):
    queue = "fetch"
    timeout = timedelta(seconds=10)
    url: str
    tries: int = 0

    async def perform(self) -> None:
        await asyncio.sleep(0)


class Report(Job):
    name: str

    def perform(self) -> None:
        self.check_cancelled()


app = JoobQ(store=MemoryStore(), poll_interval=0.5)
app.queue("fetch", workers=200, jobs=[Fetch], mode="async")
app.queue("default", workers=2, jobs=[Report])
app.every(timedelta(minutes=5), Report, name="five-minutely")


async def sign_up(session: AsyncSession) -> list[UUID]:
    jid: UUID = await Fetch.enqueue_async(url="https://example.com", connection=session)
    later: UUID = await Fetch.delay_async(timedelta(seconds=5), url="https://example.org")
    at: UUID = await Fetch.enqueue_at_async(datetime.now(UTC), url="https://example.net")
    many: list[UUID] = await Fetch.batch_enqueue_async([Fetch(url="a"), Fetch(url="b")])
    store: AsyncStore = app.async_store
    stats: dict[str, QueueStats] = await store.queue_stats()
    records: list[JobRecord] = await store.claim_jobs("fetch", "worker-1", 10)
    statuses: list[JobStatus] = [record.status for record in records]
    return [jid, later, at, *many]


def operate(url: str) -> int:
    jid: UUID = Report.enqueue(name="weekly")
    app.cancel(jid)
    sync: Store = PostgresStore(url)
    both = AsyncPostgresStore.from_store(PostgresStore(url))
    new: NewJob = app.new_job(Fetch(url="https://example.com"))
    return sync.queue_size("fetch") + len(new.queue) + int(both.notify)
"""

WRONG_PROGRAM = """
from __future__ import annotations

from joobq_sql import Job, JoobQ, MemoryStore


class Fetch(Job):
    url: str

    async def perform(self) -> None: ...


app = JoobQ(store=MemoryStore())


async def mistakes() -> None:
    Fetch(url=42)
    size: str = await app.async_store.queue_size("fetch")
"""


def mypy(args: list[str], cwd: Path, cache: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.mark.slow
def test_user_programs_and_the_examples_pass_mypy_strict(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "user_program.py").write_text(USER_PROGRAM)
    (tmp_path / "wrong_program.py").write_text(WRONG_PROGRAM)
    examples = [str(ROOT / "examples" / name) for name in EXAMPLES]
    # From another directory, joobq_sql is found as an installed package, through py.typed.
    output = mypy(["user_program.py", "wrong_program.py", *examples], tmp_path, cache)
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert all(line.startswith("wrong_program.py:") for line in errors), output
    assert len(errors) == 2, output
    assert re.search(r'Argument "url" to "Fetch" has incompatible type "int"', output)
    assert re.search(r'Incompatible types in assignment \(expression has type "int"', output)


@pytest.mark.slow
def test_the_asyncio_api_modules_pass_mypy_strict(cache: Path) -> None:
    output = mypy(["-p", "joobq_sql"], ROOT, cache)
    ours = ("joobq_sql/store/postgres/async_store.py", "joobq_sql/runtime/async_runner.py")
    assert not [line for line in output.splitlines() if line.startswith(ours)], output
