"""Text PostgreSQL can store: no U+0000 (NUL) and no lone surrogate.

Neither fits in a text or jsonb value (PostgreSQL refuses a NUL, and UTF-8 has no encoding for a
surrogate), so a string that holds one makes its whole statement fail. Error details are built
from whatever an exception carries, often user data, so they pass through here before they are
written: each such character becomes a visible escape (``\\x00``, ``\\udc80``), the rest of
the text is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\\x00" if code == 0 else f"\\u{code:04x}"


def storable_text(text: str) -> str:
    """`text` with each NUL and lone surrogate replaced by its escape (``\\x00``, ``\\ud800``)."""
    return _UNSTORABLE.sub(_escape, text)


def storable_value(value: Any) -> Any:
    """`value` with every string in it made storable, mapping keys included (mappings become
    dicts, tuples lists, as JSON would make them); other values are returned as they are."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable_value(k): storable_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_value(v) for v in value]
    return value
