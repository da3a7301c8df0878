"""`joobq-sql bench`: run the repository's benchmark (bench/run.py) from a source checkout.

The benchmark is a development tool: it lives in the repository's bench/ directory and is not
part of the wheel. Installed from a wheel, this command says so and exits 1.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from ._context import CliContext, pass_cli
from ._errors import CliError

#: The repository's root, when joobq_sql is imported from a source checkout.
_REPOSITORY = Path(__file__).resolve().parents[2]


def bench_directory() -> Path | None:
    """The repository's bench/ directory, or None when joobq_sql is not a source checkout."""
    candidate = _REPOSITORY / "bench"
    if (candidate / "run.py").is_file() and (candidate / "__init__.py").is_file():
        return candidate
    return None


@click.command(
    name="bench",
    short_help="Run the benchmark (from a source checkout).",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@pass_cli
@click.pass_context
def command(ctx: click.Context, cli: CliContext, arguments: tuple[str, ...]) -> None:
    """Run every benchmark workload and print a table (bench/run.py; --help lists its options).

    Without --url (or the global --database-url) it runs on the embedded PostgreSQL, a
    database per workload. With a URL it empties that database's jobs table first.
    """
    directory = bench_directory()
    if directory is None:
        raise CliError(
            "the benchmark is a development tool that lives in the repository's bench/ "
            f"directory, which is not here ({_REPOSITORY / 'bench'}); it is not shipped in "
            "the wheel: run it from a source checkout (python bench/run.py)"
        )
    argv = list(arguments)
    if cli.database_url and not any(a == "--url" or a.startswith("--url=") for a in argv):
        argv = ["--url", cli.database_url, *argv]
    root = str(directory.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    run = importlib.import_module("bench.run")
    try:
        code = run.main(argv)
    except SystemExit as exit_:  # argparse's --help and usage errors
        code = exit_.code
    ctx.exit(code if isinstance(code, int) else 0)
