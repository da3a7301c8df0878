"""Paths as the client wrote them: routes match the raw path, and each segment is decoded once.

A queue name travels as one percent-encoded path segment, so "a/b" is ``a%2Fb`` and
"x/../victim" is ``x%2F..%2Fvictim`` (which no browser resolves as a ".." segment). The server
hands routes the decoded path, in which ``a%2Fb`` and ``a/b`` are the same text: matching that
would make "a/b" unreachable, and worse, a route could see a name its client never sent.
RawPathRoute therefore matches the path with every segment decoded except its '/' and '%',
which stay encoded until a path parameter is read, so a parameter is exactly one segment
decoded exactly once: ``a%252Fb`` is the queue "a%2Fb".

The server also decodes with replacement characters, so ``%ff%fe`` would become the name
"\\ufffd\\ufffd"; Utf8Middleware refuses (400) a path or query string whose percent-decoded
bytes are not UTF-8, naming the part.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/joobq/"


def route_path(scope: Scope) -> str:
    """The decoded path below the app's mount point (Starlette's own rule)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def _decoded(raw: str) -> str:
    """One raw segment, percent-decoded strictly as UTF-8 (UnicodeDecodeError otherwise)."""
    return unquote_to_bytes(raw).decode("utf-8")


def _kept(segment: str) -> str:
    """A decoded segment with its '%' and '/' encoded again: the form RawPathRoute matches."""
    return segment.replace("%", "%25").replace("/", "%2F")


def routing_path(scope: Scope) -> str:
    """The path below the app's mount point, each segment decoded but for '%' and '/'.

    It is cut from the raw path, as many segments from the end as make up the decoded route
    path. A raw path that does not decode to the route path (a middleware rewrote the path but
    not raw_path, a server that sends none) cannot be trusted: then the decoded path is used,
    its '/' all taken as segment boundaries."""
    route = route_path(scope)
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        segments = bytes(raw).decode("latin-1").split("/")
        try:
            decoded = [_decoded(s) for s in segments]
        except UnicodeDecodeError:
            decoded = []  # Utf8Middleware refuses these requests before any route sees them
        for start in range(1, len(decoded)):
            if "/" + "/".join(decoded[start:]) == route:
                return "/" + "/".join(_kept(s) for s in decoded[start:])
    return route.replace("%", "%25")


class RawPathRoute(Route):
    """A Route that matches `routing_path` (see the module docstring), so that ``{queue}``
    is one raw segment whatever '/' its name holds."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        match = self.path_regex.match(routing_path(scope))
        if match is None:
            return Match.NONE, {}
        path_params: dict[str, Any] = dict(scope.get("path_params", {}))
        for key, value in match.groupdict().items():
            path_params[key] = self.param_convertors[key].convert(unquote(value))
        child_scope = {"endpoint": self.endpoint, "path_params": path_params}
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child_scope
        return Match.FULL, child_scope


class Utf8Middleware:
    """Answers 400 to a request whose path or query string is not UTF-8 once percent-decoded,
    naming the segment or parameter; JSON under /joobq/, text elsewhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = not_utf8(scope)
            if problem is not None:
                await _bad_request(scope, problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def not_utf8(scope: Scope) -> str | None:
    """What in the request's path or query string is not UTF-8, or None when all of it is."""
    advice = "percent-encode the UTF-8 bytes of each name"
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        for segment in bytes(raw).decode("latin-1").split("/"):
            try:
                _decoded(segment)
            except UnicodeDecodeError as exc:
                return (
                    f"the path segment {segment!r} is not valid UTF-8 once percent-decoded "
                    f"({exc.reason}); {advice}"
                )
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    for parameter in query.split("&") if query else ():
        try:
            _decoded(parameter.replace("+", " "))
        except UnicodeDecodeError as exc:
            return (
                f"the query parameter {parameter!r} is not valid UTF-8 once percent-decoded "
                f"({exc.reason}); {advice}"
            )
    return None


def _bad_request(scope: Scope, message: str) -> Response:
    if route_path(scope).startswith(API_PREFIX):
        return JSONResponse({"error": message}, status_code=400)
    return PlainTextResponse(message, status_code=400)
