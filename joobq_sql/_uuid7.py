"""Time-ordered UUIDs (RFC 9562 version 7) for jids.

A random UUIDv4 primary key scatters inserts across the whole index; version 7 puts the
milliseconds first, so new jobs land at the right-hand edge of the jobs_pkey b-tree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from uuid import UUID, SafeUUID

#: The 80 bits after the milliseconds: version (4 bits) and variant (2 bits) set, the other
#: 74 random (rand_a and rand_b).
_VERSION_AND_VARIANT = 0x7 << 76 | 0x2 << 62
_RANDOM_BITS = ((1 << 80) - 1) & ~(0xF << 76 | 0x3 << 62)
_MILLISECONDS = 0xFFFF_FFFF_FFFF
_RANDOM_BYTES = 10
#: Read once: an Enum member read through its class costs a descriptor call each time.
_UNKNOWN_SAFETY = SafeUUID.unknown


def _unchecked(value: int) -> UUID:
    """UUID(int=value) without its argument checks (the value is in range by construction):
    a bulk enqueue makes a jid per job, and UUID.__init__ is most of a jid's cost."""
    made = object.__new__(UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _UNKNOWN_SAFETY)
    return made


def _checked(value: int) -> UUID:
    return UUID(int=value)


def _fastest() -> Callable[[int], UUID]:
    """_unchecked where it makes the very UUID that UUID(int=...) makes, else _checked."""
    probe = _VERSION_AND_VARIANT | 0x1234 << 80
    try:
        made, expected = _unchecked(probe), UUID(int=probe)
        same = (made, str(made), hash(made), made.version) == (
            expected,
            str(expected),
            hash(expected),
            expected.version,
        )
    except (AttributeError, TypeError):  # another layout of UUID's slots
        same = False
    return _unchecked if same else _checked


_from_int = _fastest()


def uuid7() -> UUID:
    unix_ms = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(_RANDOM_BYTES), "big")
    return _from_int((unix_ms & _MILLISECONDS) << 80 | random & _RANDOM_BITS | _VERSION_AND_VARIANT)


def uuid7s(count: int) -> list[UUID]:
    """`count` version-7 UUIDs of this millisecond, with one read of the OS's random source
    for all of them instead of one per UUID."""
    high = (time.time_ns() // 1_000_000 & _MILLISECONDS) << 80 | _VERSION_AND_VARIANT
    pool = os.urandom(_RANDOM_BYTES * count)
    from_bytes = int.from_bytes
    return [
        _from_int(high | from_bytes(pool[at : at + _RANDOM_BYTES], "big") & _RANDOM_BITS)
        for at in range(0, _RANDOM_BYTES * count, _RANDOM_BYTES)
    ]
