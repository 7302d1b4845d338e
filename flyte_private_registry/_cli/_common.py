"""Output and error handling shared by the commands: rich for people, ``--json`` for scripts."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from .._errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    CredentialsError,
    FlytePrivateRegistryError,
    PushVerificationError,
    RegistryError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 a check failed; 2 usage or configuration error; "
    "3 registry or cluster unreachable or answering unexpectedly."
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(func)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, (ConfigurationError, ValueError)):
        return EXIT_USAGE
    if isinstance(error, (AuthenticationError, AuthorizationError, CredentialsError, PushVerificationError)):
        return EXIT_FAILED
    if isinstance(error, RegistryError):
        return EXIT_UNREACHABLE if error.status is None or error.status >= 500 else EXIT_FAILED
    return EXIT_UNREACHABLE


def handle_errors(func: F) -> F:
    """Library errors become one red line on stderr and a meaningful exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (FlytePrivateRegistryError, ValueError) as error:
            err.print(f"[red]error:[/red] {escape(str(error))}")
            sys.exit(exit_code_for(error))

    return wrapper  # type: ignore[return-value]


def mark(ok: bool | None) -> str:
    return {True: "[green]ok[/green]", False: "[red]FAIL[/red]", None: "[yellow]?[/yellow]"}[ok]
