"""``docker-credential-flyte-private-registry``: the standard docker credential-helper protocol.

Two modes. During a build, ``$DOCKER_CONFIG`` is the library's temporary directory: its channel
file names a Unix socket served by the building process and a per-session nonce, and ``get``
asks the building process over that socket. No credential is ever written to disk, so nothing
is left behind whatever kills the build; once the building process is gone the socket refuses
and ``get`` answers docker's "not found" at once. This path imports only the standard library
(docker runs the helper once per host it talks to). Otherwise (after ``configure-docker``) it
resolves credentials from the configured registries. The helper is read-only: ``store``
refuses, ``erase`` has nothing to erase.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from typing import Any, TextIO

from .._reference import HELPER_NAME, HELPER_PREFIX, HELPER_PROGRAM, NOT_FOUND

#: In the temporary config dir: where the building process listens and the session's nonce (no secret).
CHANNEL_FILE = "flyte-private-registry-channel.json"
#: Written by versions before the channel: a plaintext credential file. Never written now; swept if found.
LEGACY_SESSION_FILE = "flyte-private-registry-session.json"
CHANNEL_VERSION = 2
#: A live building process answers in milliseconds; a stopped one must not hang docker for long.
REPLY_TIMEOUT = 10.0
MAX_MESSAGE = 64 * 1024
__all__ = [
    "CHANNEL_FILE",
    "HELPER_NAME",
    "HELPER_PREFIX",
    "HELPER_PROGRAM",
    "LEGACY_SESSION_FILE",
    "NOT_FOUND",
    "main",
]


def socket_address(address: str) -> str:
    """The ``bind``/``connect`` form of a channel address (``@name`` is Linux's abstract namespace)."""
    return "\0" + address[1:] if address.startswith("@") else address


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (Linux ``SO_PEERCRED``); ``None`` where unavailable."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def read_message(sock: socket.socket) -> Any:
    """One JSON message (up to EOF or a newline, at most ``MAX_MESSAGE`` bytes); ``None`` if malformed."""
    data = b""
    while b"\n" not in data and len(data) <= MAX_MESSAGE:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    if len(data) > MAX_MESSAGE:
        return None
    try:
        return json.loads(data.split(b"\n", 1)[0].decode("utf-8"))
    except ValueError:
        return None


def _channel() -> dict[str, Any] | None:
    """The session's channel, ``{}`` for a session that cannot be reached, ``None`` outside a build."""
    config_dir = os.environ.get("DOCKER_CONFIG")
    if not config_dir:
        return None
    try:
        fd = os.open(os.path.join(config_dir, CHANNEL_FILE), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        with os.fdopen(fd, "rb") as handle:
            data = json.loads(handle.read(MAX_MESSAGE).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def ask(channel: dict[str, Any], request: dict[str, Any]) -> dict[str, Any] | None:
    """The building process's answer to ``request``; ``None`` when it is gone, stopped or not ours."""
    address, nonce = channel.get("address"), channel.get("nonce")
    if not isinstance(address, str) or not isinstance(nonce, str) or not hasattr(socket, "AF_UNIX"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(REPLY_TIMEOUT)
        sock.connect(socket_address(address))
        uid = peer_uid(sock)
        if uid is not None and uid not in (os.geteuid(), 0):
            return None  # someone else holds the name (an abstract socket after our process died)
        sock.sendall(json.dumps({**request, "nonce": nonce}).encode("utf-8") + b"\n")
        reply = read_message(sock)
    except OSError:  # refused (the building process died), missing, timed out
        return None
    finally:
        sock.close()
    return reply if isinstance(reply, dict) else None


def _canonical(server: str) -> str:
    from .._reference import server_to_host

    return server_to_host(server)


def _standalone(host: str) -> tuple[str, str] | None:
    """Resolve as ``configure-docker`` routes it: declared registries first, then docker's own sources.

    Declarations come from config files and ``$FLYTE_PRIVATE_REGISTRIES`` (the catalog) and from
    the code declarations ``login -m``/``configure-docker -m`` saved beside the docker config
    (``_exported``), which win for the same prefix as code declarations do in the process that
    made them: this process never imports the workflow code. Docker asks per host, so when several
    prefixes share the host the broadest one (shortest path) that has a credential answers. A host
    nothing declares falls back to what docker would have found without the route (credsStore,
    auths), so routing a host never makes docker worse off.
    """
    from .._catalog import CATALOG
    from .._declaration import PrivateRegistry, not_declaring
    from ..credentials._docker_config import user_config_dir
    from ._exported import load_exported

    known = {r.prefix: r for r in CATALOG.registries()}
    known.update((r.prefix, r) for r in load_exported(user_config_dir()))
    candidates = sorted(
        (r for r in known.values() if r.reference.canonical_host == host), key=lambda r: len(r.reference.path)
    )
    if not candidates:
        with not_declaring():
            candidates = [PrivateRegistry(host)]
    for registry in candidates:
        credential = registry.resolve().credential
        if credential is not None:
            return credential.username, credential.password.get_secret_value()
    return None


def _from_session(channel: dict[str, Any], server: str) -> tuple[bool, tuple[str, str] | None]:
    """``(answered, credential)``: whether this build answers for ``server``, and with what.

    A build that is gone answers "not found" (never a slower or stale source); a live build that
    serves nothing for the host leaves it to the usual resolution (a host ``configure-docker`` routed).
    """
    reply = ask(channel, {"action": "get", "server": server})
    if not reply:
        return True, None
    if not reply.get("found"):
        return False, None
    username, secret = reply.get("Username"), reply.get("Secret")
    return True, (username, secret) if isinstance(username, str) and isinstance(secret, str) else None


def get(server: str, out: TextIO) -> int:
    channel = _channel()
    answered, found = _from_session(channel, server) if channel is not None else (False, None)
    if not answered:
        try:
            found = _standalone(_canonical(server))
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
    channel = _channel()
    reply = ask(channel, {"action": "list"}) if channel else None
    entries = reply.get("entries") if reply else None
    json.dump(entries if isinstance(entries, dict) else {}, out)
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
