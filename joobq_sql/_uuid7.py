"""Time-ordered UUIDs (RFC 9562 version 7) for jids.

A random UUIDv4 primary key scatters inserts across the whole index; version 7 puts the
milliseconds first, so new jobs land at the right-hand edge of the jobs_pkey b-tree.
"""

from __future__ import annotations

import os
import time
from uuid import UUID


def uuid7() -> UUID:
    unix_ms = time.time_ns() // 1_000_000
    rand_a = int.from_bytes(os.urandom(2), "big") & 0x0FFF
    rand_b = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76 | rand_a << 64  # version 7
    value |= 0x2 << 62 | rand_b  # RFC 4122 variant
    return UUID(int=value)
