"""Settings of a JoobQ application, and where they come from.

Precedence, lowest first: the defaults of `Settings`, a TOML file (`config_file`, else
`$JOOBQ_CONFIG`), `JOOBQ_*` environment variables, then keyword arguments given in code. A bad
value raises ConfigurationError naming the setting (or the variable or file it came from), the
value, and what is valid. Every count and duration has its range in BOUNDS, the one table that
each of those sources, the queue definitions and the CLI's options are checked against.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import _validation
from ._validation import validate_schema_name
from .errors import ConfigurationError

MINUTE = 60.0
#: A queue's worker count when `app.queue` is given none: jobs are mostly I/O-bound (mail,
#: HTTP, the database), so a few run at once at no cost but a thread each; ten keeps the
#: runtime plus the jobs within the store's pool (10, overflow 10), as Sidekiq's and GoodJob's
#: small defaults (5) do for theirs. CPU-bound jobs want processes (worker --processes N).
DEFAULT_WORKERS = 10
HOUR = 3600.0
DAY = 86400.0

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY}
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
# "ms" is tried before "m", so that "500ms" reads as milliseconds, not as 500 minutes and an "s".
_DURATION_PART = re.compile(rf"({_NUMBER.pattern})\s*(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:\s*{_DURATION_PART.pattern})+")
_DURATION_HELP = (
    "a duration: seconds as a number, a timedelta, or a string such as "
    "'500ms', '30s', '5m', '2h', '3d', '1h30m'"
)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_FLOAT_SETTINGS = frozenset({"retry_jitter", "self_vacuum_threshold"})
_BOOL_SETTINGS = frozenset({"notify", "self_vacuum"})
_QUEUE_KEYS = ("name", "workers", "jobs", "throttle", "mode")
#: How a queue runs its jobs: a thread per worker slot, or asyncio tasks on one event loop.
QUEUE_MODES = ("threads", "async")
_JOB_REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# user:password@host; the password runs to the last "@" before the path, as it may hold an "@".
_URL_PASSWORD = re.compile(r"(://[^:/@]*):[^/]*@")
_PASSWORD_PARAMETER = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE)


def parse_duration(value: object, *, setting: str) -> float:
    """Return `value` as float seconds.

    Accepts a timedelta, an int or float of seconds, or a string: a bare number of seconds ("30",
    "1.5") or number-unit parts with units ms, s, m, h, d ("500ms", "1h30m", "1.5s"), in any case.
    Bools, negative, infinite or NaN durations and any other text raise ConfigurationError naming
    `setting`.
    """
    seconds = _to_seconds(value, setting=setting)
    if seconds < 0:
        raise ConfigurationError(f"{setting} must be a duration >= 0 s, got {value!r}")
    return seconds


def _to_seconds(value: object, *, setting: str) -> float:
    """Seconds in `value`, possibly negative: each caller checks the range that it needs."""
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond every float: beyond every bound, said as such
            seconds = sys.float_info.max if value > 0 else -sys.float_info.max
    elif isinstance(value, str):
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            parts = _DURATION_PART.findall(text)
            seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds is None or not math.isfinite(seconds):
        raise ConfigurationError(f"{setting} must be {_DURATION_HELP}, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Bound:
    """The values one setting or option may take: `low` to `high`, `low` itself refused when
    `above` (a zero lease or interval means nothing). `integer` for counts; durations are
    seconds."""

    low: float
    high: float
    above: bool = False
    integer: bool = False
    #: A share (a fraction of a whole), not a duration.
    share: bool = False

    def allows(self, value: float) -> bool:
        return (value > self.low if self.above else value >= self.low) and value <= self.high

    def describe(self) -> str:
        """What is valid, said as the end of "<setting> must be ...": "an integer in 0..10",
        "a duration between 1 s and 1 day", "a duration > 0 s and at most 1000 years"."""
        if self.integer:
            return f"an integer in {self.low:.0f}..{self.high:.0f}"
        if self.share:
            return f"a share > {self.low:g} and at most {self.high:g}"
        low, high = _validation.duration_words(self.low), _validation.duration_words(self.high)
        if self.above:
            return f"a duration > {low} and at most {high}"
        return f"a duration between {low} and {high}"


_LONGEST = _validation.MAX_DURATION_SECONDS  # 1000 years
#: Every bounded setting and option, one table for each place a value comes from (file,
#: environment, JoobQ(...) and Settings(...) in code, the CLI, queue definitions). Two kinds
#: of duration: one added to now() and written into a job row stays within 1000 years, so the
#: time stays one that PostgreSQL's timestamptz and Python's datetime both hold (years
#: 1..9999); one this process waits on stays within a day (an hour for the poll), since a
#: longer one is an operator's mistake, and far within what a thread can wait (a wait beyond
#: threading.TIMEOUT_MAX kills its thread). Counts stay within what their columns and the
#: process can take: retries within a job row's attempt bound (MAX_ATTEMPT).
BOUNDS: dict[str, Bound] = {
    # counts
    "retries": Bound(0, _validation.MAX_ATTEMPT, integer=True),
    "worker_batch_size": Bound(1, 1000, integer=True),
    "prefetch": Bound(0, 10000, integer=True),
    "pool_size": Bound(1, 1000, integer=True),
    "error_alert_threshold": Bound(1, 1_000_000, integer=True),
    "restart_limit": Bound(1, 10_000, integer=True),
    "workers": Bound(1, 10_000, integer=True),
    "throttle_limit": Bound(1, 1_000_000, integer=True),
    # durations written into job rows
    "expires": Bound(0, _LONGEST, above=True),
    "timeout": Bound(0, _LONGEST, above=True),
    "dead_letter_ttl": Bound(0, _LONGEST, above=True),
    "keep_completed": Bound(0, _LONGEST),
    "max_backoff": Bound(0, _LONGEST, above=True),
    "unrunnable_grace": Bound(0, _LONGEST),
    "delay": Bound(0, _LONGEST),
    # durations this process waits on
    "lease": Bound(1, DAY),
    "poll_interval": Bound(0, HOUR, above=True),
    "maintenance_interval": Bound(0, DAY, above=True),
    "shutdown_grace": Bound(0, DAY),
    "error_window": Bound(0, DAY, above=True),
    "restart_cooldown": Bound(0, HOUR),
    "claim_ahead": Bound(0, MINUTE),
    "throttle_period": Bound(0, DAY, above=True),
    # shares
    "self_vacuum_threshold": Bound(0, 1, above=True, share=True),
}


def check_bound(name: str, value: float, *, shown: str | None = None) -> float:
    """`value` when BOUNDS[name] allows it; else ConfigurationError saying that `shown` (the
    value as it was written, default its repr) is out of range, and what the range is."""
    bound = BOUNDS[name]
    if not bound.allows(value):
        written = repr(value) if shown is None else shown
        raise ConfigurationError(f"{written} is out of range: {name} must be {bound.describe()}")
    return value


def _checked_duration(
    setting: str, value: object, valid: str, ok: Callable[[float], bool], *, nullable: bool = False
) -> float | None:
    if value is None and nullable:
        return None
    seconds = _to_seconds(value, setting=setting)
    if not ok(seconds):
        alternative = ", or None" if nullable else ""
        raise ConfigurationError(
            f"{setting} must be {valid}{alternative}, got {_validation.shown(value)}"
        )
    return seconds


def _bounded_duration(
    setting: str, value: object, bound: Bound, *, nullable: bool = False
) -> float | None:
    return _checked_duration(setting, value, bound.describe(), bound.allows, nullable=nullable)


def _checked_int(
    setting: str, value: object, bound: Bound, *, nullable: bool = False
) -> int | None:
    if value is None and nullable:
        return None
    # bool is an int subclass, but True as a batch size is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int) or not bound.allows(value):
        alternative = ", or None" if nullable else ""
        raise ConfigurationError(
            f"{setting} must be {bound.describe()}{alternative}, got {_validation.shown(value)}"
        )
    return value


_NULLABLE = frozenset({"pool_size", "expires", "timeout", "keep_completed"})
_INT_RULES = (
    "retries",
    "worker_batch_size",
    "prefetch",
    "pool_size",
    "error_alert_threshold",
    "restart_limit",
)
# heartbeat_interval is checked apart: its bound is the lease.
_DURATION_RULES = (
    "expires",
    "timeout",
    "dead_letter_ttl",
    "keep_completed",
    "lease",
    "poll_interval",
    "maintenance_interval",
    "shutdown_grace",
    "max_backoff",
    "error_window",
    "restart_cooldown",
    "unrunnable_grace",
    "claim_ahead",
)
_INT_SETTINGS = frozenset(_INT_RULES)
_DURATION_SETTINGS = frozenset({*_DURATION_RULES, "heartbeat_interval"})
_NULLABLE_SETTINGS = frozenset({"database_url", "heartbeat_interval", *_NULLABLE})


def mask_password(url: str) -> str:
    """Return `url` with its password replaced by `***`.

    Masks the `user:password@` part of a URL and any `password=...` parameter, whether in a URL's
    query or in a libpq "key=value" connection string. Everything else is left as written.
    """
    return _PASSWORD_PARAMETER.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", url))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a JoobQ application is configured with; validated and normalized on creation.

    Durations are stored as float seconds and may be given as a timedelta, a number of seconds or
    a string such as "500ms", "1h30m". Strings stand for bools and integers only in `from_env` and
    `load_toml`. `database_url` None means the embedded PostgreSQL; `retries`, `expires` and
    `timeout` apply to jobs that set none (None: never expire, no timeout); `keep_completed` None
    or 0 deletes completed jobs at once; running jobs renew their `lease` every
    `heartbeat_interval` (None: lease / 3), and a lapsed lease is rescued; `notify` False polls
    only, for PgBouncer in transaction mode; `restart_limit` counts worker thread restarts per
    minute, each after `restart_cooldown`; a job no worker can run (its job type or args unknown
    to every worker that claims it) is handed back, with a growing backoff, for up to
    `unrunnable_grace` before it goes dead (0: dead at once).
    """

    database_url: str | None = None
    schema: str = "joobq"
    default_queue: str = "default"
    retries: int = 3
    expires: float | None = 3 * DAY
    timeout: float | None = None
    dead_letter_ttl: float = 7 * DAY
    keep_completed: float | None = None
    #: The most jobs one claim takes. A claim is one round trip whatever its size, so a
    #: backlog of short jobs drains at about batch x the claim rate; 100 keeps a claim's
    #: statement short (a few ms) while making the round trip's cost per job small.
    worker_batch_size: int = 100
    #: Jobs always claimed beyond the free worker slots, waiting in this process (leased,
    #: renewed), whatever the runs last. 0 (the default) leaves claiming ahead to
    #: `claim_ahead`, which never lets a claimed job wait behind a long run.
    prefetch: int = 0
    #: While recent runs of a queue are short (at most a tenth of `claim_ahead`), its fetcher
    #: claims ahead of the free slots (up to 2 x worker_batch_size jobs) as long as the
    #: estimated work of the jobs waiting in this process is at most `claim_ahead` per slot;
    #: once a run outlasts its estimate by `claim_ahead`, the waiting jobs beyond that budget
    #: are handed back unchanged (no retry spent) for another worker. 0 claims only for free
    #: slots (and `prefetch`). See runtime/claim_ahead.py.
    claim_ahead: float = 0.05
    lease: float = 30.0
    heartbeat_interval: float | None = None
    poll_interval: float = 1.0
    notify: bool = True
    maintenance_interval: float = 10.0
    shutdown_grace: float = 30.0
    retry_jitter: float = 0.1
    max_backoff: float = HOUR
    pool_size: int | None = None
    error_window: float = 5 * MINUTE
    error_alert_threshold: int = 10
    restart_limit: int = 5
    restart_cooldown: float = 5.0
    #: How long a job may stay unrunnable (handed back by every worker that claimed it: its
    #: job type or args belong to a deploy none of them runs) before it goes dead. An hour
    #: covers a slow rolling deploy; by then a job no worker knows is a mistake to report.
    unrunnable_grace: float = HOUR
    #: Workers VACUUM the jobs table themselves when dead row versions pass
    #: `self_vacuum_threshold` of it (runtime/maintenance/table_vacuumer.py): for servers whose
    #: autovacuum wakes too seldom for a queue's churn (autovacuum_naptime is one minute by
    #: default). Where autovacuum keeps up, the share stays below and they never do.
    self_vacuum: bool = True
    self_vacuum_threshold: float = 0.1

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        url = self.database_url
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise ConfigurationError(
                f"database_url must be a non-empty URL string, or None for the embedded "
                f"PostgreSQL, got {type(url).__name__}"  # never echo what may be a password
            )
        try:
            validate_schema_name(self.schema)
            default_queue = _validation.queue_name(self.default_queue, what="default_queue")
            object.__setattr__(self, "default_queue", default_queue)  # its NFC form
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None

        for name in _INT_RULES:
            value = getattr(self, name)
            put(name, _checked_int(name, value, BOUNDS[name], nullable=name in _NULLABLE))
        for name in _DURATION_RULES:
            value = getattr(self, name)
            put(name, _bounded_duration(name, value, BOUNDS[name], nullable=name in _NULLABLE))
        put("keep_completed", self.keep_completed or None)  # 0 s of retention is no retention
        lease = self.lease
        heartbeat = _checked_duration(
            "heartbeat_interval",
            self.heartbeat_interval,
            f"a duration > 0 s and < lease ({lease:g} s)",
            lambda s: 0 < s < lease,
            nullable=True,
        )
        put("heartbeat_interval", heartbeat)

        if not isinstance(self.notify, bool):
            raise ConfigurationError(f"notify must be True or False, got {self.notify!r}")
        jitter = self.retry_jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ConfigurationError(f"retry_jitter must be a number in 0..1, got {jitter!r}")
        put("retry_jitter", float(jitter))
        if not isinstance(self.self_vacuum, bool):
            raise ConfigurationError(f"self_vacuum must be True or False, got {self.self_vacuum!r}")
        share, bound = self.self_vacuum_threshold, BOUNDS["self_vacuum_threshold"]
        if isinstance(share, bool) or not isinstance(share, int | float) or not bound.allows(share):
            raise ConfigurationError(
                f"self_vacuum_threshold must be {bound.describe()}, got {_validation.shown(share)}"
            )
        put("self_vacuum_threshold", float(share))

    @property
    def heartbeat_seconds(self) -> float:
        """Seconds between lease renewals: `heartbeat_interval`, else a third of the lease."""
        return self.heartbeat_interval if self.heartbeat_interval is not None else self.lease / 3

    def describe(self) -> dict[str, Any]:
        """Every setting by name as a JSON-ready value (durations in seconds), password masked."""
        described = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.database_url is not None:
            described["database_url"] = mask_password(self.database_url)
        return described

    def __repr__(self) -> str:
        # The generated repr would copy the database password into logs and tracebacks.
        shown = ", ".join(f"{name}={value!r}" for name, value in self.describe().items())
        return f"{type(self).__name__}({shown})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Return the settings set by `JOOBQ_<SETTING>` variables of `environ` (default os.environ).

        database_url comes from JOOBQ_DATABASE_URL, else DATABASE_URL; an empty one counts as
        unset. For settings that may be None, "none" or an empty value means None. Other JOOBQ_*
        variables belong to other tools and are ignored. A value that does not parse raises
        ConfigurationError naming the variable; range checks are left to Settings itself.
        """
        env = os.environ if environ is None else environ
        found: dict[str, Any] = {}
        url = env.get("JOOBQ_DATABASE_URL", "").strip() or env.get("DATABASE_URL", "").strip()
        if url:
            found["database_url"] = url
        for f in fields(cls):
            variable = "JOOBQ_" + f.name.upper()
            if f.name != "database_url" and variable in env:
                found[f.name] = _from_text(f.name, env[variable], variable)
        return found

    @classmethod
    def build(
        cls,
        *,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> tuple[Settings, list[QueueConfig]]:
        """Return the settings and the file's queues: defaults < file < environment < `overrides`.

        The file is `config_file`, else $JOOBQ_CONFIG when set, else none. Every keyword in
        `overrides` wins, None included. An unknown keyword raises ConfigurationError listing the
        valid names; a bad value from the file or environment also names where it was set.
        """
        names = [f.name for f in fields(cls)]
        unknown = ", ".join(repr(name) for name in overrides if name not in names)
        if unknown:
            raise ConfigurationError(f"unknown setting {unknown}; valid: {', '.join(names)}")
        env = os.environ if environ is None else environ
        path = config_file if config_file is not None else env.get("JOOBQ_CONFIG") or None
        values: dict[str, Any] = {}
        queues: list[QueueConfig] = []
        if path is not None:
            values, queues = load_toml(path)
        origins = dict.fromkeys(values, f"config file {str(path)!r}")
        from_env = cls.from_env(env)
        origins |= {name: "JOOBQ_" + name.upper() for name in from_env}
        if "database_url" in from_env:
            origins["database_url"] = "JOOBQ_DATABASE_URL or DATABASE_URL"
        values |= from_env | overrides
        try:
            return cls(**values), queues
        except ConfigurationError as exc:
            # Validation names the setting; an operator also needs to know where it was set.
            setting = str(exc).split(" ", 1)[0]
            if setting not in origins or setting in overrides:
                raise
            raise ConfigurationError(f"{exc} (set by {origins[setting]})") from None


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))


def _from_text(name: str, text: str, source: str) -> Any:
    """The value for setting `name` written as `text` in `source` (a variable or a file key)."""
    cleaned = text.strip()
    lowered = cleaned.lower()
    if name in _NULLABLE_SETTINGS and lowered in ("", "none", "null"):
        return None
    if name in _BOOL_SETTINGS:
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigurationError(
            f"{source}={text!r} is not a boolean; use true/false, yes/no, on/off or 1/0"
        )
    # What is valid, told beside a value that does not parse (e.g. a lease of "1e20").
    valid = f"; {name} must be {BOUNDS[name].describe()}" if name in BOUNDS else ""
    try:
        if name in _INT_SETTINGS:
            return int(cleaned)
        if name in _FLOAT_SETTINGS:
            return float(cleaned)
    except ValueError:
        kind = "an integer" if name in _INT_SETTINGS else "a number"
        raise ConfigurationError(f"{source}={text!r} is not {kind}{valid}") from None
    if name in _DURATION_SETTINGS:
        try:
            return _to_seconds(cleaned, setting=source)
        except ConfigurationError:
            raise ConfigurationError(f"{source}={text!r} is not {_DURATION_HELP}{valid}") from None
    return cleaned


@dataclass(frozen=True)
class QueueConfig:
    """A queue declared in a config file: its name, worker count, job classes, throttle and
    mode.

    `jobs` holds "package.module:ClassName" references, imported by the application. A throttle
    allows `throttle_limit` job starts per `throttle_period` seconds; give both or neither.
    `mode` is "threads" (a thread per worker) or "async" (``async def perform`` jobs as tasks
    on one event loop).
    """

    name: str
    workers: int
    jobs: tuple[str, ...] = ()
    throttle_limit: int | None = None
    throttle_period: float | None = None
    mode: str = "threads"

    def __post_init__(self) -> None:
        try:
            # the NFC form: a queue configured as "café" in NFD runs the NFC queue's jobs
            object.__setattr__(self, "name", _validation.queue_name(self.name))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        label = f"queue {self.name!r}"
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise ConfigurationError(f"{label}: workers must be an integer >= 1, got {workers!r}")
        if workers < 1:
            raise ConfigurationError(f"{label}: workers must be >= 1, got {workers}")
        _checked_int(f"{label}: workers", workers, BOUNDS["workers"])
        if self.mode not in QUEUE_MODES:
            raise ConfigurationError(
                f"{label}: mode must be one of {QUEUE_MODES}, got {self.mode!r}"
            )
        if not isinstance(self.jobs, list | tuple):
            raise ConfigurationError(
                f"{label}: jobs must be a list of references, got {self.jobs!r}"
            )
        for reference in self.jobs:
            if not isinstance(reference, str) or not _JOB_REFERENCE.fullmatch(reference):
                raise ConfigurationError(
                    f"{label}: job {reference!r} must be a 'package.module:ClassName' reference"
                )
        object.__setattr__(self, "jobs", tuple(self.jobs))
        if (self.throttle_limit is None) != (self.throttle_period is None):
            raise ConfigurationError(
                f"{label}: a throttle needs both limit and period, got "
                f"limit={self.throttle_limit!r}, period={self.throttle_period!r}"
            )
        if self.throttle_limit is not None:
            _checked_int(f"{label}: throttle limit", self.throttle_limit, BOUNDS["throttle_limit"])
            period = _bounded_duration(
                f"{label}: throttle period", self.throttle_period, BOUNDS["throttle_period"]
            )
            object.__setattr__(self, "throttle_period", period)


def load_toml(path: str | Path) -> tuple[dict[str, Any], list[QueueConfig]]:
    """Read the `[joobq]` table of a TOML file: (settings found, queues declared).

    Keys are Settings field names; durations are numbers of seconds or duration strings. Each
    `[[joobq.queues]]` has `name`, `workers`, optional `jobs = ["pkg.mod:Class"]` and optional
    `throttle = {limit = 10, period = "1s"}`. Other top-level tables are ignored, so the file may
    be shared. A missing or unreadable file, invalid TOML, a missing [joobq] table or an unknown
    key raises ConfigurationError naming the file.
    """
    path = Path(path)
    where = f"config file {str(path)!r}"
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigurationError(f"{where} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # A TOMLDecodeError's message ends with "(at line N, column M)".
        raise ConfigurationError(f"{where} is not readable TOML: {exc}") from None
    table = document.get("joobq")
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} has no [joobq] table; put the settings under [joobq]")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "queues":
            continue
        if key not in SETTING_NAMES:
            raise ConfigurationError(
                f"{where}: unknown key {key!r} in [joobq]; "
                f"valid keys: {', '.join((*SETTING_NAMES, 'queues'))}"
            )
        values[key] = _from_text(key, value, f"{where}: {key}") if isinstance(value, str) else value
    return values, _queues_from_toml(table.get("queues", []), where)


def _queues_from_toml(entries: object, where: str) -> list[QueueConfig]:
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ConfigurationError(
            f"{where}: joobq.queues must be written as [[joobq.queues]] tables"
        )
    queues: list[QueueConfig] = []
    for entry in entries:
        label = f"{where}: queue {entry.get('name')!r}"
        unknown = sorted(entry.keys() - set(_QUEUE_KEYS))
        if unknown:
            raise ConfigurationError(
                f"{label}: unknown key {unknown[0]!r}; valid keys: {', '.join(_QUEUE_KEYS)}"
            )
        if "name" not in entry or "workers" not in entry:
            raise ConfigurationError(f"{label}: both name and workers are required")
        throttle = entry.get("throttle", {})
        if not isinstance(throttle, dict) or throttle.keys() - {"limit", "period"}:
            raise ConfigurationError(
                f'{label}: throttle must be a table like {{limit = 10, period = "1s"}}, '
                f"got {throttle!r}"
            )
        try:
            queue = QueueConfig(
                name=entry["name"],
                workers=entry["workers"],
                jobs=entry.get("jobs", ()),
                throttle_limit=throttle.get("limit"),
                throttle_period=throttle.get("period"),
                mode=entry.get("mode", "threads"),
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
        if any(existing.name == queue.name for existing in queues):
            raise ConfigurationError(f"{label} is declared twice")
        queues.append(queue)
    return queues
