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
    # One source per line and its outcome on the next: sources name whole paths (the docker config),
    # which a table would fold mid-path at 80 columns; long lines soft-wrap, so a path stays copyable.
    for attempt in data["attempts"]:
        out.print(f"  - {escape(attempt['source'])}")
        out.print(f"      {attempt['outcome']}: {escape(attempt['detail'])}")


def _run(*command: str, timeout: float = 5.0) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, type(error).__name__
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode == 0, text[0] if text else ""


def _missing_helpers(config_dir: Path) -> list[tuple[str, str]]:
    """(helper name, where the config names it) for every credential helper docker would fail to run."""
    from ..credentials._docker_config import OWN_HELPER, load_config

    try:
        config = load_config(config_dir)
    except ValueError:  # reported by the docker config line
        return []
    named: list[tuple[str, str]] = []
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        named.append((store, f'"credsStore": "{store}"'))
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        named.extend((h, f'"credHelpers": {{"{k}": "{h}"}}') for k, h in helpers.items() if isinstance(h, str) and h)
    return [(n, w) for n, w in named if n != OWN_HELPER and shutil.which(f"docker-credential-{n}") is None]


def _modules() -> tuple[str, ...]:
    """The global ``-m`` options this run was given (their declarations are already imported)."""
    context = click.get_current_context(silent=True)
    return tuple(context.find_root().params.get("modules") or ()) if context is not None else ()


def _doctor_findings() -> list[dict[str, Any]]:
    """One finding per check; every one that is not ok carries ``next``: the command or step to run next."""
    from .._catalog import CATALOG
    from .._config import ENV_CONFIG, ENV_REGISTRIES, PROJECT_FILE, config_files
    from .._declaration import declared
    from ..credentials._docker_config import describe_config, user_config_dir
    from ..push._docker_routes import helper_hint, helper_location
    from ..push.helper import HELPER_PROGRAM

    findings: list[dict[str, Any]] = []
    modules = _modules()
    cli = "flyte-private-registry" + "".join(f" -m {m}" for m in modules)

    def add(name: str, ok: bool | None, detail: str, next_step: str | None = None) -> None:
        finding: dict[str, Any] = {"check": name, "ok": ok, "detail": detail}
        if ok is not True and next_step:
            finding["next"] = next_step
        findings.append(finding)

    def fixes(missing: Any) -> str:  # a push._requirements.Missing
        return f"{missing.fixes[0]}; or {missing.fixes[1]}"

    # The same checks a build makes before it starts (push/_requirements.py), so doctor and pyflyte agree.
    try:
        from ..push import _requirements as needs  # imports flytekit
    except Exception as error:  # doctor reports, it does not crash
        add("build checks", False, f"cannot load them: {type(error).__name__}: {error}", "pip install flytekit")
        needs = None
    docker = shutil.which("docker")
    no_cli = needs.docker_cli() if needs else None
    add(
        "docker CLI",
        docker is not None,
        docker or (no_cli.detail if no_cli else "not on PATH"),
        no_cli and fixes(no_cli),
    )
    if docker and needs:
        no_daemon = needs.docker_daemon()
        text = _run(docker, "version", "--format", "{{.Server.Version}}")[1] if no_daemon is None else ""
        add(
            "docker daemon",
            no_daemon is None,
            f"server {text}"
            if no_daemon is None
            else f"{no_daemon.detail}; DOCKER_HOST={os.environ.get('DOCKER_HOST', '(unset)')}",
            fixes(no_daemon) if no_daemon else None,
        )
        no_buildkit = needs.buildkit()
        text = _run(docker, "buildx", "version")[1] if no_buildkit is None else ""
        add(
            "docker buildx",
            True if no_buildkit is None else None,  # not a failure: the docker-cli builder needs none
            text if no_buildkit is None else f"absent, which flytekit's default builder needs ({no_buildkit.detail})",
            fixes(no_buildkit) if no_buildkit else None,
        )
    config_ok, config_detail = describe_config(user_config_dir())  # a malformed file is a FAIL line, never a crash
    add(
        "docker config",
        config_ok,
        config_detail,
        f"fix {user_config_dir() / 'config.json'} (python3 -m json.tool shows where it breaks), or point "
        "DOCKER_CONFIG at another directory"
        if config_ok is False
        else None,
    )
    for name, where in _missing_helpers(user_config_dir()):
        add(
            f"docker-credential-{name}",
            False,
            f"{where} names it but it is not on PATH: docker fails every push and pull that asks it "
            f'(error getting credentials - err: exec: "docker-credential-{name}": executable file not found)',
            f"remove {where} from {user_config_dir() / 'config.json'} (a config copied from Docker Desktop), "
            f"or install docker-credential-{name}",
        )
    location = helper_location()
    candidate = Path(sys.executable).parent / HELPER_PROGRAM
    add(
        "credential helper",
        True if location else None,
        location or helper_hint(),
        f'export PATH="{candidate.parent}:$PATH"' if candidate.exists() else "pip install flyte-private-registry",
    )
    try:
        files = config_files()
        env_value = "set" if os.environ.get(ENV_REGISTRIES) else "unset"
        add(
            "registry config",
            None if not files else True,
            f"files: {', '.join(map(str, files)) or 'none'}; {ENV_REGISTRIES} {env_value}; {ENV_CONFIG}="
            f"{os.environ.get(ENV_CONFIG, '(unset)')}",
            None
            if files or os.environ.get(ENV_REGISTRIES) or declared()
            else f"declare registries in ./{PROJECT_FILE} or {ENV_REGISTRIES} (docs/configuration.md), or in code "
            "and load it with -m",
        )
        registries = CATALOG.registries()
    except ValueError as error:
        add("registry config", False, str(error), f"fix the entry named above, then run `{cli} doctor` again")
        registries = []
    in_code = declared()
    if not modules:
        add(
            "code declarations",
            None,
            "not loaded: registries declared with PrivateRegistry(...) in workflow code are seen only with -m",
            "flyte-private-registry -m workflows.py doctor (your workflow file or module)",
        )
    elif not in_code:
        add("code declarations", None, f"{', '.join(modules)} declared no PrivateRegistry")
    for registry in registries:
        origin = (
            f"declared in code ({', '.join(modules)})" if in_code.get(registry.prefix) is registry else "configured"
        )
        name = f"registry {registry.registry}"
        try:
            resolution = registry.resolve(exhaustive=True)
        except ValueError as error:
            add(name, False, f"{origin}: {error}", f"fix it, then `{cli} check {registry.registry}`")
            continue
        if resolution.credential:
            add(
                name,
                True,
                f"{origin}, {registry.provider.describe()}: user {resolution.credential.username!r} from "
                f"{resolution.source}",
            )
        else:
            reasons = "; ".join(f"{a.source}: {a.detail}" for a in resolution.attempts)
            add(
                name,
                False,
                f"{origin}: no credentials ({reasons})",
                f"`{cli} explain {registry.registry}` (every source and why it gave nothing), then "
                f"`{cli} check {registry.registry}`",
            )
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
            f"{sys.executable} -m pip install flyte-private-registry (into the environment pyflyte runs from)",
        )
    except Exception as error:  # doctor reports, it does not crash
        add(
            "flytekit plugin",
            False,
            f"{type(error).__name__}: {error}",
            f"{sys.executable} -m pip install flyte-private-registry (into the environment pyflyte runs from)",
        )
    add("python", True, f"{sys.executable} ({Path(sys.executable).parent})")
    return findings


@click.command()
@click.option(
    "--pod",
    metavar="NAMESPACE/POD",
    help="Instead: why this pod is stuck in ErrImagePull/ImagePullBackOff (reads the pod, its Secrets, its "
    "ServiceAccount and the namespace's Events; tries the Secrets' credentials against the registry).",
)
@json_option
def doctor(as_json: bool, pod: str | None = None) -> None:
    """Docker CLI/daemon/buildx, docker config, declared registries and each credential source, no secrets."""
    if pod is not None:
        _doctor_pod(pod, as_json)
        return
    findings = _doctor_findings()
    if as_json:
        emit_json(findings)
    else:
        for finding in findings:
            out.print(f"{mark(finding['ok'])} [bold]{escape(finding['check'])}[/bold]: {escape(finding['detail'])}")
            if finding.get("next"):
                out.print(f"    next: {escape(finding['next'])}")
    sys.exit(EXIT_FAILED if any(f["ok"] is False for f in findings) else EXIT_OK)


@handle_errors
def _doctor_pod(target: str, as_json: bool) -> None:
    """``doctor --pod``: one cause and its fix per stuck image; exit 1 when any image is stuck."""
    from ..pull._diagnose import diagnose_pod

    namespace, _, name = target.partition("/")
    if not namespace or not name or "/" in name:
        raise click.BadParameter(f"{target!r}: expected NAMESPACE/POD", param_hint="--pod")
    diagnosis = diagnose_pod(namespace, name)
    if as_json:
        emit_json(diagnosis.to_dict())
    else:
        out.print(escape(str(diagnosis)))
    sys.exit(EXIT_OK if diagnosis.ok else EXIT_FAILED)
