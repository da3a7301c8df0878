"""Read the seed's job JSON documents (the strings Store methods accept) into typed values."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from ..job import Job


def parse_document(job: str | Job, *, what: str = "job") -> dict[str, Any]:
    """Return the document of a Job instance or of a job JSON string, with `jid` a UUID."""
    if isinstance(job, Job):
        document = json.loads(job.to_json())
    elif isinstance(job, str):
        try:
            document = json.loads(job)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is not valid JSON ({exc.msg}): {job[:80]!r}") from None
        if not isinstance(document, dict):
            raise ValueError(f"{what} must be a JSON object with a 'jid', got {job[:80]!r}")
    else:
        raise TypeError(f"{what} must be a Job or its JSON string, got {type(job).__name__}")
    document["jid"] = parse_jid(document.get("jid"), what=f"{what}['jid']")
    result: dict[str, Any] = document
    return result


def parse_jid(value: Any, *, what: str = "jid") -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a UUID, got {value!r}")


def optional_int(document: dict[str, Any], key: str) -> int | None:
    value = document.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) else None
