"""Pull-side commands: ``secret render|apply`` (cluster objects) and ``preflight``.

Credentials only ever go to a file the user names (written 0600) or to stdout when asked with
``--stdout``; summaries list kinds, namespaces and names, never data.

Before a credential is written anywhere, ``secret render`` and ``secret apply`` log in to its
registry with exactly that credential and pull scope (``--no-verify`` skips it): a wrong password
would otherwise reach the cluster and surface only as ``ImagePullBackOff`` on the first pod.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape

from .._declaration import DEFAULT_DOMAINS
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    emit_json,
    err,
    handle_errors,
    json_option,
    mark,
    not_declared_message,
    out,
)

F = TypeVar("F", bound=Callable[..., Any])


def _namespace_options(func: F) -> F:
    for option in reversed(
        (
            click.option(
                "-p",
                "--project",
                "projects",
                multiple=True,
                help="Flyte project; namespaces are <project>-<domain>. Repeatable.",
            ),
            click.option(
                "-d",
                "--domain",
                "domains",
                multiple=True,
                help="Flyte domain (default: development, staging, production). Repeatable.",
            ),
            click.option("-n", "--namespace", "namespaces", multiple=True, help="Extra namespace. Repeatable."),
        )
    ):
        func = option(func)
    return func


def _object_options(func: F) -> F:
    for option in reversed(
        (
            click.argument("registries", nargs=-1),
            click.option(
                "--service-account",
                "service_accounts",
                multiple=True,
                help="Patch these ServiceAccounts (e.g. default) to list the Secret. Repeatable.",
            ),
            click.option(
                "--pod-template",
                help="Also a PodTemplate of this name for FlytePropeller's "
                "default-pod-template-name (prints the propeller config snippet).",
            ),
            click.option(
                "--propeller-namespace",
                default="flyte",
                show_default=True,
                help="Namespace FlytePropeller reads the PodTemplate from.",
            ),
            click.option(
                "--refresher",
                type=click.Choice(["cronjob", "external-secrets"]),
                help="Short-lived tokens (ECR): objects that keep the Secret fresh, not a static one.",
            ),
            click.option("--role-arn", help="IRSA role for the cronjob refresher's ServiceAccount."),
            click.option(
                "--allow-short-lived",
                is_flag=True,
                help="Emit a static Secret from a short-lived token anyway (it will expire).",
            ),
            click.option(
                "--no-verify",
                "no_verify",
                is_flag=True,
                help="Do not log in to the registries with the credentials first (e.g. a registry this machine "
                "cannot reach).",
            ),
        )
    ):
        func = option(func)
    return _namespace_options(func)


def _registries(names: tuple[str, ...]) -> list[Any]:
    """Declared registries only: an undeclared one would get a made-up Secret name no task references."""
    from .._catalog import CATALOG
    from .._lookup import lookup

    if names:
        found = [lookup(name) for name in names]
        missing = [name for name, registry in zip(names, found, strict=True) if registry is None]
        if missing:
            raise click.UsageError(not_declared_message(", ".join(missing)))
        return found
    declared = CATALOG.registries()
    if not declared:
        raise click.UsageError(
            "no registry given and none declared (FLYTE_PRIVATE_REGISTRIES or a config file): "
            "pass REGISTRIES, e.g. `secret render ghcr.io/acme --project flytesnacks`"
        )
    return declared


def _build(
    registries: tuple[str, ...],
    projects: tuple[str, ...],
    domains: tuple[str, ...],
    namespaces: tuple[str, ...],
    service_accounts: tuple[str, ...],
    pod_template: str | None,
    propeller_namespace: str,
    refresher: str | None,
    role_arn: str | None,
    allow_short_lived: bool,
    no_verify: bool,
) -> Any:
    """Render the objects; unless ``no_verify``, prove every credential they hold before returning them."""
    from ..pull._objects import cluster_objects
    from ..pull._refresher import CronJobRefresher, ExternalSecretsRefresher

    if not projects and not namespaces:
        raise click.UsageError("give at least one --project (namespaces <project>-<domain>) or --namespace")
    chosen = None
    if refresher == "cronjob":
        chosen = CronJobRefresher(role_arn=role_arn) if role_arn else CronJobRefresher()
    elif refresher == "external-secrets":
        chosen = ExternalSecretsRefresher()
    declared = _registries(registries)
    objects = cluster_objects(
        declared,
        projects=projects,
        domains=domains or DEFAULT_DOMAINS,
        namespaces=namespaces,
        service_account=list(service_accounts) or None,
        pod_template=pod_template,
        propeller_namespace=propeller_namespace,
        refresher=chosen,
        allow_short_lived=allow_short_lived,
    )
    if not no_verify:
        _verify(objects, declared)
    return objects


def _verify(objects: Any, registries: list[Any]) -> None:
    """Log in to each registry with the exact credential its Secret holds, pull scope; raise if refused.

    The credential is read back from the rendered ``.dockerconfigjson``, not resolved again, so
    what is proven is what would be stored. A refusal is an ``AuthenticationError`` or
    ``AuthorizationError`` (exit 1), an unreachable registry a ``RegistryError`` (exit 3); both
    say how to skip the check. Refreshed Secrets (ECR) hold no credential yet: nothing to prove.
    """
    import base64

    from .._check import probe_repository
    from .._errors import AuthenticationError, AuthorizationError, RegistryError
    from .._reference import docker_config_key
    from ..credentials import Credential, Resolution, Secret
    from ..pull._dockerconfigjson import DOCKERCONFIGJSON_KEY, parse

    proven: set[tuple[str, str, str]] = set()
    for document in objects.documents:
        if not document.sensitive or document.kind != "Secret":
            continue
        entries = {e.key: e for e in parse(base64.b64decode(document.manifest["data"][DOCKERCONFIGJSON_KEY]))}
        sources = document.manifest["metadata"].get("annotations", {}).get("flyte-private-registry/credential-sources")
        for registry in registries:
            entry = entries.get(docker_config_key(registry.reference.canonical_host))
            if registry.pull_secret_name != document.name or entry is None:
                continue
            key = (document.name, registry.registry, entry.key)
            if key in proven:
                continue  # the same Secret in the next namespace: same credential
            credential = Credential(
                entry.username, Secret(entry.password.get_secret_value()), source=sources or "the pull secret"
            )
            resolution = Resolution(resource=registry.reference, credential=credential, attempts=())
            err.print(
                f"verifying the credential for Secret {escape(document.name)} against {escape(registry.registry)}"
            )
            try:
                with registry.client(actions=("pull",), resolution=resolution) as client:
                    client.login(probe_repository(registry.reference))
            except RegistryError as error:
                if isinstance(error, (AuthenticationError, AuthorizationError)):
                    kind: type[RegistryError] = (
                        AuthorizationError if isinstance(error, AuthorizationError) else AuthenticationError
                    )
                    advice = "Nothing was written. Fix the credential, or pass --no-verify to skip this check."
                else:
                    kind = RegistryError
                    advice = (
                        "Nothing was written. Check the registry's address and this machine's network, or pass "
                        "--no-verify to write it unchecked."
                    )
                raise kind(
                    f"not storing the credential for {registry.registry} in Secret {document.name}: {error} {advice}",
                    host=error.host,
                    status=error.status,
                ) from None
            proven.add(key)


def _summary(objects: Any) -> None:
    for document in objects.documents:
        where = f"{document.namespace}/" if document.namespace else ""
        err.print(f"  {document.kind} {escape(where + document.name)}")
    _print_propeller_config(objects)


def _print_propeller_config(objects: Any) -> None:
    """The snippet FlytePropeller needs for a default PodTemplate (stderr: stdout may carry YAML)."""
    if objects.propeller_config:
        err.print("FlytePropeller configuration (configmap flyte-propeller-config, k8s plugin):")
        err.print(objects.propeller_config, markup=False)


@click.group()
def secret() -> None:
    """Kubernetes objects that let Flyte pods pull private images: Secret per namespace, SA patch, PodTemplate."""


@secret.command("render")
@_object_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the YAML here (mode 0600: it holds credentials).",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the YAML (with credentials) on stdout instead.")
@handle_errors
def render(output: Path | None, to_stdout: bool, **options: Any) -> None:
    """Render the objects for REGISTRIES (default: all declared) as YAML, to a file or, on request, stdout."""
    if (output is None) == (not to_stdout):
        raise click.UsageError("choose exactly one of --output FILE (written 0600) or --stdout")
    objects = _build(**options)
    if to_stdout:
        click.echo(objects.yaml(), nl=False)
        return
    assert output is not None
    path = objects.write(output)
    err.print(f"[green]wrote[/green] {escape(str(path))} (0600):")
    _summary(objects)


@secret.command("apply")
@_object_options
@click.option("--create-namespaces", is_flag=True, help="Create missing namespaces.")
@click.option(
    "--adopt",
    is_flag=True,
    help="Merge our registry's entry into a Secret (or PodTemplate) of the same name that someone else "
    "created, keeping everything else in it. Without it such an object is refused and left untouched.",
)
@json_option
@handle_errors
def apply(create_namespaces: bool, adopt: bool, as_json: bool, **options: Any) -> None:
    """Create or update the objects in the current kubeconfig context (idempotent; needs the kubernetes extra).

    Updates only objects it created; never removes what another writer put in an object.
    """
    objects = _build(**options)
    # ClusterError (e.g. a Secret someone else created, without --adopt) -> exit 3 via handle_errors
    results = objects.apply(create_namespaces=create_namespaces, adopt=adopt)
    if as_json:
        emit_json([{"kind": r.kind, "namespace": r.namespace, "name": r.name, "action": r.action} for r in results])
        return
    for result in results:
        out.print(f"  {escape(str(result))}")
    _print_propeller_config(objects)


def _secrets_from_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    import yaml

    by_namespace: dict[str, list[dict[str, Any]]] = {}
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as error:
        raise click.UsageError(f"--secrets-from {path} is not YAML: {str(error).splitlines()[0]}") from None
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "Secret":
            namespace = (document.get("metadata") or {}).get("namespace", "default")
            by_namespace.setdefault(namespace, []).append(document)
    return by_namespace


@click.command()
@click.argument("images", nargs=-1, required=True)
@_namespace_options
@click.option(
    "--secrets-from",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read Secrets from this YAML (e.g. `secret render -o`) instead of the cluster.",
)
@json_option
@handle_errors
def preflight(
    images: tuple[str, ...],
    projects: tuple[str, ...],
    domains: tuple[str, ...],
    namespaces: tuple[str, ...],
    secrets_from: Path | None,
    as_json: bool,
) -> None:
    """Can pods in each namespace pull IMAGES? Secret exists, right type, matching host entry, login, tag."""
    from .._lookup import lookup
    from ..pull._preflight import preflight as run

    if not projects and not namespaces:
        raise click.UsageError("give at least one --namespace or --project")
    undeclared = [image for image in images if lookup(image) is None]
    if undeclared:
        raise click.UsageError(not_declared_message(", ".join(undeclared)))
    secrets = _secrets_from_file(secrets_from) if secrets_from else None
    report = run(images, projects=projects, domains=domains or DEFAULT_DOMAINS, namespaces=namespaces, secrets=secrets)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "checks": [
                    {
                        "namespace": c.namespace,
                        "image": c.image,
                        "secrets": list(c.secret_names),
                        "status": c.status,
                        "detail": c.detail,
                        "ok": c.ok,
                    }
                    for c in report.checks
                ],
            }
        )
    else:
        for check in report.checks:
            out.print(
                f"{mark(check.ok)} {escape(check.namespace)} {escape(check.image)} "
                f"[{escape(check.status)}] {escape(check.detail)}"
            )
        if not report.checks:
            out.print("[yellow]nothing to check: no image lies under a declared private registry[/yellow]")
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)
