"""Using MemoryStore in your own unit tests: no database, the same Store contract.

    python -m pytest examples/test_with_memory_store.py

Your code enqueues through the Job classes (``SendInvoice.enqueue(...)``); in tests, give the
application a MemoryStore and assert on what was enqueued, run jobs inline with perform_now, or
run a real worker against the memory store. (The module under test would normally live in your
package; it is inline here to keep the example in one file.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from uuid import UUID

import pytest

from joobq_sql import Job, JobStatus, JoobQ, MemoryStore

# -- the application code under test -------------------------------------------------------

sent: list[str] = []


class SendInvoice(Job):
    queue = "billing"
    customer: str
    cents: int

    def perform(self) -> None:
        sent.append(f"{self.customer}: {self.cents / 100:.2f}")


def close_month(customers: dict[str, int]) -> list[UUID]:
    """Bill every customer with a balance; the invoices go out through the job queue."""
    return SendInvoice.batch_enqueue(
        [SendInvoice(customer=name, cents=cents) for name, cents in customers.items() if cents]
    )


async def bill_later(customer: str, cents: int) -> UUID:
    """The same, from asyncio code, an hour from now."""
    jid: UUID = await SendInvoice.delay_async(3600, customer=customer, cents=cents)
    return jid


# -- the tests -------------------------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[JoobQ]:
    """An application on a fresh MemoryStore per test, running SendInvoice."""
    app = JoobQ(store=MemoryStore(), poll_interval=0.05, retry_jitter=0)
    app.queue("billing", workers=2, jobs=[SendInvoice])
    sent.clear()
    yield app
    app.close()


def test_closing_the_month_enqueues_one_invoice_per_customer_with_a_balance(app: JoobQ) -> None:
    jids = close_month({"ada": 1250, "grace": 0, "edsger": 99})
    invoices = app.store.search_jobs(queue="billing", job_type="SendInvoice")
    assert sorted(job.args["customer"] for job in invoices) == ["ada", "edsger"]
    assert {job.jid for job in invoices} == set(jids)
    assert all(job.status is JobStatus.ENQUEUED for job in invoices)
    assert sent == []  # enqueued, not performed


def test_an_invoice_job_formats_the_amount(app: JoobQ) -> None:
    SendInvoice.perform_now(customer="ada", cents=1250)  # inline: no store, no worker
    assert sent == ["ada: 12.50"]


def test_a_worker_on_the_memory_store_sends_every_invoice(app: JoobQ) -> None:
    close_month({"ada": 1250, "edsger": 99})
    worker = app.start()
    try:
        deadline = time.monotonic() + 10
        while app.stats()["billing"].totals["completed"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert sorted(sent) == ["ada: 12.50", "edsger: 0.99"]


def test_async_code_enqueues_into_the_same_memory_store(app: JoobQ) -> None:
    jid = asyncio.run(bill_later("grace", 500))
    record = app.store.get_job(jid)
    assert record is not None and record.status is JobStatus.SCHEDULED
    assert app.store.claim_jobs("billing", "test", 10) == []  # not due for an hour
