"""Checks on values that come from outside: each raises with the bad value named."""

from __future__ import annotations

import functools
import math
import re
import sys
import threading
import unicodedata
from datetime import datetime, timedelta

#: The schema joobq's tables live in unless settings name another.
DEFAULT_SCHEMA = "joobq"
MAX_QUEUE_NAME_LENGTH = 100
MAX_JOB_TYPE_LENGTH = 200
MIN_PRIORITY = -32768
MAX_PRIORITY = 32767
#: The highest attempt count (and max_retries) a job may be written with. The table's CHECK
#: stops at attempt < 1,000,000,000 so that a claim's attempt + 1 never overflows; this bound
#: is ten times lower, so that a job written at it can still be claimed 900 million times
#: before any claim could meet that CHECK (and fail for its whole queue).
MAX_ATTEMPT = 100_000_000
#: The table's CHECK on attempt (exclusive): no stored row, however written, reaches it.
ATTEMPT_CHECK_BOUND = 1_000_000_000
#: The longest delay, expiry or retry wait: a thousand years. Any time a job is given stays
#: within the years 1..9999 that Python's datetime (and so every reader of the row) can hold.
MAX_DURATION_SECONDS = 1000 * 365.25 * 86400
#: The longest a background thread is asked to wait in one go: what threading can wait on
#: (TIMEOUT_MAX: about 292 years on Linux, 49 days on Windows; a longer wait raises
#: OverflowError and kills the thread), and never more than a job row's longest duration.
MAX_WAIT_SECONDS = min(threading.TIMEOUT_MAX, MAX_DURATION_SECONDS)
_DURATION_WORDS = (
    ("year", 365.25 * 86400),
    ("day", 86400.0),
    ("hour", 3600.0),
    ("minute", 60.0),
)


# -- names: queue names, job types, schedule names, unique keys --------------------------------
#
# A name is what an operator types and reads, so two names that look alike must be one name,
# and a name must be visible. Every name is NFC-normalised (so "café" typed as e + U+0301 and
# as é is one queue), and refused when it is blank, padded with whitespace, holds a character
# that shows as nothing or controls the display, or starts with a combining mark (which has
# nothing to combine with). Anything else is allowed, quotes and semicolons included: names
# only ever travel as SQL parameters.

#: Characters whose category is a letter, mark or symbol but that show as nothing: the Hangul
#: fillers, the blank Braille pattern, the combining grapheme joiner and the Khmer inherent
#: vowels (the invisible default-ignorable letters; variation selectors stay allowed, emoji
#: need them).
INVISIBLE_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
#: Categories no name may hold: controls, format characters (zero widths, bidi overrides),
#: surrogates, private use, unassigned code points, line and paragraph separators, and every
#: space but U+0020 (which may only stand inside a name).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
_UNNAMED = {
    "Cs": "(a surrogate)",
    "Co": "(a private-use character)",
    "Cn": "(unassigned)",
}


def character_name(ch: str) -> str:
    """A character as messages name it: 'U+2028 LINE SEPARATOR', 'U+E000 (a private-use
    character)'; a C0 or C1 control, which has no name, as 'U+001B'."""
    category = unicodedata.category(ch)
    name = unicodedata.name(ch, "") or _UNNAMED.get(category, "")
    return f"U+{ord(ch):04X} {name}".rstrip()


@functools.lru_cache(maxsize=4096)
def _has_control_characters(text: str) -> bool:
    # The rule names were written under before the visible-name rule (see `existing`).
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text)


@functools.lru_cache(maxsize=4096)
def _name_problem(value: str) -> str | None:
    """What makes the NFC name `value` unfit, or None. Cached: the same few names are checked
    for every job enqueued."""
    stripped = value.strip()  # str.strip knows every Unicode whitespace, U+2028 included
    if not stripped:
        return f"is blank ({character_name(value[0])}); use visible characters"
    if stripped != value:
        side, ch = ("starts", value[0]) if value[0] != stripped[0] else ("ends", value[-1])
        return f"{side} with {character_name(ch)}; remove the surrounding whitespace"
    for ch in value:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf"):  # C0/C1 controls, and format controls (bidi, zero width)
            return f"contains control characters ({character_name(ch)}); use visible characters"
        if ch != " " and (ch in INVISIBLE_CHARACTERS or category in _REFUSED_CATEGORIES):
            return f"contains {character_name(ch)}; use visible characters"
    if unicodedata.category(value[0]).startswith("M"):
        return (
            f"starts with {character_name(value[0])}, a combining mark with no character "
            "to combine with; use visible characters"
        )
    return None


def _shown_name(value: str) -> str:
    """`value` quoted for a message, with what would show as nothing written as an escape."""
    text = repr(value)
    for ch in set(value) & INVISIBLE_CHARACTERS:
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    if value and unicodedata.category(value[0]).startswith("M") and text[1] == value[0]:
        text = f"{text[0]}\\u{ord(value[0]):04x}{text[2:]}"  # it would sit on the quote
    return text


def _name(value: str, *, what: str, limit: int, existing: bool) -> str:
    """The checked, NFC form of the name `value` (a str, checked by the caller)."""
    if not value:
        raise ValueError(f"{what} must not be empty")
    # NFC only ever shortens; the bound on the raw length keeps a huge value cheap to refuse.
    normal = value if len(value) > 4 * limit else unicodedata.normalize("NFC", value)
    if len(normal) > limit:
        raise ValueError(
            f"{what} {normal[:20]!r}... is {len(normal)} characters long; "
            f"at most {limit} are allowed"
        )
    problem = _name_problem(normal)
    if problem is None:
        return normal
    if existing and not _has_control_characters(value):
        # Looking up rows written before this rule: its name is found as it was stored.
        return value
    raise ValueError(f"{what} {_shown_name(value)} {problem}")


def queue_name(value: object, *, what: str = "queue name", existing: bool = False) -> str:
    """Return the NFC form of a queue name: 1..100 visible characters (see above).

    With `existing`, a name only looked up by (a filter, resuming a queue) may also be one
    that rows written before this rule hold, such as 'hr ': it is returned as given, so those
    rows stay listable and operable. No new row, queue or pause is ever written under it.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    name = _name(value, what=what, limit=MAX_QUEUE_NAME_LENGTH, existing=existing)
    if name in _PATH_STEPS and not existing:
        # A queue's name is a segment of the web API's and the dashboard's URLs, and browsers
        # resolve "." and ".." (even as %2e%2e) as path steps: such a queue could not be
        # addressed, or its buttons would act on another path.
        raise ValueError(
            f"{what} {name!r} is a path step, which cannot travel in a URL; use another name"
        )
    return name


#: Queue names that URLs cannot carry as a segment (see queue_name).
_PATH_STEPS = frozenset({".", ".."})


def job_type(value: object, *, existing: bool = False) -> str:
    """Return the NFC form of a job_type tag (the rules of queue names, 200 characters at
    most; `existing` as for queue_name)."""
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"job_type {value!r} is invalid: it must be a non-empty str of at most "
            f"{MAX_JOB_TYPE_LENGTH} characters"
        )
    return _name(value, what="job_type", limit=MAX_JOB_TYPE_LENGTH, existing=existing)


def schedule_name(value: object) -> str:
    """Return the NFC form of a schedule name (the rules of queue names)."""
    return queue_name(value, what="schedule name")


def worker_id(value: object) -> str:
    return queue_name(value, what="worker_id")


def non_negative_int(value: object, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def attempt_count(value: object, *, what: str) -> int:
    """An attempt count or a max_retries a job is written with: 0..MAX_ATTEMPT."""
    non_negative_int(value, what=what)
    assert isinstance(value, int)
    if value > MAX_ATTEMPT:
        raise ValueError(
            f"{what} {value} is too high: a job is written with at most {MAX_ATTEMPT} "
            f"(attempts must stay below {ATTEMPT_CHECK_BOUND} for a claim to count them)"
        )
    return value


def fence_attempt(value: int | None, *, what: str) -> int | None:
    """The attempt a completion or failure is fenced by: None (unfenced) or one a stored job
    can have, 0..ATTEMPT_CHECK_BOUND - 1."""
    if value is not None and not 0 <= value < ATTEMPT_CHECK_BOUND:
        raise ValueError(
            f"{what} {value} is not an attempt any job can have: "
            f"0 to at most {ATTEMPT_CHECK_BOUND - 1}"
        )
    return value


def positive_int(value: object, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


def priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an int, got {type(value).__name__}: {value!r}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"priority must be in {MIN_PRIORITY}..{MAX_PRIORITY}, got {value}")
    return value


def duration_words(seconds: float) -> str:
    """A bound as people say it: 31557600000 -> '1000 years', 86400 -> '1 day', 0.1 -> '0.1 s'.

    The largest unit that the duration is a whole number of, else seconds."""
    for unit, size in _DURATION_WORDS:
        count = seconds / size
        if count >= 1 and count == int(count):
            return f"{int(count)} {unit}{'' if count == 1 else 's'}"
    if seconds >= 365.25 * 86400:  # threading's limit, for one: not a whole number of anything
        return f"about {seconds / (365.25 * 86400):.0f} years"
    return f"{seconds:g} s"


def seconds(
    value: object, *, what: str, allow_zero: bool = True, at_most: float | None = None
) -> float:
    """A duration as float seconds, from a timedelta or a number; negative or NaN is refused,
    and so is one longer than `at_most` (default MAX_DURATION_SECONDS: every duration is
    added to a time, which must stay within the years Python's datetime holds)."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:  # an int beyond every float: refused as too long (or negative)
            result = sys.float_info.max if value > 0 else -sys.float_info.max
    else:
        raise TypeError(
            f"{what} must be a timedelta or a number of seconds, "
            f"got {type(value).__name__}: {value!r}"
        )
    if math.isnan(result) or math.isinf(result):
        raise ValueError(f"{what} must be a finite duration, got {shown(value)}")
    if result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be {bound} seconds, got {shown(value)}")
    limit = MAX_DURATION_SECONDS if at_most is None else at_most
    if result > limit:
        raise ValueError(
            f"{what} must be at most {limit:g} seconds ({duration_words(limit)}), "
            f"got {shown(value)}"
        )
    return result


def shown(value: object) -> str:
    """`value` for a message; an int of hundreds of digits is cut short."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:30]}... ({len(text)} characters)"


def aware_datetime(value: object, *, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} {value.isoformat()} is a naive datetime; give it a timezone "
            "(for example datetime.now(timezone.utc))"
        )
    return value


def unix_ms(value: object, *, what: str) -> int:
    """A point in time as Unix milliseconds (the seed's Int64 times)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be Unix milliseconds as an int, got {value!r}")
    # 0001-01-01 .. 9999-12-31, the range a timestamptz and a datetime share
    if not -62_135_596_800_000 <= value <= 253_402_300_799_000:
        raise ValueError(f"{what} {value} is outside the years 1..9999 in Unix milliseconds")
    return value


MAX_UNIQUE_KEY_LENGTH = 1000


def unique_key(value: object) -> str:
    """Return the NFC form of a unique key: the rules of names, 1000 characters at most, so
    that keys that look alike are one key."""
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"unique_key {value!r} is invalid: it must be a non-empty str of at most "
            f"{MAX_UNIQUE_KEY_LENGTH} characters"
        )
    return _name(value, what="unique_key", limit=MAX_UNIQUE_KEY_LENGTH, existing=False)


_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(schema: str) -> str:
    """Schema names are formatted into SQL text as identifiers, so only plain names are allowed."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"schema {schema!r} is invalid: use lower-case letters, digits and '_', "
            "starting with a letter or '_', at most 63 characters"
        )
    return schema
