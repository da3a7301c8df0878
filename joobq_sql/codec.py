"""Turn a job's typed fields into JSON and back.

A field's annotation decides its encoding. Supported: str, int, float, bool, None, datetime
(timezone-aware only), date, timedelta (as seconds), UUID, Decimal (as a string, so no precision
is lost), Enum, nested dataclasses, list/tuple/dict of these, Optional and Union, and Any (which
must already be plain JSON). Anything else is refused when the Job class is declared, and a bad
value is refused when the job is enqueued, with the field named in the message.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Union, get_args, get_origin
from uuid import UUID

_SCALARS: tuple[type, ...] = (str, int, float, bool, type(None))


class UndecodableJSON(str):
    """A stored JSON value too deeply nested to decode; holds the start of its text."""


class FieldError(Exception):
    """A value does not fit its annotation; `path` names the field (e.g. ``items[2].when``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def check_supported(tp: Any, path: str) -> None:
    """Raise FieldError if `tp` cannot be encoded (checked once, when a Job class is declared)."""
    if tp is Any or tp is object or tp in _SCALARS:
        return
    if tp in (datetime, date, timedelta, UUID, Decimal):
        return
    if isinstance(tp, type) and issubclass(tp, Enum):
        return
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        for name, sub in typing.get_type_hints(tp).items():
            check_supported(sub, f"{path}.{name}")
        return
    if tp in (list, tuple, dict):
        return
    origin, args = get_origin(tp), get_args(tp)
    if origin in (list, tuple, dict, Union, types.UnionType, typing.Literal):
        if origin is dict and args and args[0] is not str:
            raise FieldError(path, f"dict keys must be str for JSON, not {args[0]!r}")
        for arg in args:
            if arg is not Ellipsis and origin is not typing.Literal:
                check_supported(arg, path)
        return
    raise FieldError(path, f"type {tp!r} cannot be stored as JSON; use a JSON-friendly type")


def encode(value: Any, tp: Any, path: str) -> Any:
    """Return the JSON form of `value` as annotated by `tp`."""
    return _encoder(tp)(value, path)


def decode(data: Any, tp: Any, path: str) -> Any:
    """Return the Python value annotated by `tp` from its JSON form `data`."""
    return _decoder(tp)(data, path)


def _fail(path: str, expected: str, value: Any) -> FieldError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return FieldError(path, f"expected {expected}, got {type(value).__name__} {shown}")


def _plain_json(value: Any, path: str, depth: int = 0) -> Any:
    """Check that `value` is plain JSON (for fields annotated Any), and return it."""
    if depth > 64:
        raise FieldError(path, "nested more than 64 levels deep")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(path, f"{value!r} is not valid JSON; use a finite number")
        return value
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_plain_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise FieldError(path, f"dict key {k!r} is not a str")
            out[k] = _plain_json(v, f"{path}.{k}", depth + 1)
        return out
    raise _fail(path, "a JSON value (str, number, bool, None, list, dict)", value)


Codec = Callable[[Any, str], Any]


def _encoder(tp: Any) -> Codec:
    if tp is Any or tp is object:
        return _plain_json
    if tp is type(None):
        return _expect(lambda v: v is None, "None", lambda v: v)
    if tp is bool:
        return _expect(lambda v: isinstance(v, bool), "bool", lambda v: v)
    if tp is int:
        return _expect(lambda v: isinstance(v, int) and not isinstance(v, bool), "int", int)
    if tp is float:
        return _encode_float
    if tp is str:
        return _expect(lambda v: isinstance(v, str), "str", lambda v: v)
    if tp is datetime:
        return _encode_datetime
    if tp is date:
        return _expect(
            lambda v: isinstance(v, date) and not isinstance(v, datetime), "date", date.isoformat
        )
    if tp is timedelta:
        return _expect(lambda v: isinstance(v, timedelta), "timedelta", timedelta.total_seconds)
    if tp is UUID:
        return _expect(lambda v: isinstance(v, UUID), "UUID", str)
    if tp is Decimal:
        return _expect(lambda v: isinstance(v, Decimal) and v.is_finite(), "finite Decimal", str)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _expect(lambda v: isinstance(v, tp), tp.__name__, lambda v: v.value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_codec(tp, encoding=True)
    return _generic_codec(tp, encoding=True)


def _decoder(tp: Any) -> Codec:
    if tp is Any or tp is object:
        return _plain_json
    if tp in (type(None), bool, str):
        return _encoder(tp)
    if tp is int:
        return _expect(lambda v: isinstance(v, int) and not isinstance(v, bool), "int", int)
    if tp is float:
        return _encode_float
    if tp is datetime:
        return _decode_datetime
    if tp is date:
        return _parse(str, date.fromisoformat, "an ISO date string")
    if tp is timedelta:
        return _expect(
            lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "seconds as a number",
            lambda v: timedelta(seconds=v),
        )
    if tp is UUID:
        return _parse(str, UUID, "a UUID string")
    if tp is Decimal:
        return _parse(str, _finite_decimal, "a decimal string")
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _parse(object, tp, f"a value of {tp.__name__}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_codec(tp, encoding=False)
    return _generic_codec(tp, encoding=False)


def _expect(check: Callable[[Any], bool], expected: str, convert: Callable[[Any], Any]) -> Codec:
    def codec(value: Any, path: str) -> Any:
        if not check(value):
            raise _fail(path, expected, value)
        return convert(value)

    return codec


def _parse(kind: type, parser: Callable[[Any], Any], expected: str) -> Codec:
    def codec(value: Any, path: str) -> Any:
        if not isinstance(value, kind):
            raise _fail(path, expected, value)
        try:
            return parser(value)
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise _fail(path, expected, value) from exc

    return codec


def _finite_decimal(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(text)
    return value


def _encode_float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, "float", value)
    if not math.isfinite(value):
        raise FieldError(path, f"{value!r} is not valid JSON; use a finite number")
    return float(value)


def _encode_datetime(value: Any, path: str) -> str:
    if not isinstance(value, datetime):
        raise _fail(path, "datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise FieldError(path, f"{value.isoformat()} is a naive datetime; give it a timezone")
    return value.isoformat()


def _decode_datetime(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise _fail(path, "an ISO datetime string", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(path, "an ISO datetime string", value) from exc
    if parsed.tzinfo is None:
        raise FieldError(path, f"{value!r} has no timezone")
    return parsed


def _dataclass_codec(tp: type, *, encoding: bool) -> Codec:
    hints = typing.get_type_hints(tp)
    fields = [f for f in dataclasses.fields(tp) if f.init]

    def codec(value: Any, path: str) -> Any:
        if encoding:
            if not isinstance(value, tp):
                raise _fail(path, tp.__name__, value)
            return {
                f.name: encode(getattr(value, f.name), hints[f.name], f"{path}.{f.name}")
                for f in fields
            }
        if not isinstance(value, dict):
            raise _fail(path, f"an object for {tp.__name__}", value)
        unknown = set(value) - {f.name for f in fields}
        if unknown:
            raise FieldError(path, f"unknown fields {sorted(unknown)} for {tp.__name__}")
        kwargs = {}
        for f in fields:
            if f.name in value:
                kwargs[f.name] = decode(value[f.name], hints[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise FieldError(f"{path}.{f.name}", "is required but missing")
        return tp(**kwargs)

    return codec


def _generic_codec(tp: Any, *, encoding: bool) -> Codec:
    origin, args = get_origin(tp) or tp, get_args(tp)
    step = encode if encoding else decode

    if origin in (Union, types.UnionType):

        def union(value: Any, path: str) -> Any:
            if value is None and type(None) in args:
                return None
            errors = []
            for arm in args:
                if arm is type(None):
                    continue
                try:
                    return step(value, arm, path)
                except FieldError as exc:
                    errors.append(exc.message)
            raise FieldError(path, " / ".join(errors))

        return union

    if origin is typing.Literal:

        def literal(value: Any, path: str) -> Any:
            if value not in args:
                raise _fail(path, f"one of {list(args)}", value)
            return value

        return literal

    if origin in (list, tuple):
        fixed = origin is tuple and args and Ellipsis not in args

        def sequence(value: Any, path: str) -> Any:
            accepted = list | tuple if encoding else list
            if not isinstance(value, accepted):
                raise _fail(path, "a list", value)
            if fixed and len(value) != len(args):
                raise FieldError(path, f"expected {len(args)} items, got {len(value)}")
            items = [
                step(item, (args[i] if fixed else (args[0] if args else Any)), f"{path}[{i}]")
                for i, item in enumerate(value)
            ]
            return items if encoding or origin is list else tuple(items)

        return sequence

    if origin is dict:
        value_tp = args[1] if args else Any

        def mapping(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise _fail(path, "a dict", value)
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise FieldError(path, f"dict key {key!r} is not a str")
                out[key] = step(item, value_tp, f"{path}[{key!r}]")
            return out

        return mapping

    raise FieldError("?", f"type {tp!r} cannot be stored as JSON")
