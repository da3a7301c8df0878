"""GET /openapi.json: the OpenAPI 3.1 document of the REST API, made from the endpoint table."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .api import ENDPOINTS, ApiEndpoint
from .api.enqueue import DELAY_RANGE, MAX_QUEUE_LENGTH, PRIORITY_RANGE, RETRIES_RANGE

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "The body is not a JSON object, or the path or query string is not UTF-8",
    401: "Missing or wrong bearer token",
    403: "Cross-site request refused, or a Host name this server does not answer to",
    404: "Not found",
    409: "The job is in a state that does not allow this",
    413: "The body is too large",
    422: "A parameter or field is invalid; the message names it and what is valid",
    503: "The database cannot be reached",
}

ENQUEUE_BODY = {
    "type": "object",
    "required": ["job_type"],
    "additionalProperties": False,
    "properties": {
        "job_type": {"type": "string", "minLength": 1, "maxLength": 200},
        "queue": {
            "type": "string",
            "pattern": "^[a-zA-Z0-9_-]+$",
            "maxLength": MAX_QUEUE_LENGTH,
        },
        "data": {"type": "object", "description": "The job's fields (alias: args)."},
        "args": {"type": "object", "description": "Same as data."},
        "priority": {"type": "integer", "minimum": PRIORITY_RANGE[0], "maximum": PRIORITY_RANGE[1]},
        "delay": {
            "type": "number",
            "minimum": DELAY_RANGE[0],
            "maximum": DELAY_RANGE[1],
            "description": "Seconds before the job becomes runnable.",
        },
        "retries": {"type": "integer", "minimum": RETRIES_RANGE[0], "maximum": RETRIES_RANGE[1]},
    },
}


def openapi_document(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "joobq-sql", "version": version},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation(endpoint: ApiEndpoint) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    for name, (description, schema) in (endpoint.query or {}).items():
        parameters.append(
            {"name": name, "in": "query", "description": description, "schema": schema}
        )
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.endpoint.__name__,
        "responses": {str(code): _response(code) for code in sorted(_statuses(endpoint))},
    }
    if parameters:
        operation["parameters"] = parameters
    if endpoint.method == "POST" and endpoint.path == "/joobq/jobs":
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ENQUEUE_BODY}},
        }
    return operation


def _statuses(endpoint: ApiEndpoint) -> set[int]:
    """The endpoint's own statuses, and those any request may meet: 400 (a path or query that
    is not UTF-8), 401 (the token), 403 (cross-site, the Host), 503 (no database)."""
    return {*endpoint.statuses, 400, 401, 403, *((503,) if endpoint.database else ())}


def _response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _STATUS_TEXT.get(code, "")}
    if code >= 400:
        response["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
        }
    return response


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


async def openapi_json(_request: Request) -> Response:
    from .. import __version__

    return JSONResponse(openapi_document(__version__))
