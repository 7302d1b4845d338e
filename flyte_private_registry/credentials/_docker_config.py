"""The user's docker config, read the way the docker CLI reads it.

Precedence is docker's: ``credHelpers[host]`` > ``credsStore`` > ``auths``. When a
``credsStore`` is set, docker ignores ``auths`` passwords, and so do we: ``explain`` must
describe what docker would really do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .._reference import (
    DOCKER_HUB_CONFIG_KEY,
    HELPER_NAME,
    RegistryPrefix,
    docker_config_key,
    is_docker_hub,
    server_to_host,
)
from ._base import Credential, Miss, Secret, decode_basic
from ._helper_client import json_kind, run_helper_get

#: Our own helper; a route to it in the user's config must not be followed back to ourselves.
OWN_HELPER = HELPER_NAME
#: What may follow ``docker-credential-``: a plain program name, never a path.
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)


def user_config_dir() -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``, as docker resolves it."""
    configured = os.environ.get("DOCKER_CONFIG")
    return Path(configured).expanduser() if configured else Path.home() / ".docker"


def _read_json(path: Path) -> Any:
    """The parsed file, ``None`` when it does not exist; :class:`ValueError` for one docker cannot read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        raise ValueError(f"cannot read docker config {path}: {type(err).__name__}") from None


def load_config(config_dir: Path) -> dict[str, Any]:
    """The user's ``config.json`` as a dict (``{}`` when absent or not a JSON object); fields are unchecked."""
    data = _read_json(config_dir / "config.json")
    return data if isinstance(data, dict) else {}


def _text_field(owner: dict[str, Any], key: str) -> str | None:
    """``owner[key]`` when it is a string, ``""`` when missing or ``null`` (Go's zero value, as docker
    reads it), ``None`` for any other type."""
    value = owner.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def _mapping_field(config: dict[str, Any], key: str, expected: str) -> tuple[dict[str, Any], str | None]:
    """``config[key]`` as a dict, or ``({}, reason)`` when it has the wrong type."""
    value = config.get(key)
    if value is None:
        return {}, None
    if isinstance(value, dict):
        return value, None
    return {}, f"{key} is {json_kind(value)}, expected {expected}"


def _helper_problem(name: str, where: str) -> str | None:
    """Why ``name`` cannot be a helper: docker runs ``docker-credential-<name>`` from PATH, so no paths."""
    if _HELPER_NAME.fullmatch(name):
        return None
    return (
        f"{where} names helper {name!r}, which is not a credential helper name "
        "(ASCII letters, digits, '.', '_' and '-'; docker runs docker-credential-<name> from PATH)"
    )


def _matching(mapping: dict[str, Any], host: str) -> tuple[str, Any] | None:
    """The entry whose key names ``host``: exact docker key first, then any spelling of it."""
    key = docker_config_key(host)
    if key in mapping:
        return key, mapping[key]
    for candidate, value in mapping.items():
        if server_to_host(candidate) == server_to_host(key):
            return candidate, value
    return None


def config_problems(config: dict[str, Any]) -> list[str]:
    """Every field docker reads that has the wrong type, in words (empty: the file is well formed)."""
    problems: list[str] = []
    helpers, problem = _mapping_field(config, "credHelpers", "an object mapping hosts to helper names")
    if problem:
        problems.append(problem)
    for key, helper in helpers.items():
        if not isinstance(helper, str):
            problems.append(
                f"credHelpers[{key!r}] is {json_kind(helper)}, expected a string naming a credential helper"
            )
        elif helper and (bad := _helper_problem(helper, f"credHelpers[{key!r}]")):
            problems.append(bad)
    store = config.get("credsStore")
    if store is not None and not isinstance(store, str):
        problems.append(f"credsStore is {json_kind(store)}, expected a string naming a credential helper")
    elif store and (bad := _helper_problem(store, "credsStore")):
        problems.append(bad)
    auths, problem = _mapping_field(config, "auths", "an object mapping registry hosts to entries")
    if problem:
        problems.append(problem)
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            problems.append(f"auths[{key!r}] is {json_kind(entry)}, expected an object")
            continue
        for field in ("auth", "username", "password", "identitytoken"):
            if _text_field(entry, field) is None:
                problems.append(f"auths[{key!r}].{field} is {json_kind(entry[field])}, expected a string")
        if isinstance(entry.get("auth"), str) and entry["auth"] and decode_basic(entry["auth"]) is None:
            problems.append(f"auths[{key!r}].auth is not base64 of user:password")
    return problems


def describe_config(config_dir: Path) -> tuple[bool | None, str]:
    """``doctor``'s line for the docker config: (ok, detail); a malformed file is ``False`` with the reasons.

    ``None`` means there is no file (not an error: docker then pushes anonymously).
    """
    path = config_dir / "config.json"
    try:
        config = _read_json(path)
    except ValueError as err:
        return False, str(err)
    if config is None:
        return None, f"no file at {path}"
    if not isinstance(config, dict):
        return False, f"{path} holds {json_kind(config)}, expected a JSON object"
    store = config.get("credsStore")
    helpers = config.get("credHelpers")
    auths = config.get("auths")
    routes = (
        ", ".join(f"{k}->{v}" for k, v in sorted(helpers.items()) if isinstance(v, str))
        if isinstance(helpers, dict)
        else ""
    )
    detail = (
        f"{path}: credsStore={store if isinstance(store, str) and store else '-'}; credHelpers={routes or '-'}; "
        f"auths for {', '.join(sorted(auths)) if isinstance(auths, dict) and auths else '-'}"
    )
    problems = config_problems(config)
    if problems:
        return False, f"{detail}; malformed: {'; '.join(problems)}"
    return (True if config else None), detail


class DockerConfigKeychain:
    """Credentials from ``config.json``: credential helpers, the credential store, inline ``auths``.

    Every field docker reads is type-checked; a malformed one is a :class:`Miss` naming the field
    and the expected type, never an exception (the file is the user's, not the library's).
    """

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
            config = _read_json(path)
        except ValueError as err:
            return Miss(self.name, str(err))
        if config is None:
            return Miss(self.name, f"no docker config at {path}")
        if not isinstance(config, dict):
            return Miss(self.name, f"{path} holds {json_kind(config)}, expected a JSON object; docker ignores it too")
        if not config:
            return Miss(self.name, f"docker config {path} is empty")

        helpers, problem = _mapping_field(config, "credHelpers", "an object mapping hosts to helper names")
        if problem:
            return Miss(self.name, problem)
        found = _matching(helpers, host)
        if found is not None:
            key, helper = found
            where = f"credHelpers[{key!r}]"
            if not isinstance(helper, str):
                return Miss(self.name, f"{where} is {json_kind(helper)}, expected a string naming a credential helper")
            # An empty name is "no helper" to docker. A route to this library (configure-docker) is
            # skipped, not followed: what docker would find without it is what the library can use.
            if helper and helper != OWN_HELPER:
                bad = _helper_problem(helper, where)
                if bad:
                    return Miss(self.name, bad)
                return run_helper_get(helper, key, source=f"credential helper docker-credential-{helper} (credHelpers)")

        store = config.get("credsStore")
        if store is not None and not isinstance(store, str):
            return Miss(self.name, f"credsStore is {json_kind(store)}, expected a string naming a credential helper")
        if store and store != OWN_HELPER:
            bad = _helper_problem(store, "credsStore")
            if bad:
                return Miss(self.name, bad)
            source = f"credential store docker-credential-{store} (credsStore)"
            server = DOCKER_HUB_CONFIG_KEY if is_docker_hub(host) else host
            answer = run_helper_get(store, server, source=source)
            if isinstance(answer, Miss) and not is_docker_hub(host):
                retry = run_helper_get(store, f"https://{host}", source=source)
                if isinstance(retry, Credential):
                    return retry
            if isinstance(answer, Miss):
                reason = f"{answer.reason}; docker ignores auths in {path} when credsStore is set"
                if answer.reason.endswith("is not on PATH"):  # push/_build_env.runnable_helpers_only
                    reason += (
                        "; builds run by this library leave this credsStore out of their temporary docker config "
                        "(docker's classic builder sends no credentials at all while a store cannot run)"
                    )
                return Miss(source, reason)
            return answer

        auths, problem = _mapping_field(config, "auths", "an object mapping registry hosts to entries")
        if problem:
            return Miss(self.name, problem)
        found = _matching(auths, host)
        if not found:
            return Miss(self.name, f"no auths entry for {docker_config_key(host)}")
        key, entry = found
        return _from_auths_entry(entry, source=f"{self.name} auths[{key!r}]")


def _from_auths_entry(entry: Any, *, source: str) -> Credential | Miss:
    """One ``auths`` entry as docker reads it: ``identitytoken`` first, then ``auth``, then username/password."""
    if not isinstance(entry, dict):
        return Miss(source, f"entry is {json_kind(entry)}, expected an object with auth or username/password")
    fields: dict[str, str] = {}
    for key in ("auth", "username", "password", "identitytoken"):
        value = _text_field(entry, key)
        if value is None:
            return Miss(source, f"{key} is {json_kind(entry[key])}, expected a string")
        fields[key] = value
    if fields["identitytoken"]:
        return Credential("<token>", Secret(fields["identitytoken"]), source=source, identity_token=True)
    username, password = fields["username"], fields["password"]
    if fields["auth"]:
        decoded = decode_basic(fields["auth"])
        if decoded is None:
            return Miss(source, "auth is not base64 of user:password")
        username, password = decoded
    if not username or not password:
        return Miss(source, "entry has no username and password")
    return Credential(username=username, password=Secret(password), source=source)
