"""JSON Schema (draft 2020-12) of a Job class's args, derived from its field annotations.

The schema describes the JSON form the codec (joobq_sql/codec.py) stores: datetimes and dates
as ISO strings, timedeltas as seconds, UUIDs and Decimals as strings, Enums as their values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Union, get_args, get_origin
from uuid import UUID

from ..job import Job

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    datetime: {"type": "string", "format": "date-time"},
    date: {"type": "string", "format": "date"},
    timedelta: {"type": "number", "description": "seconds"},
    UUID: {"type": "string", "format": "uuid"},
    Decimal: {"type": "string", "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"},
}


def job_schema(klass: type[Job]) -> dict[str, Any]:
    """The schema of `klass`'s args object: each field's type, required fields, no others."""
    schema = _object_schema(klass, klass._resolve_field_types())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = klass.job_type
    if klass.__doc__ and klass.__doc__ is not Job.__doc__:
        schema["description"] = " ".join(klass.__doc__.split())
    return schema


def _object_schema(klass: type, hints: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(klass):
        if f.name not in hints:
            continue
        prop = type_schema(hints[f.name])
        if f.default is not dataclasses.MISSING and _plain(f.default):
            prop = {**prop, "default": _default(f.default)}
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def type_schema(tp: Any) -> dict[str, Any]:
    """The schema of one annotation (as the codec encodes it)."""
    if tp is Any or tp is object:
        return {}
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"enum": [member.value for member in tp], "title": tp.__name__}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return {"title": tp.__name__, **_object_schema(tp, typing.get_type_hints(tp))}
    if tp in (list, tuple):
        return {"type": "array"}
    if tp is dict:
        return {"type": "object"}
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [type_schema(arg) for arg in args]}
    if origin is typing.Literal:
        return {"enum": [_default(arg) for arg in args]}
    if origin is list:
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": type_schema(args[0])}
        return {
            "type": "array",
            "prefixItems": [type_schema(arg) for arg in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict:
        value = type_schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": value}
    return {}


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | Enum) or value is None


def _default(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
