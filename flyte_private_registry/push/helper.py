"""``docker-credential-flyte-private-registry``: the standard docker credential-helper protocol.

Two modes. During a build, ``$DOCKER_CONFIG`` holds a session file the library wrote; ``get``
serves from it and imports nothing heavy (docker runs the helper once per host it talks to).
Otherwise (after ``configure-docker``) it resolves credentials from the configured registries.
The helper is read-only: ``store`` refuses, ``erase`` has nothing to erase.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from .._reference import HELPER_NAME, HELPER_PREFIX, HELPER_PROGRAM, NOT_FOUND

SESSION_FILE = "flyte-private-registry-session.json"
__all__ = ["HELPER_NAME", "HELPER_PREFIX", "HELPER_PROGRAM", "NOT_FOUND", "SESSION_FILE", "main"]


def _canonical(server: str) -> str:
    from .._reference import server_to_host

    return server_to_host(server)


def _session() -> dict[str, dict[str, str]] | None:
    config_dir = os.environ.get("DOCKER_CONFIG")
    if not config_dir:
        return None
    try:
        with open(Path(config_dir) / SESSION_FILE, encoding="utf-8") as handle:
            return json.load(handle).get("credentials") or {}
    except (OSError, ValueError):
        return None


def _standalone(host: str) -> tuple[str, str] | None:
    """Resolve as ``configure-docker`` routes it: configured registries first, then docker's own sources.

    Docker asks per host, so when several configured prefixes share the host the broadest one
    (shortest path) that has a credential answers. A host no configuration declares falls back
    to what docker would have found without the route (credsStore, auths), so routing a host
    never makes docker worse off.
    """
    from .._catalog import CATALOG
    from .._declaration import PrivateRegistry, not_declaring

    candidates = sorted(
        (r for r in CATALOG.registries() if r.reference.canonical_host == host), key=lambda r: len(r.reference.path)
    )
    if not candidates:
        with not_declaring():
            candidates = [PrivateRegistry(host)]
    for registry in candidates:
        credential = registry.resolve().credential
        if credential is not None:
            return credential.username, credential.password.get_secret_value()
    return None


def get(server: str, out: TextIO) -> int:
    host = _canonical(server)
    session = _session()
    entry = session.get(host) if session is not None else None
    if entry is not None:
        found: tuple[str, str] | None = (entry["Username"], entry["Secret"])
    else:
        try:
            found = _standalone(host)
        except Exception as err:  # a broken declaration must reach the user through docker's message
            out.write(f"flyte-private-registry: {err}\n")
            return 1
    if found is None:
        out.write(NOT_FOUND + "\n")
        return 1
    json.dump({"ServerURL": server, "Username": found[0], "Secret": found[1]}, out)
    out.write("\n")
    return 0


def list_(out: TextIO) -> int:
    from .._reference import docker_config_key

    session = _session() or {}
    json.dump({docker_config_key(host): entry["Username"] for host, entry in session.items()}, out)
    out.write("\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    action = args[0] if args else ""
    if action == "get":
        return get(sys.stdin.read().strip(), sys.stdout)
    if action == "list":
        return list_(sys.stdout)
    if action == "store":
        sys.stdin.read()
        sys.stdout.write(
            "flyte-private-registry is read-only: declare credentials with PrivateRegistry "
            "or its config file instead of docker login\n"
        )
        return 1
    if action == "erase":
        sys.stdin.read()
        return 0
    if action in ("version", "--version"):
        sys.stdout.write("flyte-private-registry credential helper\n")
        return 0
    sys.stderr.write("usage: docker-credential-flyte-private-registry get|store|erase|list|version\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
