"""Which Host names the web app answers to: the guard against DNS rebinding.

A page on evil.example can make its name resolve to 127.0.0.1 after it has loaded; the browser
then sends the page's requests to a server on this machine, as same-origin requests that carry
``Host: evil.example``. Without a token nothing else stands in the way, so a token-less app
answers only to Host names of this machine (localhost, 127.0.0.0/8, ::1, any port), plus the
names of `allowed_hosts` ('*': any name), as Jupyter and other local servers do. With a token
the token is the guard and any Host is answered, unless `allowed_hosts` is given.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigurationError

ALLOWED_HOSTS_ENV = "JOOBQ_ALLOWED_HOSTS"
ANY_HOST = "*"

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PORT = re.compile(r":[0-9]{0,5}")


def _host_name(text: str) -> str | None:
    """`text` as a lower-case host name or IP address (IPv6 without brackets), or None when it
    is neither."""
    name = text.lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:
        try:
            return ipaddress.IPv6Address(name).compressed
        except ValueError:
            return None
    return name if len(name) <= 253 and _HOST_NAME.fullmatch(name) else None


def resolve_allowed_hosts(allowed_hosts: Iterable[str] | str | None) -> frozenset[str] | None:
    """The Host names to answer to besides this machine's: `allowed_hosts` (names, or one
    comma-separated string), else $JOOBQ_ALLOWED_HOSTS; None when neither is set.

    ConfigurationError names an entry that is not a bare host name or address."""
    where = "allowed_hosts"
    if allowed_hosts is None:
        allowed_hosts = os.environ.get(ALLOWED_HOSTS_ENV, "").strip() or None
        if allowed_hosts is None:
            return None
        where = ALLOWED_HOSTS_ENV
    entries = allowed_hosts.split(",") if isinstance(allowed_hosts, str) else list(allowed_hosts)
    names = set()
    for entry in entries:
        if not isinstance(entry, str):
            raise ConfigurationError(
                f"{where} entries must be host names (str), got {type(entry).__name__}: {entry!r}"
            )
        stripped = entry.strip()
        name = ANY_HOST if stripped == ANY_HOST else _host_name(stripped)
        if name is None:
            raise ConfigurationError(
                f"{where} entry {entry!r} is not a host name: give names or addresses such as "
                f"'dash.example.com' or '10.0.0.7', without scheme, port or path, or "
                f"'{ANY_HOST}' for any host"
            )
        names.add(name)
    return frozenset(names)


def is_local_host_name(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_of_header(header: str) -> str | None:
    """The host name of a Host header ("name", "name:port", "[v6]:port"), or None when the
    header is not one."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]") + 1
        name, port = header[:end], header[end:]
    else:
        name, colon, number = header.partition(":")
        port = colon + number
    if port and not _PORT.fullmatch(port):
        return None
    return _host_name(name) if name else None


class HostMiddleware:
    """Answers 403 to a request whose Host is not this machine's or an allowed name (see the
    module docstring). `allowed` None: no check (an app with a token and no allowed_hosts)."""

    def __init__(self, app: ASGIApp, *, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None and ANY_HOST not in self.allowed:
            refusal = self._refusal(scope)
            if refusal is not None:
                await JSONResponse({"error": refusal}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        assert self.allowed is not None
        headers = [value for key, value in scope["headers"] if key == b"host"]
        shown = ", ".join(["localhost", "127.0.0.1", "[::1]", *sorted(self.allowed)])
        how = (
            f"this server answers only to {shown} (any port), against DNS rebinding; add the "
            f"name to allowed_hosts (joobq-sql web --allowed-hosts, ${ALLOWED_HOSTS_ENV}), or "
            "serve with a token"
        )
        if len(headers) != 1:
            return f"the request has no Host header, or more than one: {how}"
        header = headers[0].decode("latin-1")
        name = host_of_header(header)
        if name is not None and (is_local_host_name(name) or name in self.allowed):
            return None
        return f"Host {header!r} is not allowed: {how}"
