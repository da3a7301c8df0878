"""Serving the web app with uvicorn: in the foreground (`joobq-sql web`), or in a background
thread of a worker process, so that /metrics also has that process's perform histograms."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette

from ..app import JoobQ
from .app import create_app
from .auth import check_bind, resolve_token


def serve(
    app: JoobQ | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    allowed_hosts: Iterable[str] | str | None = None,
    log_level: str = "info",
) -> None:
    """Serve the web app until interrupted. A non-loopback `host` needs a token
    (ConfigurationError otherwise); `allowed_hosts` as in create_app."""
    import uvicorn

    token = resolve_token(token)
    check_bind(host, token)
    asgi = create_app(app, token=token, allowed_hosts=allowed_hosts)
    uvicorn.run(asgi, host=host, port=port, log_level=log_level)


class BackgroundServer:
    """A uvicorn server in a daemon thread; `url` is where it listens. Use it as a context
    manager, or call stop()."""

    def __init__(self, asgi: Starlette, *, host: str, port: int, log_level: str) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host.strip("[]"), port))
        self.port: int = self._socket.getsockname()[1]
        shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{self.port}"
        config = uvicorn.Config(asgi, log_level=log_level, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="joobq-web",
            daemon=True,
        )

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            deadline.wait(0.01)
        if not self._server.started:
            self.stop()
            raise RuntimeError(f"the web server on {self.url} did not start")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_in_background(
    app: JoobQ | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    allowed_hosts: Iterable[str] | str | None = None,
    log_level: str = "warning",
) -> BackgroundServer:
    """Start serving the web app in a background thread and return the running server (port 0:
    any free port; see `.url`). Call it before ``app.run()`` so that the perform histograms
    see the workers. `allowed_hosts` as in create_app."""
    token = resolve_token(token)
    check_bind(host, token)
    asgi = create_app(app, token=token, allowed_hosts=allowed_hosts)
    server = BackgroundServer(asgi, host=host, port=port, log_level=log_level)
    return server.start()
