"""``flyte-private-registry``: the chores around private images and pull secrets.

Exit codes scripts can rely on: 0 success; 1 a check failed (refused login, missing tag,
missing or wrong Secret); 2 usage or configuration error (bad prefix, unset env var);
3 the registry or cluster could not be reached or answered something unexpected.
"""

from __future__ import annotations

import click

from ._common import EXIT_CODES_HELP, import_declarations
from ._demo import demo
from ._docker import configure_docker, login, logout
from ._inspect import check, doctor, explain
from ._pull import preflight, secret


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="flyte-private-registry")
@click.option(
    "-m",
    "--module",
    "modules",
    multiple=True,
    metavar="FILE|MODULE",
    help="Import this workflow file or module first, so the registries it declares in code are known "
    "(config files and FLYTE_PRIVATE_REGISTRIES are always read). Repeatable.",
)
def main(modules: tuple[str, ...]) -> None:
    """Push Flyte images to private registries and make the cluster able to pull them."""
    for module in modules:
        import_declarations(module)


for command in (check, explain, login, logout, configure_docker, secret, preflight, doctor, demo):
    main.add_command(command)
