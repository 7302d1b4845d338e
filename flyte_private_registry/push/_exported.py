"""Registries declared in workflow code, saved (without secrets) where the credential helper finds them.

Why: docker runs ``docker-credential-flyte-private-registry`` as its own process, which never
imports the user's workflow code, so a route to a registry declared only in code
(``PrivateRegistry(...)`` in ``wf.py``) would answer "no credentials" and docker would say
``no basic auth credentials``. ``login -m wf.py HOST`` and ``configure-docker`` therefore save
each code declaration for that host in ``flyte-private-registry-declarations.json`` beside the
docker config it routes (0600, written atomically, removed by ``logout`` and
``configure-docker --undo``), and the helper reads the file through the config loader
(:func:`.._config.build_registry`), so the rules are those of a config file.

The file holds what a config file may hold and what the helper needs to push and pull: the
prefix, a username or the names of env vars, ``insecure``/``ca_file``, and a built-in provider
kind with its plain options. A declaration that cannot be written that way is refused by
:func:`export_entry` with the reason and the fix: a literal ``password=`` (a secret on disk),
``keychains=`` objects and provider options that are Python objects (``clock=``) exist only in
the declaring process, as does a provider class defined outside this package. Pull-secret
fields are left out: the helper never makes a pull secret.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._config import build_registry
from .._declaration import PrivateRegistry
from .._errors import ConfigurationError
from .._reference import RegistryPrefix, server_to_host

EXPORT_FILE = "flyte-private-registry-declarations.json"
EXPORT_VERSION = 1
_PROVIDER_PACKAGE = __name__.rsplit(".", 2)[0] + ".providers"
_FIX = (
    "declare the password as password_env='NAME' (docker passes your environment to the helper), or declare "
    "the registry in flyte-private-registry.toml or FLYTE_PRIVATE_REGISTRIES, which the helper reads itself"
)


class NotExportable(ConfigurationError):
    """A code declaration the helper cannot be given; the message names it, says why and what to do."""


def _problems(registry: PrivateRegistry) -> list[str]:
    """Why ``registry`` cannot leave this process (empty: it can)."""
    problems = []
    if registry.password is not None:
        problems.append("password= is a literal password, and the helper's file must never hold a secret")
    if registry.keychains:
        names = ", ".join(getattr(k, "name", type(k).__name__) for k in registry.keychains)
        problems.append(f"keychains=[{names}] are Python objects that exist only in the declaring process")
    provider = registry.provider
    cls = type(provider)
    if not cls.__module__.startswith(_PROVIDER_PACKAGE):
        problems.append(
            f"provider {cls.__name__} (kind {provider.kind!r}) is defined in {cls.__module__}, which the helper "
            "does not import"
        )
        return problems
    for name, field in getattr(cls, "model_fields", {}).items():  # options of a pydantic provider
        value = getattr(provider, name)
        if field.exclude and value != field.default:
            problems.append(
                f"provider option {name}= holds a {type(value).__name__}, a Python object that exists only in "
                "the declaring process"
            )
    return problems


def export_entry(registry: PrivateRegistry, origin: str) -> dict[str, Any]:
    """The config-file table the helper rebuilds ``registry`` from, or :class:`NotExportable`.

    ``origin`` says where the declaration came from (``-m wf.py``) for the message. The table is
    rebuilt here with the helper's own loader, so a declaration the helper would read differently
    is refused now rather than failing inside ``docker push``.
    """
    problems = _problems(registry)
    if problems:
        raise NotExportable(
            f"PrivateRegistry({registry.prefix!r}) declared in {origin} cannot be handed to docker's credential "
            f"helper, which runs in its own process: {'; '.join(problems)}. To fix: {_FIX}. Nothing was changed."
        )
    entry: dict[str, Any] = {"prefix": registry.prefix}
    for key in ("username", "username_env", "password_env"):
        value = getattr(registry, key)
        if value is not None:
            entry[key] = value
    if registry.insecure:
        entry["insecure"] = True
    if registry.ca_file is not None:
        entry["ca_file"] = str(Path(registry.ca_file).resolve())
    entry["provider"] = registry.provider.kind
    entry.update(registry.provider.options())
    rebuilt = build_registry(json.loads(json.dumps(entry)), f"the helper's copy of {registry.prefix}")
    if rebuilt.provider != registry.provider:
        raise NotExportable(
            f"PrivateRegistry({registry.prefix!r}) declared in {origin} cannot be handed to docker's credential "
            f"helper: its provider options do not survive being written down ({registry.provider!r} came back as "
            f"{rebuilt.provider!r}). To fix: {_FIX}. Nothing was changed."
        )
    return entry


def _host_of(prefix: str) -> str:
    return RegistryPrefix.parse(prefix).canonical_host


def _read_entries(path: Path) -> list[dict[str, Any]]:
    """The saved tables; a file that is not ours (another owner, writable by others) is refused, not read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise ConfigurationError(f"cannot read {path}: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if hasattr(os, "geteuid") and (info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            raise ConfigurationError(
                f"{path} is not owned by you or is writable by others, so it is not trusted; delete it and run "
                "`flyte-private-registry -m WORKFLOW login HOST` again"
            )
        try:
            data = json.loads(handle.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigurationError(f"{path} is not valid JSON ({err}); delete it and log in again") from None
    entries = data.get("registries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigurationError(f"{path} has no 'registries' list; delete it and log in again")
    return entries


def load_exported(config_dir: Path) -> list[PrivateRegistry]:
    """The saved declarations in ``config_dir``, checked by the config loader like a config file's."""
    path = config_dir / EXPORT_FILE
    return [build_registry(e, f"{path} entry #{i + 1}") for i, e in enumerate(_read_entries(path))]


def write_json(path: Path, data: dict[str, Any], *, mode: int | None = None) -> None:
    """Replace ``path`` atomically (a reader sees the old file or the new one, never half).

    ``mode=None`` keeps an existing file's mode (the user's docker config) and makes a new one 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fpr-", suffix=".json")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    """The declarations file, always 0600 (the helper distrusts a wider one); no entries: no file."""
    if not entries:
        path.unlink(missing_ok=True)
        return
    data = {
        "version": EXPORT_VERSION,
        "note": "Written by flyte-private-registry login/configure-docker for its credential helper: registries "
        "declared in workflow code. No secrets: passwords come from the env vars named here.",
        "registries": sorted(entries, key=lambda e: e["prefix"]),
    }
    write_json(path, data, mode=0o600)


def save_exported(config_dir: Path, entries: Iterable[dict[str, Any]]) -> Path:
    """Add (or replace, by prefix) ``entries`` in ``config_dir``'s file; returns its path."""
    path = config_dir / EXPORT_FILE
    merged = {e["prefix"]: e for e in _read_entries(path) if isinstance(e, dict) and isinstance(e.get("prefix"), str)}
    merged.update({e["prefix"]: e for e in entries})
    _write(path, list(merged.values()))
    return path


def remove_exported(config_dir: Path, hosts: Iterable[str]) -> list[str]:
    """Forget the saved declarations for ``hosts``; returns the prefixes removed."""
    path = config_dir / EXPORT_FILE
    if not path.exists():
        return []
    wanted = {server_to_host(h) for h in hosts}
    kept: list[dict[str, Any]] = []
    removed: list[str] = []
    for entry in _read_entries(path):
        prefix = entry.get("prefix") if isinstance(entry, dict) else None
        try:
            gone = isinstance(prefix, str) and _host_of(prefix) in wanted
        except ValueError:  # a prefix that no longer parses matches no host: keep it, the helper reports it
            gone = False
        if gone:
            removed.append(prefix)
        else:
            kept.append(entry)
    if removed:
        _write(path, kept)
    return removed
