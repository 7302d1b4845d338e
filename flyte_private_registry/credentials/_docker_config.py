"""The user's docker config, read the way the docker CLI reads it.

Precedence is docker's: ``credHelpers[host]`` > ``credsStore`` > ``auths``. When a
``credsStore`` is set, docker ignores ``auths`` passwords, and so do we: ``explain`` must
describe what docker would really do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .._reference import (
    DOCKER_HUB_CONFIG_KEY,
    HELPER_NAME,
    RegistryPrefix,
    docker_config_key,
    is_docker_hub,
    server_to_host,
)
from ._base import Credential, Miss, decode_basic
from ._helper_client import run_helper_get

#: Our own helper; a route to it in the user's config must not be followed back to ourselves.
OWN_HELPER = HELPER_NAME


def user_config_dir() -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``, as docker resolves it."""
    configured = os.environ.get("DOCKER_CONFIG")
    return Path(configured).expanduser() if configured else Path.home() / ".docker"


def load_config(config_dir: Path) -> dict[str, Any]:
    try:
        with open(config_dir / "config.json", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read docker config {config_dir / 'config.json'}: {type(err).__name__}") from None
    return data if isinstance(data, dict) else {}


def _matching(mapping: dict[str, Any], host: str) -> tuple[str, Any] | None:
    """The entry whose key names ``host``: exact docker key first, then any spelling of it."""
    key = docker_config_key(host)
    if key in mapping:
        return key, mapping[key]
    for candidate, value in mapping.items():
        if server_to_host(candidate) == server_to_host(key):
            return candidate, value
    return None


class DockerConfigKeychain:
    """Credentials from ``config.json``: credential helpers, the credential store, inline ``auths``."""

    def __init__(self, config_dir: Path | None = None) -> None:
        self._config_dir = config_dir

    @property
    def config_dir(self) -> Path:
        return self._config_dir or user_config_dir()

    @property
    def name(self) -> str:
        return f"docker config {self.config_dir / 'config.json'}"

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        host = resource.canonical_host
        path = self.config_dir / "config.json"
        try:
            config = load_config(self.config_dir)
        except ValueError as err:
            return Miss(self.name, str(err))
        if not config:
            return Miss(self.name, f"no docker config at {path}")

        helpers = config.get("credHelpers") or {}
        found = _matching(helpers, host)
        # A route to this library (configure-docker) is skipped, not followed: what docker would
        # find without it (credsStore, auths) is what the library itself can use.
        if found and found[1] != OWN_HELPER:
            key, helper = found
            return run_helper_get(helper, key, source=f"credential helper docker-credential-{helper} (credHelpers)")

        store = config.get("credsStore")
        if store and store != OWN_HELPER:
            source = f"credential store docker-credential-{store} (credsStore)"
            server = DOCKER_HUB_CONFIG_KEY if is_docker_hub(host) else host
            answer = run_helper_get(store, server, source=source)
            if isinstance(answer, Miss) and not is_docker_hub(host):
                retry = run_helper_get(store, f"https://{host}", source=source)
                if isinstance(retry, Credential):
                    return retry
            if isinstance(answer, Miss):
                return Miss(source, f"{answer.reason}; docker ignores auths in {path} when credsStore is set")
            return answer

        found = _matching(config.get("auths") or {}, host)
        if not found:
            return Miss(self.name, f"no auths entry for {docker_config_key(host)}")
        key, entry = found
        return _from_auths_entry(entry, source=f"{self.name} auths[{key!r}]")


def _from_auths_entry(entry: Any, *, source: str) -> Credential | Miss:
    if not isinstance(entry, dict):
        return Miss(source, "entry is not an object")
    if entry.get("identitytoken"):
        return Credential("<token>", SecretStr(entry["identitytoken"]), source=source, identity_token=True)
    username, password = entry.get("username"), entry.get("password")
    if entry.get("auth"):
        decoded = decode_basic(entry["auth"])
        if decoded is None:
            return Miss(source, "'auth' is not base64 of user:password")
        username, password = decoded
    if not username or not password:
        return Miss(source, "entry has no username and password")
    return Credential(username=username, password=SecretStr(password), source=source)
