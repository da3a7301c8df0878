"""Importing an application named `package.module:attribute`, as uvicorn does."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from ..app import JoobQ
from ._errors import CliError


def import_app(reference: str, *, param_hint: str = "'--app'") -> JoobQ:
    """Import the JoobQ application `reference` ("module:attribute").

    The current directory goes first on sys.path, so `--app myproject.jobs:app` works from a
    project's root without installing it. A reference that does not name a JoobQ is bad usage
    (exit 2); an exception raised by the application's own module is a failure (exit 1).
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(
            f"{reference!r} is not of the form 'package.module:attribute'", param_hint=param_hint
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise click.BadParameter(
                f"cannot import module {module_name!r} (from {reference!r})", param_hint=param_hint
            ) from None
        raise CliError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise CliError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise click.BadParameter(
                f"module {module_name!r} has no attribute {attribute!r}", param_hint=param_hint
            ) from None
    if not isinstance(value, JoobQ):
        raise click.BadParameter(
            f"{reference!r} is a {type(value).__name__}, not a JoobQ application",
            param_hint=param_hint,
        )
    return value
