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
    MissingExtra,
    PreflightError,
    PushVerificationError,
    RegistryError,
    RegistryUnavailable,
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
    if isinstance(error, RegistryUnavailable):  # 429/5xx after the retries, timeouts: nothing was judged
        return EXIT_UNREACHABLE
    if isinstance(error, (ConfigurationError, ValueError, MissingExtra)):
        return EXIT_USAGE
    if isinstance(
        error, (AuthenticationError, AuthorizationError, CredentialsError, PushVerificationError, PreflightError)
    ):
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
        except OSError as error:  # a file the user named: unwritable, a symlink we refuse to follow, ...
            detail = f"{error.strerror or error}: {error.filename}" if error.filename else str(error)
            err.print(f"[red]error:[/red] {escape(detail)}")
            sys.exit(EXIT_USAGE)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click reports these itself
        except Exception as error:  # a bug: say where, never a traceback (its locals could hold a secret)
            err.print(f"[red]internal error:[/red] {type(error).__name__} at {_where(error)}; please report it")
            sys.exit(EXIT_UNREACHABLE)

    return wrapper  # type: ignore[return-value]


def _where(error: BaseException) -> str:
    """``file:line`` of the innermost frame: enough for a bug report, without the message or locals."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def import_declarations(target: str) -> None:
    """Import a workflow file or module the way pyflyte would, so its ``PrivateRegistry(...)`` lines run."""
    import importlib
    import importlib.util
    from pathlib import Path

    path = Path(target)
    try:
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"no such file {target}")
            sys.path.insert(0, str(path.resolve().parent))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            importlib.import_module(target)
    except Exception as error:  # the user's code: report it, do not crash with a traceback
        raise click.UsageError(f"cannot import {target}: {type(error).__name__}: {error}") from None


def not_declared_message(target: str) -> str:
    return (
        f"{target} lies under no declared registry. Declare it in flyte-private-registry.toml or "
        "FLYTE_PRIVATE_REGISTRIES, or load the code that declares it: `flyte-private-registry -m workflows.py ...`"
    )


def mark(ok: bool | None) -> str:
    return {True: "[green]ok[/green]", False: "[red]FAIL[/red]", None: "[yellow]?[/yellow]"}[ok]
