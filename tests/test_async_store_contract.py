"""The Store contract (tests/test_store_contract.py, every case) run against the async stores.

Each primitive of the Store under test is one awaited call of an AsyncStore on an event loop
in a thread of its own: AsyncPostgresStore on a real PostgreSQL, and AsyncStoreAdapter over a
MemoryStore run through worker threads. The contract's own tests are collected here again with
this module's `store` fixture, so the async stores must pass exactly what the sync ones pass.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from joobq_sql import AsyncPostgresStore, AsyncStore, AsyncStoreAdapter, MemoryStore, Store
from tests.test_store_contract import *  # noqa: F403 - the contract's tests, collected again

# Builds a store from another store's engine, which the async stores do not have; the retention
# case is covered by tests/test_async_store.py.
del test_completion_with_retention_keeps_a_completed_row  # noqa: F821


class LoopThread:
    """An event loop running in a thread; `run` waits for a coroutine from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _through_async_store(name: str) -> Callable[..., Any]:
    def call(self: AsyncBackedStore, *args: Any, **kwargs: Any) -> Any:
        return self.loop.run(getattr(self.async_store, name)(*args, **kwargs))

    call.__name__ = name
    return call


class _AsyncBacked(Store):
    def __init__(self, async_store: AsyncStore, loop: LoopThread) -> None:
        super().__init__(
            lease=async_store.lease_seconds, dead_letter_ttl=async_store.dead_letter_ttl_seconds
        )
        self.async_store = async_store
        self.loop = loop


#: A sync Store whose primitives (and screen_claimed) are calls of an AsyncStore; the seed's
#: methods of the Store base class run on top of them, as they do for every store.
AsyncBackedStore = type(
    "AsyncBackedStore",
    (_AsyncBacked,),
    {
        name: _through_async_store(name)
        for name in sorted(Store.__abstractmethods__ | {"screen_claimed"})
    },
)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def make_async_backed(request: pytest.FixtureRequest, loop: LoopThread) -> Store:
    if request.param == "async-postgres":
        async_store: AsyncStore = AsyncPostgresStore(request.getfixturevalue("database_url"))
        request.addfinalizer(lambda: loop.run(async_store.aclose()))
    else:
        async_store = AsyncStoreAdapter(MemoryStore(), inline=False)
    backed: Store = AsyncBackedStore(async_store, loop)
    return backed


@pytest.fixture(params=["async-postgres", "async-memory"])
def store(request: pytest.FixtureRequest, loop_thread: LoopThread) -> Store:
    return make_async_backed(request, loop_thread)
