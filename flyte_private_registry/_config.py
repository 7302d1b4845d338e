"""Registries declared outside Python code, so a plain ``ImageSpec(registry=...)`` is covered too.

Sources, merged in this order (a later one wins for the same prefix):

1. ``$FLYTE_PRIVATE_REGISTRY_CONFIG`` (a TOML file) if set; otherwise the user file
   ``$XDG_CONFIG_HOME/flyte-private-registry/config.toml`` (``~/.config/...``) and then the
   project file ``./flyte-private-registry.toml`` (where ``pyflyte`` runs);
2. ``$FLYTE_PRIVATE_REGISTRIES``: a JSON list of the same tables, or comma-separated prefixes.

Files name env vars, never secrets: a ``password`` key is refused.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import providers
from ._declaration import PrivateRegistry, describe_value, not_declaring, validation_message
from ._errors import ConfigurationError

ENV_CONFIG = "FLYTE_PRIVATE_REGISTRY_CONFIG"
ENV_REGISTRIES = "FLYTE_PRIVATE_REGISTRIES"
PROJECT_FILE = "flyte-private-registry.toml"
#: Every declaration field a file may set: all but the secrets (files name env vars instead), the
#: provider (its own table key) and keychains (Python objects). Derived, so a new field needs no edit here.
_REGISTRY_KEYS = frozenset(PrivateRegistry.FIELDS) - {"password", "pull_password", "provider", "keychains"}


def user_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "flyte-private-registry" / "config.toml"


def config_files() -> list[Path]:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"{ENV_CONFIG}={explicit} does not name a file; fix or unset it")
        return [path]
    return [p for p in (user_config_file(), Path.cwd() / PROJECT_FILE) if p.is_file()]


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, ValueError, RecursionError) as err:  # ValueError: TOMLDecodeError, bytes that are not UTF-8
        raise ConfigurationError(f"cannot read {path}: {err}") from None


def build_registry(entry: dict[str, Any], origin: str, base_dir: Path | None = None) -> PrivateRegistry:
    """One config table -> ``PrivateRegistry`` (provider fields sit beside the registry's own).

    A relative ``ca_file`` is read from ``base_dir`` (the config file's directory), ``~`` expanded.
    """
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{origin}: each registry must be a table/object, got {type(entry).__name__}")
    for secret_key in ("password", "pull_password"):
        if secret_key in entry:
            raise ConfigurationError(
                f"{origin}: {secret_key!r} is not allowed in configuration; "
                f"name an env var with {secret_key}_env instead"
            )
    if "prefix" not in entry:
        raise ConfigurationError(f"{origin}: a registry entry has no 'prefix'")
    bad_keys = [k for k in entry if not isinstance(k, str)]  # JSON and TOML keys are; a dict from code may not be
    if bad_keys:
        raise ConfigurationError(f"{origin}: keys must be strings, got {bad_keys!r}")
    fields = {k: v for k, v in entry.items() if k in _REGISTRY_KEYS}
    rest = {k: v for k, v in entry.items() if k not in _REGISTRY_KEYS and k != "provider"}
    kind = entry.get("provider")
    if kind is not None:  # only a named provider loads the provider table (the ECR one is a pydantic model)
        known = ", ".join(sorted(providers.PROVIDERS))
        if not isinstance(kind, str):
            raise ConfigurationError(
                f"{origin}: provider must be a string naming a provider ({known}), got {describe_value(kind)}"
            )
        if kind not in providers.PROVIDERS:
            raise ConfigurationError(f"{origin}: unknown provider {kind!r}; known: {known}")
        try:
            fields["provider"] = providers.PROVIDERS[kind](**rest)
        except ValidationError as err:
            raise ConfigurationError(f"{origin}: provider {kind!r} options: {validation_message(err)}") from None
        except (TypeError, ValueError) as err:
            raise ConfigurationError(f"{origin}: provider {kind!r} options: {err}") from None
    elif rest:
        raise ConfigurationError(f"{origin}: unknown keys {sorted(rest)} for registry {entry['prefix']!r}")
    if isinstance(fields.get("ca_file"), str):
        fields["ca_file"] = (base_dir or Path.cwd()) / Path(fields["ca_file"]).expanduser()
    try:
        with not_declaring():
            return PrivateRegistry(**fields)
    except ValueError as err:  # ConfigurationError (pydantic's ValidationError is turned into one)
        raise ConfigurationError(f"{origin}: {err}") from None


def _from_env(value: str) -> list[Any]:
    """The env var's entries, unchecked (:func:`build_registry` checks each and names it)."""
    value = value.strip()
    if value.startswith("{"):
        raise ConfigurationError(f"{ENV_REGISTRIES} must be a JSON list of registry objects: wrap the object in [...]")
    if value.startswith("["):
        try:
            entries = json.loads(value)
        except (ValueError, RecursionError) as err:
            raise ConfigurationError(f"{ENV_REGISTRIES} is not valid JSON: {err}") from None
        if not isinstance(entries, list):
            raise ConfigurationError(f"{ENV_REGISTRIES} must be a JSON list of registry objects")
        return entries
    return [{"prefix": p.strip()} for p in value.replace(";", ",").split(",") if p.strip()]


def load_configured() -> list[PrivateRegistry]:
    registries: dict[str, PrivateRegistry] = {}
    for path in config_files():
        entries = _read_toml(path).get("registry", [])
        if not isinstance(entries, list):
            raise ConfigurationError(f"{path}: use [[registry]] tables")
        for index, entry in enumerate(entries):
            registry = build_registry(entry, f"{path} [[registry]] #{index + 1}", path.parent)
            registries[registry.prefix] = registry
    env_value = os.environ.get(ENV_REGISTRIES)
    if env_value:
        for index, entry in enumerate(_from_env(env_value)):
            registry = build_registry(entry, f"{ENV_REGISTRIES} entry #{index + 1}")
            registries[registry.prefix] = registry
    return list(registries.values())
