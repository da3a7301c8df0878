"""`joobq-sql doctor`: a health check of a joobq-sql database, for people and for monitoring.

It reports the schema's migration revision against the head this joobq-sql ships, what each
queue holds, the jobs table's live and dead tuples (pg_stat_user_tables), the oldest open
transaction of the database (pg_stat_activity and prepared transactions) and the signs of live
workers (their heartbeats in the workers table, running jobs with live leases, listener
sessions). It exits 0 when all is well, else 1
with one line on stderr that says what is wrong and what to do:

- the schema is not migrated to head;
- a transaction has pinned the xmin horizon for longer than --max-transaction-age: VACUUM cannot
  remove the rows deleted since it began, and every completed job is a deleted row;
- running jobs' leases expired longer than --max-stale-lease ago and nobody rescued them: no
  worker runs maintenance;
- a queue's jobs have waited longer than --max-wait while none of its jobs runs (the message
  says whether a live worker, one heard from within three of its heartbeat intervals, runs
  it).

It also gives advice that does not fail the check: autovacuum off, or napping longer than
15 s between runs, lets a busy jobs table bloat and slow down. The workers' self-vacuum duty
(the `self_vacuum` setting, on by default; runtime/maintenance/table_vacuumer.py) covers the jobs
table when their role may VACUUM it, and then a long naptime needs no change: the shorter
naptime is advised only when self-vacuum is off or the role may not vacuum the table. The check
reads the setting as a worker started here would (JOOBQ_SELF_VACUUM, $JOOBQ_CONFIG) unless
--self-vacuum/--no-self-vacuum says, and tests the privilege of the role it connects as.

Its statements are in joobq_sql/cli/sql/doctor_*.sql; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import click

from ..store.postgres.hot_table import MAINTAIN_SERVER_VERSION
from ..store.postgres.schema import validate_schema_name
from ..store.presence import ALIVE_HEARTBEATS
from ._context import CliContext, json_option, pass_cli
from ._errors import CliError
from ._output import age, emit_json, print_table, safe_text, when

F = TypeVar("F", bound=Callable[..., Any])

#: Defaults of the thresholds (seconds).
MAX_TRANSACTION_AGE = 600.0
MAX_STALE_LEASE = 300.0
MAX_WAIT = 600.0
#: Open transactions reported (oldest first).
TRANSACTIONS_SHOWN = 5
#: Above this autovacuum_naptime (seconds), advise a shorter one (docs/performance.md, Ageing).
ADVISED_NAPTIME = 15.0


@cache
def _statement(name: str) -> str:
    return resources.files(__package__ + ".sql").joinpath(f"{name}.sql").read_text("utf-8")


def _duration(_ctx: click.Context, param: click.Parameter, value: str) -> float:
    from ..errors import ConfigurationError
    from ..settings import parse_duration

    try:
        seconds = parse_duration(value, setting=f"--{param.name.replace('_', '-')}")
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param=param) from None
    if seconds <= 0:
        raise click.BadParameter(f"must be a duration > 0, got {value!r}", param=param)
    return seconds


def _threshold(name: str, default: float, help_text: str) -> Callable[[F], F]:
    return click.option(
        f"--{name}",
        callback=_duration,
        default=f"{default:g}s",
        show_default=True,
        metavar="DURATION",
        help=help_text,
    )


@click.command(name="doctor", short_help="Check the database's health (exit 1 if unhealthy).")
@_threshold(
    "max-transaction-age",
    MAX_TRANSACTION_AGE,
    "Unhealthy when a transaction that pins the xmin horizon is older than this.",
)
@_threshold(
    "max-stale-lease",
    MAX_STALE_LEASE,
    "Unhealthy when a running job's lease expired this long ago and nobody rescued it.",
)
@_threshold(
    "max-wait",
    MAX_WAIT,
    "Unhealthy when a queue's jobs waited this long while none of its jobs runs.",
)
@click.option(
    "--self-vacuum/--no-self-vacuum",
    default=None,
    help="Whether the workers run with self_vacuum on. Default: as the environment "
    "(JOOBQ_SELF_VACUUM, $JOOBQ_CONFIG) sets it for a worker started here, else on.",
)
@json_option
@pass_cli
def command(
    cli: CliContext,
    max_transaction_age: float,
    max_stale_lease: float,
    max_wait: float,
    self_vacuum: bool | None,
) -> None:
    """Report the migration revision, per-queue counts, dead tuples on the jobs table, the
    oldest open transaction and the signs of live workers; exit 1 with the reason when
    something is wrong."""
    from ..settings import Settings
    from ..store.postgres.store import PostgresStore

    if self_vacuum is None:
        self_vacuum = Settings.build()[0].self_vacuum
    store = PostgresStore(cli.url(), schema=cli.schema, pool_size=1)
    try:
        report = diagnose(
            store,
            max_transaction_age=max_transaction_age,
            max_stale_lease=max_stale_lease,
            max_wait=max_wait,
            self_vacuum=self_vacuum,
        )
    finally:
        store.close()
    if cli.json:
        emit_json(report)  # JSON escapes every control character itself
    else:
        _print(_shown(report))
    if report["problems"]:
        raise CliError("; ".join(report["problems"]))


def diagnose(
    store: Any,
    *,
    max_transaction_age: float,
    max_stale_lease: float,
    max_wait: float,
    self_vacuum: bool = True,
) -> dict[str, Any]:
    """The health report of `store`'s database (a PostgresStore) as a JSON-ready dict; its
    "problems" list is empty when all is well. `self_vacuum`: the workers' setting."""
    from .. import migrate

    schema = store.schema
    problems: list[str] = []
    revision = migrate.current(store.engine, schema=schema)
    head = migrate.head()
    report: dict[str, Any] = {
        "ok": False,
        "problems": problems,
        "schema": schema,
        "revision": revision,
        "head": head,
        "migrated": revision == head,
    }
    if revision != head:
        flag = "" if schema == "joobq" else f" --schema {schema}"
        if revision is None:
            problems.append(f'no joobq tables in schema "{schema}"; run: joobq-sql{flag} migrate')
        elif revision in migrate.history():
            problems.append(
                f"the schema is at revision {revision}, not at head {head}; "
                f"run: joobq-sql{flag} migrate"
            )
        else:
            problems.append(
                f"the schema is at revision {revision}, which this joobq-sql does not know; "
                "upgrade joobq-sql"
            )
    report["settings"] = settings = _rows(store, "doctor_settings", {})[0]
    report["self_vacuum"] = vacuum = _self_vacuum(store, self_vacuum, migrated=revision is not None)
    report["advice"] = _advice(settings, vacuum)
    report["transactions"] = transactions = _rows(
        store, "doctor_transactions", {"limit": TRANSACTIONS_SHOWN}
    )
    report["oldest_transaction"] = transactions[0] if transactions else None
    pinning = next((t for t in transactions if t["pins_xmin"]), None)
    if revision is None:
        report["queues"], report["jobs_table"], report["workers"] = [], None, None
    else:
        table = _rows(store, "doctor_jobs_table", {"schema": schema})
        report["jobs_table"] = table[0] if table else None
        report["queues"] = queues = _queues(store) if revision == head else []
        report["workers"] = workers = _rows(store, "doctor_workers", {})[0]
        live = _live_workers(store) if revision == head else []
        workers["live"] = live
        serving = {queue for worker in live for queue in worker["queues"]}
        stale = workers["oldest_expired_lease_age"]
        if stale is not None and stale > max_stale_lease:
            problems.append(
                f"{workers['expired_leases']} running jobs' leases expired up to {age(stale)} "
                "ago and no worker rescued them: no worker is running maintenance; start one "
                "(joobq-sql worker --app ...)"
            )
        for queue in queues:
            waited = queue["oldest_waiting_age"]
            if queue["paused"] or not queue["waiting"] or queue["running"]:
                continue
            if waited is not None and waited > max_wait:
                why = (
                    "a live worker runs it: is it stuck?"
                    if queue["queue"] in serving
                    else "no live worker runs it; start one (joobq-sql worker --app ...)"
                )
                problems.append(
                    f"queue {queue['queue']!r}: {queue['waiting']} jobs have waited up to "
                    f"{age(waited)} and none of its jobs runs; {why}"
                )
    if pinning is not None and pinning["age_s"] > max_transaction_age:
        who = f"pid {pinning['pid']}" if pinning["pid"] is not None else "a prepared transaction"
        jobs_table = report.get("jobs_table") or {}
        dead = f" ({jobs_table['dead_tuples']} dead tuples now)" if jobs_table else ""
        fix = _ending_advice(store, pinning)
        problems.append(
            f"a transaction has been open for {age(pinning['age_s'])} ({who}, "
            f"{pinning['state']}, application {pinning['application_name']!r}, user "
            f"{pinning['usename']!r}) and pins the xmin horizon: VACUUM cannot remove the "
            f"jobs deleted since it began from {schema}.jobs{dead}; end it ({fix})"
        )
    report["ok"] = not problems
    return report


def _ending_advice(store: Any, pinning: dict[str, Any]) -> str:
    """How to end the transaction `pinning`, as SQL to paste: its values quoted by psycopg on
    a connection of the database (a gid is any text, quotes and semicolons included). A gid
    that holds control characters is named, not offered as SQL: no terminal shows it as it is,
    so what an operator copies from the screen would not be it."""
    from psycopg import sql

    if pinning["pid"] is not None:
        statement = sql.SQL("SELECT pg_terminate_backend({})").format(sql.Literal(pinning["pid"]))
    else:
        gid = str(pinning["application_name"])
        if safe_text(gid, one_line=True) != gid:
            return (
                f"roll back the prepared transaction {gid!r}: its gid holds control "
                "characters, so take it from pg_prepared_xacts for ROLLBACK PREPARED "
                "rather than typing it"
            )
        statement = sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid))
    with store.engine.connect() as conn:
        return statement.as_string(conn.connection.driver_connection)


def _self_vacuum(store: Any, enabled: bool, *, migrated: bool) -> dict[str, Any]:
    """Whether the workers' self-vacuum covers the jobs table: the setting is on and the role
    may VACUUM the table. `grant` is the SQL that would let the role (PostgreSQL 17+), quoted
    by psycopg; None where it may already, or where only ownership would do (15 and 16)."""
    from psycopg import sql

    if not migrated:  # no jobs table to vacuum, nor to own
        return dict.fromkeys(("may_vacuum", "role", "owner", "grant")) | {
            "enabled": enabled,
            "covers_jobs_table": False,
        }
    (rights,) = _rows(store, "doctor_vacuum_rights", {})
    (health,) = store.hot_table_health()
    grant = None
    if not health.may_vacuum and rights["server_version"] >= MAINTAIN_SERVER_VERSION:
        statement = sql.SQL("GRANT MAINTAIN ON {}.jobs TO {}").format(
            sql.Identifier(store.schema), sql.Identifier(rights["role"])
        )
        with store.engine.connect() as conn:
            grant = statement.as_string(conn.connection.driver_connection)
    return {
        "enabled": enabled,
        "covers_jobs_table": enabled and health.may_vacuum,
        "may_vacuum": health.may_vacuum,
        "role": rights["role"],
        "owner": rights["owner"],
        "grant": grant,
    }


def _advice(settings: dict[str, Any], vacuum: dict[str, Any]) -> list[str]:
    """Advice on autovacuum, given the workers' self-vacuum (`vacuum`, see _self_vacuum)."""
    if not settings["autovacuum"]:
        if vacuum["covers_jobs_table"]:
            return [
                "autovacuum is off: the workers' self-vacuum keeps the jobs table small, but "
                "nothing vacuums joobq's other tables or the rest of the database, nor freezes "
                "old rows; turn it on (autovacuum = on)"
            ]
        return [
            "autovacuum is off: nothing removes the rows every finished job leaves behind, "
            "and the jobs table grows and slows; turn it on (autovacuum = on)"
        ]
    naptime = settings["autovacuum_naptime_s"]
    if naptime <= ADVISED_NAPTIME or vacuum["covers_jobs_table"]:
        return []
    if vacuum["may_vacuum"] is None:  # not migrated: nothing to say about the workers yet
        why = "the workers' self-vacuum has no jobs table to look after yet"
        fix = ""
    elif not vacuum["enabled"]:
        why = "the workers' self-vacuum is off (self_vacuum = false)"
        fix = "turn it on (self_vacuum = true, the default), or "
    else:
        why = (
            f"role {vacuum['role']!r}, which this check connects as, may not VACUUM the jobs "
            "table, so the workers' self-vacuum cannot run if they use it too"
        )
        grant = f"{vacuum['grant']}; " if vacuum["grant"] else ""
        fix = f"let it ({grant}or run the workers as the table's owner, {vacuum['owner']!r}), or "
    return [
        f"autovacuum_naptime is {naptime:g}s and {why}: a busy jobs table bloats and slows "
        "between vacuums (a million-job drain lost a fifth of its speed at 60 s, none at 5 s); "
        f"{fix}set it to 5-10s (ALTER SYSTEM SET autovacuum_naptime = '5s'; "
        "SELECT pg_reload_conf())"
    ]


def _rows(store: Any, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    sql = _statement(name).replace("{schema}", f'"{validate_schema_name(store.schema)}"')
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.exec_driver_sql(sql, params).mappings().all()]


def _live_workers(store: Any) -> list[dict[str, Any]]:
    """Workers heard from within a few of their own heartbeat intervals (the workers table;
    store/presence.py): a killed worker's row stops counting once it misses them."""
    now = store.now()
    return [
        {
            "worker_id": w.worker_id,
            "host": w.host,
            "pid": w.pid,
            "queues": list(w.queues),
            "last_seen_age": (now - w.last_seen_at).total_seconds(),
            "heartbeat_interval": w.heartbeat_interval,
        }
        for w in store.live_workers()
    ]


def _queues(store: Any) -> list[dict[str, Any]]:
    return [
        {
            "queue": s.queue,
            "paused": s.paused,
            "waiting": s.waiting,
            "due_later": s.due_later,
            "running": s.running,
            "retrying": s.retrying,
            "dead": s.dead,
            "oldest_waiting_age": s.oldest_waiting_age,
        }
        for s in store.queue_stats().values()
    ]


def _shown(value: Any) -> Any:
    """The report with every text in it safe for a terminal (safe_text): the database's text
    (queue names, worker ids, transaction ids) must not drive the terminal."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(item) for item in value]
    return value


def _print(report: dict[str, Any]) -> None:
    state = "migrated" if report["migrated"] else "NOT at head"
    click.echo(
        f"schema {report['schema']}: revision {report['revision']} (head {report['head']}), {state}"
    )
    if report["queues"]:
        rows = [
            (
                q["queue"] + (" (paused)" if q["paused"] else ""),
                q["waiting"],
                q["due_later"],
                q["running"],
                q["retrying"],
                q["dead"],
                age(q["oldest_waiting_age"]),
            )
            for q in report["queues"]
        ]
        columns = ["queue", "waiting", "due later", "running", "retrying", "dead", "oldest"]
        print_table(columns, rows)
    table = report["jobs_table"]
    if table is not None:
        click.echo(
            f"jobs table: {table['live_tuples']} live tuples, {table['dead_tuples']} dead "
            f"tuples, {table['vacuums']} vacuums (last "
            f"{when(table['last_autovacuum'] or table['last_vacuum'])}), "
            f"{table['total_bytes'] // 1024} kB"
        )
    oldest = report["oldest_transaction"]
    if oldest is None:
        click.echo("oldest transaction: none open")
    else:
        pins = "pins the xmin horizon" if oldest["pins_xmin"] else "holds no snapshot"
        click.echo(
            f"oldest transaction: {age(oldest['age_s'])} ({oldest['kind']} pid {oldest['pid']}, "
            f"{oldest['state']}, application {oldest['application_name']!r}), {pins}"
        )
    workers = report["workers"]
    if workers is not None:
        click.echo(
            f"workers: {len(workers['live'])} alive (heard from within {ALIVE_HEARTBEATS} "
            "heartbeats), "
            f"{workers['live_leases']} running jobs with live leases "
            f"({workers['workers_with_leases']} workers), {workers['expired_leases']} with "
            f"expired leases, {workers['listener_sessions']} listener sessions"
        )
        for worker in workers["live"]:
            click.echo(
                f"  {worker['worker_id']} (queues {', '.join(worker['queues'])}), seen "
                f"{age(worker['last_seen_age'])} ago"
            )
    vacuum = report["self_vacuum"]
    if vacuum["covers_jobs_table"]:
        click.echo(
            f"self-vacuum: on, and role {vacuum['role']!r} may VACUUM the jobs table: the "
            "workers vacuum it themselves when its dead share passes self_vacuum_threshold, "
            "whatever autovacuum_naptime is"
        )
    elif vacuum["may_vacuum"] is not None:
        state = "on" if vacuum["enabled"] else "off"
        may = "may" if vacuum["may_vacuum"] else "may not"
        click.echo(
            f"self-vacuum: {state}; role {vacuum['role']!r} {may} VACUUM the jobs table: "
            "it relies on the server's autovacuum"
        )
    for advice in report["advice"]:
        click.echo(f"advice: {advice}")
    click.echo("ok" if report["ok"] else f"{len(report['problems'])} problems")
