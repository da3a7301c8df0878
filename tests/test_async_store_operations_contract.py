"""The operator methods' contract (tests/test_store_operations_contract.py, every case) run
against the async stores, as tests/test_async_store_contract.py does for the core contract."""

from __future__ import annotations

import pytest

from joobq_sql import Store
from tests.test_async_store_contract import LoopThread, loop_thread, make_async_backed  # noqa: F401
from tests.test_store_operations_contract import *  # noqa: F403 - collected again


@pytest.fixture(params=["async-postgres", "async-memory"])
def store(request: pytest.FixtureRequest, loop_thread: LoopThread) -> Store:  # noqa: F811
    return make_async_backed(request, loop_thread)
