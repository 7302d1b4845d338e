"""Read-only commands: ``check``, ``explain``, ``doctor``. None of them prints a secret."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    emit_json,
    handle_errors,
    json_option,
    mark,
    out,
)


@click.command()
@click.argument("target")
@click.option("--pull-only", is_flag=True, help="Check pull access only (what a cluster needs).")
@json_option
@handle_errors
def check(target: str, pull_only: bool, as_json: bool) -> None:
    """Check TARGET (an image or registry prefix): credentials resolve, login works, push scope, tag exists."""
    from .._check import check as run_check

    report = run_check(target, push=not pull_only)
    if as_json:
        emit_json(report.to_dict())
    else:
        out.print(
            f"[bold]{escape(report.target)}[/bold] -> registry {escape(report.registry)} "
            f"({'declared' if report.declared else 'not declared'}, provider {report.provider})"
        )
        for step in report.steps:
            out.print(f"  {mark(step.ok)} {step.name}: {escape(step.detail)}")
    codes = {None: EXIT_OK, "configuration": EXIT_USAGE, "reachable": EXIT_UNREACHABLE}
    sys.exit(codes.get(report.failure, EXIT_FAILED))


@click.command()
@click.argument("target")
@click.option("--pull", is_flag=True, help="Explain the credential the cluster's pull secret would get instead.")
@json_option
@handle_errors
def explain(target: str, pull: bool, as_json: bool) -> None:
    """Show which credential source answers for TARGET and why each other one did not."""
    from .._lookup import explain_data

    data = explain_data(target, pull=pull)
    data.pop("explanation")
    if as_json:
        emit_json(data)
        return
    declared = "declared" if data["declared"] else "not declared; defaults for its host"
    out.print(
        f"[bold]{escape(data['registry'])}[/bold] ({declared}, provider {data['provider']}, for the {data['for']})"
    )
    if data["source"]:
        out.print(f"  using [green]{escape(data['source'])}[/green] (user {data['username']!r})")
    else:
        out.print("  [yellow]no credentials found[/yellow]: pushes would be anonymous")
    table = Table("source", "outcome", "detail", box=None, pad_edge=False)
    for attempt in data["attempts"]:
        table.add_row(escape(attempt["source"]), attempt["outcome"], escape(attempt["detail"]))
    out.print(table)


def _run(*command: str, timeout: float = 5.0) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, type(error).__name__
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode == 0, text[0] if text else ""


def _doctor_findings() -> list[dict[str, Any]]:
    from .._catalog import CATALOG
    from .._config import ENV_CONFIG, ENV_REGISTRIES, config_files
    from ..credentials._docker_config import load_config, user_config_dir
    from ..push._docker_routes import helper_hint, helper_location

    findings: list[dict[str, Any]] = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        findings.append({"check": name, "ok": ok, "detail": detail})

    docker = shutil.which("docker")
    add("docker CLI", docker is not None, docker or "not on PATH: install docker (the CLI builds and pushes)")
    if docker:
        ok, text = _run(docker, "version", "--format", "{{.Server.Version}}")
        add(
            "docker daemon",
            ok,
            f"server {text}"
            if ok
            else f"not reachable ({text or 'no answer'}); DOCKER_HOST={os.environ.get('DOCKER_HOST', '(unset)')}",
        )
        ok, text = _run(docker, "buildx", "version")
        add("docker buildx", ok if ok else None, text if ok else "absent: flytekit's default builder needs it")
    config_dir = user_config_dir()
    try:
        config = load_config(config_dir)
        store = config.get("credsStore")
        helpers = sorted((config.get("credHelpers") or {}).items())
        auths = sorted(config.get("auths") or {})
        detail = (
            f"{config_dir / 'config.json'}: credsStore={store or '-'}; credHelpers="
            f"{', '.join(f'{k}->{v}' for k, v in helpers) or '-'}; auths for {', '.join(auths) or '-'}"
        )
        add("docker config", True if config else None, detail if config else f"no file at {config_dir / 'config.json'}")
    except ValueError as error:
        add("docker config", False, str(error))
    location = helper_location()
    add("credential helper", location is not None if location else None, location or helper_hint())
    try:
        files = config_files()
        env_value = "set" if os.environ.get(ENV_REGISTRIES) else "unset"
        add(
            "registry config",
            None if not files else True,
            f"files: {', '.join(map(str, files)) or 'none'}; {ENV_REGISTRIES} {env_value}; {ENV_CONFIG}="
            f"{os.environ.get(ENV_CONFIG, '(unset)')}",
        )
        registries = CATALOG.registries()
    except ValueError as error:
        add("registry config", False, str(error))
        registries = []
    for registry in registries:
        try:
            resolution = registry.resolve(exhaustive=True)
        except ValueError as error:
            add(f"registry {registry.registry}", False, str(error))
            continue
        if resolution.credential:
            add(
                f"registry {registry.registry}",
                True,
                f"{registry.provider.describe()}: user {resolution.credential.username!r} from {resolution.source}",
            )
        else:
            reasons = "; ".join(f"{a.source}: {a.detail}" for a in resolution.attempts)
            add(f"registry {registry.registry}", False, f"no credentials ({reasons})")
    try:
        import flytekit  # noqa: F401  (loads plugins through the entry point)
        from flytekit.image_spec.image_spec import ImageBuildEngine

        builders = ImageBuildEngine.get_registry()
        ok = "private-registry" in builders
        add(
            "flytekit plugin",
            ok,
            f"flytekit {importlib.metadata.version('flytekit')}; builders: "
            + ", ".join(f"{k}({v[1]})" for k, v in sorted(builders.items(), key=lambda kv: -kv[1][1])),
        )
    except Exception as error:  # doctor reports, it does not crash
        add("flytekit plugin", False, f"{type(error).__name__}: {error}")
    add("python", True, f"{sys.executable} ({Path(sys.executable).parent})")
    return findings


@click.command()
@json_option
def doctor(as_json: bool) -> None:
    """Docker CLI/daemon/buildx, docker config, declared registries and each credential source, no secrets."""
    findings = _doctor_findings()
    if as_json:
        emit_json(findings)
    else:
        for finding in findings:
            out.print(f"{mark(finding['ok'])} [bold]{escape(finding['check'])}[/bold]: {escape(finding['detail'])}")
    sys.exit(EXIT_FAILED if any(f["ok"] is False for f in findings) else EXIT_OK)
