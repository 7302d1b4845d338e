"""Commands that change a docker config the user names: ``configure-docker``, ``login``, ``logout``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from ..credentials import Secret
from ._common import EXIT_FAILED, EXIT_USAGE, emit_json, err, handle_errors, json_option, out

if TYPE_CHECKING:
    from ..push._docker_routes import RouteChange

_CONFIG_OPTION = click.option(
    "--docker-config",
    "docker_config",
    type=click.Path(file_okay=False, path_type=Path),
    help="Docker config directory to change (default: $DOCKER_CONFIG or ~/.docker).",
)
PASSWORD_ENV = "FLYTE_PRIVATE_REGISTRY_PASSWORD"


def _origin() -> str:
    """Where this process's code declarations came from, for messages (the global ``-m`` options)."""
    context = click.get_current_context(silent=True)
    modules = context.find_root().params.get("modules") if context is not None else None
    return "workflow code loaded with " + " ".join(f"-m {m}" for m in modules) if modules else "Python code"


def _code_declared(targets: tuple[str, ...] | list[str]) -> list[str]:
    """The prefixes of the code declarations (not config-file ones) that cover ``targets``."""
    from .._declaration import declared
    from .._lookup import lookup

    in_code = declared()
    prefixes = []
    for target in targets:
        found = lookup(target)
        if found is not None and in_code.get(found.prefix) is found:
            prefixes.append(found.prefix)
    return prefixes


def _report_declarations(change: RouteChange) -> None:
    """Say which code declarations the helper was given (or forgot), so a route is never a silent half."""
    if change.saved:
        out.print(
            f"saved the declaration of {escape(', '.join(change.saved))} for the helper in "
            f"{escape(str(change.declarations_file))} (no secrets: env var names only)"
        )
    if change.forgotten:
        out.print(f"forgot the saved declaration of {escape(', '.join(change.forgotten))}")


@click.command("configure-docker")
@click.argument("registries", nargs=-1, required=True)
@_CONFIG_OPTION
@click.option("--undo", is_flag=True, help="Remove the routes again (restoring any helper they replaced).")
@json_option
@handle_errors
def configure_docker(registries: tuple[str, ...], docker_config: Path | None, undo: bool, as_json: bool) -> None:
    """Route REGISTRIES to this library's credential helper in a docker config (like gcloud auth configure-docker).

    Afterwards plain `docker push/pull` get their credentials from your PrivateRegistry declarations
    (config file, env vars, ECR tokens minted on demand). Registries declared in workflow code
    (`flyte-private-registry -m wf.py configure-docker HOST`) are saved beside the docker config for
    the helper, without secrets. Reversible with --undo.
    """
    from ..push._docker_routes import code_declarations, helper_hint
    from ..push._docker_routes import configure_docker as run

    found = None if undo else code_declarations(registries, _code_declared(registries), _origin())
    change = run(registries, config_dir=docker_config, undo=undo, declarations=found.entries if found else ())
    if as_json:
        emit_json(
            {
                "config": str(change.config),
                "added": change.added,
                "removed": change.removed,
                "unchanged": change.unchanged,
                "restored": change.restored,
                "helper_on_path": change.helper_on_path,
                "saved": change.saved,
                "forgotten": change.forgotten,
                "skipped": found.skipped if found else {},
            }
        )
        return
    for key in change.added:
        out.print(f"[green]routed[/green] {escape(key)} -> flyte-private-registry in {change.config}")
    for key in change.removed:
        restored = change.restored.get(key)
        out.print(f"[green]removed[/green] route for {escape(key)}" + (f" (restored {restored})" if restored else ""))
    for key in change.unchanged:
        out.print(f"unchanged: {escape(key)}")
    _report_declarations(change)
    for reason in (found.skipped if found else {}).values():
        err.print(f"[yellow]not saved:[/yellow] {escape(reason)}")
    if not change.helper_on_path and not undo:
        err.print(f"[yellow]warning:[/yellow] {helper_hint()}")


def _read_password(password_stdin: bool) -> Secret:
    if password_stdin:
        value = sys.stdin.read().rstrip("\r\n")
    elif os.environ.get(PASSWORD_ENV):
        value = os.environ[PASSWORD_ENV]
    else:
        value = click.prompt("Password", hide_input=True, err=True)
    if not value:
        raise click.UsageError("empty password")
    return Secret(value)


@click.command()
@click.argument("registry")
@click.option(
    "-u",
    "--username",
    help="Log in as this user (password from --password-stdin, "
    f"${PASSWORD_ENV} or a prompt). Without it, the declared credentials are used.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@_CONFIG_OPTION
@handle_errors
def login(registry: str, username: str | None, password_stdin: bool, docker_config: Path | None) -> None:
    """Verify credentials for REGISTRY (push scope) and make docker use them.

    With --username: check that user's password against the registry, then store it the way
    `docker login` does (your credsStore/credHelper, else config.json). Without it: check the
    declared credentials and route REGISTRY to this library's helper. Passwords never come from argv.
    """
    from .._check import check as run_check
    from .._check import probe_repository
    from .._lookup import lookup, registry_for
    from ..push._docker_routes import code_declarations, helper_hint, helper_location, store_login
    from ..push._docker_routes import configure_docker as route

    target = registry_for(registry)
    if username is None:
        # Refuse a declaration the helper cannot be given before touching the network or any file.
        found = code_declarations([target.host], _code_declared([registry]), _origin())
        report = run_check(registry)
        for step in report.steps:
            if step.ok is False:
                err.print(f"[red]error:[/red] {escape(step.detail)}")
                sys.exit(EXIT_FAILED)
        source = target.resolve().source or ""
        if source.startswith(("docker config", "credential helper", "credential store")):
            out.print(
                f"[green]Login verified[/green] for {escape(target.registry)}: docker already finds these "
                f"credentials ({escape(source)}); no route needed."
            )
            return
        if helper_location() is None:
            err.print(f"[red]error:[/red] {helper_hint()}; not routing {target.host}")
            sys.exit(EXIT_USAGE)
        change = route([target.host], config_dir=docker_config, declarations=found.entries)
        out.print(
            f"[green]Login verified[/green] for {escape(target.registry)} ({escape(source)}); docker routes "
            f"{target.host} to flyte-private-registry in {change.config}"
        )
        _report_declarations(change)
        for reason in found.skipped.values():
            err.print(f"[yellow]not saved:[/yellow] {escape(reason)}")
        if lookup(registry) is None:
            err.print(
                "[yellow]note:[/yellow] this registry is not declared in code (-m), a config file or "
                "FLYTE_PRIVATE_REGISTRIES, so the helper resolves it with the defaults for its host."
            )
        return
    password = _read_password(password_stdin)
    from ..credentials import Credential
    from ..distribution import RegistryClient

    credential = Credential(username, password, source="login command")
    with RegistryClient(
        target.host,
        credential,
        insecure=target.insecure,
        ca_file=target.ca_file,
        actions=("pull", "push"),
        refusal_hint=target.provider.refusal_hint,
    ) as client:
        client.login(probe_repository(target.reference))
    where = store_login(target.host, username, password, config_dir=docker_config)
    out.print(f"[green]Login succeeded[/green] for {escape(username)} at {target.host}; stored in {escape(where)}")


@click.command()
@click.argument("registry")
@_CONFIG_OPTION
@handle_errors
def logout(registry: str, docker_config: Path | None) -> None:
    """Remove what `login` did for REGISTRY: stored credentials, or the route and the declarations saved with it."""
    from .._lookup import registry_for
    from ..push._docker_routes import configure_docker as route
    from ..push._docker_routes import remove_login

    host = registry_for(registry).host
    change = route([host], config_dir=docker_config, undo=True)
    if change.removed:
        out.print(f"removed the flyte-private-registry route for {host}")
    _report_declarations(change)
    if change.removed or change.forgotten:
        return
    if remove_login(host, config_dir=docker_config):
        out.print(f"removed credentials for {host}")
    else:
        out.print(f"no stored credentials or route for {host}")
