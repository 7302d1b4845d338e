"""``demo``: the whole story on one machine with a Docker engine and no cloud account."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from ._common import EXIT_FAILED, err, out


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Where the workflow, package and rendered objects go (0700).",
)
@click.option(
    "--builder",
    type=click.Choice(["offline", "default"]),
    default="offline",
    show_default=True,
    help="offline: the docker-cli builder (no internet). default: flytekit's own builder "
    "(needs internet access and buildx).",
)
@click.option("--project", default="flytesnacks", show_default=True)
@click.option("--domain", default="development", show_default=True)
@click.option("--keep", is_flag=True, help="Leave the registry (and any engine the demo started) running.")
def demo(workdir: Path, builder: str, project: str, domain: str, keep: bool) -> None:
    """Start a local authenticated registry, push through the library, package, render the Secret, pull back."""
    from .._errors import FlytePrivateRegistryError
    from ..demo._run import run
    from ..demo._services import DemoError

    try:
        run(workdir.resolve(), builder=builder, project=project, domain=domain, keep=keep, console=out)
    except (DemoError, FlytePrivateRegistryError) as error:
        err.print(f"[red]demo failed:[/red] {escape(str(error))}")
        sys.exit(EXIT_FAILED)
