"""What every route of one web application shares: the JoobQ application, the token, the
in-process metrics and the throughput samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..app import JoobQ
from ..store.base import Store
from .metrics.run_metrics import RunMetrics

T = TypeVar("T")


@dataclass
class WebContext:
    app: JoobQ
    token: str | None
    run_metrics: RunMetrics

    @property
    def store(self) -> Store:
        return self.app.store


def web_context(request: Request) -> WebContext:
    context = request.app.state.joobq
    assert isinstance(context, WebContext)
    return context


async def blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call (synchronous, it may wait on the database) off the event loop."""
    return await run_in_threadpool(function, *args, **kwargs)
