"""Changes to a docker config the user chose: helper routes (``configure-docker``) and logins.

Routes are reversible: when a host already had another helper (``ecr-login``, ``gcloud``), the
previous value is remembered in ``flyte-private-registry-routes.json`` beside ``config.json``
and put back by ``undo``. The config file keeps its mode, or is created 0600; writes are atomic.

A route alone is not enough for a registry declared in workflow code: docker runs the helper in
its own process, which never imports that code. :func:`code_declarations` finds those
declarations, and ``configure_docker(..., declarations=...)`` saves them (no secrets) beside
the config for the helper (see ``_exported``); ``undo`` removes them with the route.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._declaration import PrivateRegistry, declared
from .._errors import ConfigurationError
from .._reference import docker_config_key, server_to_host
from ..credentials import Secret
from ..credentials._base import encode_basic
from ..credentials._docker_config import OWN_HELPER, load_config, user_config_dir
from ._exported import NotExportable, export_entry, remove_exported, save_exported, write_json
from .helper import HELPER_PREFIX, HELPER_PROGRAM

ROUTES_FILE = "flyte-private-registry-routes.json"


@dataclass
class RouteChange:
    config: Path
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    restored: dict[str, str] = field(default_factory=dict)
    helper_on_path: bool = True
    #: Prefixes of code declarations saved for the helper (added) or forgotten (undo), and where.
    saved: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    declarations_file: Path | None = None


@dataclass
class Declarations:
    """What :func:`code_declarations` found: tables to save, and same-host declarations left out (and why)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def code_declarations(hosts: Iterable[str], required: Iterable[str], origin: str) -> Declarations:
    """Every registry declared in this process's code on ``hosts``, as tables the helper can read.

    Docker asks the helper per host, so all code declarations on a routed host are saved (the
    helper then picks among them as the building process would). One named in ``required`` (the
    prefix the user asked to route) that cannot be saved raises :class:`NotExportable`; another
    one on the same host is skipped, with its reason in ``skipped``.
    """
    wanted = {server_to_host(h) for h in hosts}
    must = set(required)
    found = Declarations()
    registries: list[PrivateRegistry] = sorted(declared().values(), key=lambda r: r.prefix)
    for registry in registries:
        if registry.reference.canonical_host not in wanted:
            continue
        try:
            found.entries.append(export_entry(registry, origin))
        except NotExportable as err:
            if registry.prefix in must:
                raise
            found.skipped[registry.prefix] = str(err)
    return found


def helper_location() -> str | None:
    """Where docker will find our helper, or ``None`` (then print how to put it on PATH)."""
    return shutil.which(HELPER_PROGRAM)


def helper_hint() -> str:
    candidate = Path(sys.executable).parent / HELPER_PROGRAM
    where = f"add {candidate.parent} to PATH" if candidate.exists() else "pip install flyte-private-registry"
    return f"{HELPER_PROGRAM} is not on PATH, so docker cannot run it: {where}"


def _read(config_dir: Path) -> dict[str, Any]:
    try:
        return load_config(config_dir)
    except ValueError as err:
        raise ConfigurationError(str(err)) from None


def configure_docker(
    hosts: Iterable[str],
    *,
    config_dir: Path | None = None,
    undo: bool = False,
    declarations: Iterable[dict[str, Any]] = (),
) -> RouteChange:
    """Route ``hosts`` to the library's credential helper in ``config_dir`` (or take the routes out).

    ``declarations`` (tables from :func:`code_declarations`) are saved for the helper before the
    route is written, so docker never runs the helper for a route whose declaration is missing.
    ``undo`` forgets the saved declarations for ``hosts`` too.
    """
    hosts = list(hosts)
    config_dir = config_dir or user_config_dir()
    config = _read(config_dir)
    entries = list(declarations)
    routes_path = config_dir / ROUTES_FILE
    previous: dict[str, str | None] = json.loads(routes_path.read_text()) if routes_path.exists() else {}
    helpers: dict[str, str] = dict(config.get("credHelpers") or {})
    change = RouteChange(config_dir / "config.json", helper_on_path=helper_location() is not None)
    if undo:
        change.forgotten = remove_exported(config_dir, hosts)
    elif entries:
        change.declarations_file = save_exported(config_dir, entries)
        change.saved = [e["prefix"] for e in entries]
    for host in hosts:
        key = docker_config_key(server_to_host(host))
        if undo:
            if helpers.get(key) != OWN_HELPER:
                change.unchanged.append(key)
                continue
            before = previous.pop(key, None)
            if before:
                helpers[key] = before
                change.restored[key] = before
            else:
                del helpers[key]
            change.removed.append(key)
        elif helpers.get(key) == OWN_HELPER:
            change.unchanged.append(key)
        else:
            previous[key] = helpers.get(key)
            helpers[key] = OWN_HELPER
            change.added.append(key)
    if helpers:
        config["credHelpers"] = helpers
    else:
        config.pop("credHelpers", None)
    if change.added or change.removed:
        write_json(config_dir / "config.json", config)
        if previous:
            write_json(routes_path, previous)
        else:
            routes_path.unlink(missing_ok=True)
    return change


def _login_target(host: str, config_dir: Path | None) -> tuple[Path, dict[str, Any], str, str | None]:
    """The config dir and its contents, the docker key for ``host``, and the helper that stores it (if any)."""
    config_dir = config_dir or user_config_dir()
    config = _read(config_dir)
    key = docker_config_key(server_to_host(host))
    return config_dir, config, key, _store_helper(config, key)


def _store_helper(config: dict[str, Any], key: str) -> str | None:
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    if helper == OWN_HELPER:
        raise ConfigurationError(
            f"{key} is routed to {HELPER_PROGRAM}, which is read-only; run `flyte-private-registry "
            f"configure-docker --undo {key}` first, or declare the credentials with PrivateRegistry"
        )
    return helper


def store_login(host: str, username: str, password: Secret, *, config_dir: Path | None = None) -> str:
    """Save verified credentials the way ``docker login`` would; returns where they went."""
    config_dir, config, key, helper = _login_target(host, config_dir)
    if helper:
        program = shutil.which(HELPER_PREFIX + helper)
        if program is None:
            raise ConfigurationError(
                f"docker config names credential helper {helper!r} but {HELPER_PREFIX}{helper} is not on PATH"
            )
        payload = json.dumps({"ServerURL": key, "Username": username, "Secret": password.get_secret_value()})
        done = subprocess.run([program, "store"], input=payload, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise ConfigurationError(
                f"{HELPER_PREFIX}{helper} store failed: {(done.stdout or done.stderr).strip()[:200]}"
            )
        return f"{HELPER_PREFIX}{helper}"
    auths = dict(config.get("auths") or {})
    auths[key] = {"auth": encode_basic(username, password.get_secret_value())}
    config["auths"] = auths
    write_json(config_dir / "config.json", config)
    return f"{config_dir / 'config.json'} (auths, base64: configure a credsStore to keep it out of the file)"


def remove_login(host: str, *, config_dir: Path | None = None) -> bool:
    """Undo :func:`store_login` (erase from the helper, or drop the ``auths`` entry)."""
    config_dir, config, key, helper = _login_target(host, config_dir)
    if helper:
        program = shutil.which(HELPER_PREFIX + helper)
        if program is None:
            return False
        done = subprocess.run([program, "erase"], input=key, capture_output=True, text=True, timeout=30)
        return done.returncode == 0
    auths = dict(config.get("auths") or {})
    if key not in auths:
        return False
    del auths[key]
    config["auths"] = auths
    write_json(config_dir / "config.json", config)
    return True
