"""A throw-away ``DOCKER_CONFIG`` that routes private hosts to our credential helper.

Why not write ``auths`` into a config? A ``credsStore`` (Docker Desktop, OS keychains) makes
docker ignore ``auths``; ``credHelpers`` wins over both. Why not edit ``~/.docker``? It is the
user's. So: a 0700 temp dir whose ``config.json`` is the user's plus ``credHelpers`` routes, the
user's other entries (``cli-plugins`` with buildx, ``contexts``, ``buildx``) linked in, and a
``bin/`` shim so the helper is on ``PATH`` even when pyflyte runs from an unactivated virtualenv.

Why no credential file: a file outlives a SIGKILL (OOM killer, CI cancel), a closed terminal and
any signal a worker thread cannot catch. The credentials stay in this process's memory; a
background thread serves them on a Unix socket in the 0700 directory, for the helper only (same
uid, checked with ``SO_PEERCRED``, plus a random per-session nonce). Inline passwords in the
user's ``auths`` are served the same way instead of being copied. Whatever kills the process, the
directory left behind holds no secret; it is removed on exit, error, Ctrl-C, SIGTERM, SIGHUP and
SIGQUIT (main thread), by an ``atexit`` sweep, and otherwise by the next build's sweep of
directories whose owning process is dead.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hmac
import json
import os
import secrets
import selectors
import shlex
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from .._reference import docker_config_key, server_to_host
from ..credentials import Credential
from ..credentials._docker_config import OWN_HELPER, _from_auths_entry, load_config, user_config_dir
from .helper import (
    CHANNEL_FILE,
    CHANNEL_VERSION,
    HELPER_PROGRAM,
    LEGACY_SESSION_FILE,
    peer_uid,
    read_message,
    socket_address,
)

PREFIX = "fpr-docker-"
#: Who created the directory (pid and process start time): the sweep removes it once that process is gone.
OWNER_FILE = "flyte-private-registry-owner.json"
SOCKET_FILE = "flyte-private-registry.sock"
_RESERVED = frozenset({"config.json", "bin", CHANNEL_FILE, OWNER_FILE, SOCKET_FILE, LEGACY_SESSION_FILE})
#: Inline secrets docker keeps in an ``auths`` entry; never copied into the temporary config.
_INLINE_SECRETS = ("auth", "password", "identitytoken", "registrytoken")
#: Earlier versions recorded no owner: their directories are swept once this old.
LEGACY_GRACE = 3600.0
_TRANSIENT_ACCEPT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED})
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 104 (macOS) or 108 (Linux) bytes with the NUL

_ENV_LOCK = threading.RLock()
_LIVE: set[Path] = set()
_LIVE_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


@dataclass(frozen=True)
class BuildEnvironment:
    """Where the temporary config lives and the env vars that point a build at it."""

    directory: Path
    env: dict[str, str]


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _link_user_entries(user_dir: Path, target: Path) -> None:
    """Share buildx state, CLI plugins and contexts with the user's config dir (not copies)."""
    if not user_dir.is_dir():
        return
    for entry in user_dir.iterdir():
        if entry.name in _RESERVED:
            continue
        os.symlink(entry, target / entry.name)


# ----------------------------------------------------------------------------------- the channel
class _CredentialServer:
    """Serves ``credentials`` to the helper on a Unix socket while the build runs.

    A daemon thread accepts connections (so it works whether the build runs on the main thread or
    in flytekit's thread pool) and answers each on a short-lived thread. A request is answered only
    when the peer runs as our uid (or root) and quotes the session nonce; nothing is ever logged.
    """

    def __init__(self, credentials: Mapping[str, Credential], directory: Path) -> None:
        self._credentials = {server_to_host(host): cred for host, cred in credentials.items()}
        self.nonce = secrets.token_urlsafe(32)
        self._uid = os.geteuid()
        path = str(directory / SOCKET_FILE)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if len(os.fsencode(path)) < _SUN_PATH_MAX:
                self.address = path
            elif sys.platform.startswith("linux"):  # a long $TMPDIR: Linux's abstract namespace, same checks
                self.address = f"@flyte-private-registry-{secrets.token_hex(16)}"
            else:
                raise OSError(f"temporary directory path too long for a Unix socket: {path}")
            self._listener.bind(socket_address(self.address))
            self._listener.listen(16)
        except BaseException:
            self._listener.close()
            raise
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="flyte-private-registry-credentials", daemon=True)
        self._thread.start()

    def channel(self) -> str:
        return json.dumps({"version": CHANNEL_VERSION, "address": self.address, "nonce": self.nonce})

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:  # not select(): a big process may hold fds past FD_SETSIZE
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                try:
                    ready = {key.fileobj for key, _ in selector.select()}
                    if self._wake_read in ready:
                        return
                    conn, _ = self._listener.accept()
                    answer = threading.Thread(
                        target=self._handle, args=(conn,), name="flyte-private-registry-answer", daemon=True
                    )
                    answer.start()
                except OSError as err:
                    if err.errno not in _TRANSIENT_ACCEPT:
                        return  # the listener was closed
                    time.sleep(0.05)  # out of fds for a moment: the helper's retry-free connect waits in the backlog
                except Exception:  # out of threads, or anything else: stop quietly, never a traceback
                    return

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(Exception):  # a misbehaving client gets no answer, never a traceback
            conn.settimeout(5.0)
            uid = peer_uid(conn)
            if uid is not None and uid not in (self._uid, 0):
                return
            request = read_message(conn)
            if not isinstance(request, dict) or not isinstance(request.get("nonce"), str):
                return
            if not hmac.compare_digest(request["nonce"].encode(), self.nonce.encode()):
                return
            conn.sendall(json.dumps(self._answer(request)).encode("utf-8") + b"\n")

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("action") == "list":
            return {"entries": {docker_config_key(host): cred.username for host, cred in self._credentials.items()}}
        server = request.get("server")
        cred = self._credentials.get(server_to_host(server)) if isinstance(server, str) else None
        if cred is None:
            return {"found": False}
        return {"found": True, "Username": cred.username, "Secret": cred.password.get_secret_value()}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        self._thread.join(timeout=5.0)
        self._listener.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._credentials = {}


# ------------------------------------------------------------------------------ the config file
def runnable_helpers_only(config: dict[str, Any]) -> dict[str, Any]:
    """Drop a ``credsStore`` and ``credHelpers`` whose ``docker-credential-*`` program is not on ``PATH``.

    Docker's classic builder collects every credential with ``GetAllCredentials``, which gives up
    on a store that cannot run (a Docker Desktop config copied to CI) and then sends none at all,
    our routes included: the pull of a private base image fails with ``no basic auth credentials``.
    """

    def runs(helper: Any) -> bool:
        return helper == OWN_HELPER or (
            isinstance(helper, str) and shutil.which(f"docker-credential-{helper}") is not None
        )

    if "credsStore" in config and not runs(config["credsStore"]):
        del config["credsStore"]
    if isinstance(config.get("credHelpers"), dict):
        config["credHelpers"] = {key: helper for key, helper in config["credHelpers"].items() if runs(helper)}
    return config


def _route_config(
    config: dict[str, Any], credentials: Mapping[str, Credential]
) -> tuple[dict[str, Any], dict[str, Credential]]:
    """The temporary config (no inline secret) and every credential the channel serves.

    Declared hosts are routed to our helper. Inline ``auths`` secrets are dropped from the copy;
    where docker would have used them (no ``credsStore``, no ``credHelpers`` entry) their host is
    routed to our helper too and served from memory, so the build sees what it would have seen.
    """
    served: dict[str, Credential] = {}
    helpers = config.get("credHelpers")
    helpers = dict(helpers) if isinstance(helpers, dict) else {}
    auths = config.get("auths")
    if isinstance(auths, dict):
        stripped: dict[str, Any] = {}
        helper_hosts = {server_to_host(key) for key in helpers}
        for key, entry in auths.items():
            if not isinstance(entry, dict) or not any(name in entry for name in _INLINE_SECRETS):
                stripped[key] = entry
                continue
            stripped[key] = {name: value for name, value in entry.items() if name not in _INLINE_SECRETS}
            host = server_to_host(key)
            if config.get("credsStore") or host in helper_hosts or host in served:
                continue  # docker would not have used the inline secret
            try:
                found = _from_auths_entry(entry, source="docker config")
            except Exception:  # a malformed entry docker could not have used either
                continue
            if isinstance(found, Credential):
                served[host] = found
                helpers[docker_config_key(host)] = OWN_HELPER
        config["auths"] = stripped
    for host, cred in credentials.items():
        served[server_to_host(host)] = cred
        helpers[docker_config_key(host)] = OWN_HELPER
    config["credHelpers"] = helpers
    return config, served


# ------------------------------------------------------------------------- owners and the sweep
def _process_start(pid: int | str) -> str | None:
    """The kernel's start time of ``pid`` (Linux), so a recycled pid is not taken for the owner."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def _pid_alive(pid: int, started: str | None) -> bool:
    if pid <= 0:
        return False
    if os.path.isdir("/proc/self"):
        now = _process_start(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_small(directory: Path, name: str) -> Any:
    """A small JSON file of ours in ``directory`` (regular, our uid, not a link), or ``None``."""
    try:
        fd = os.open(directory / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            return None
        return json.loads(os.read(fd, 65536).decode("utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _socket_answers(directory: Path) -> bool:
    """Someone still listens on the directory's socket (its owner lives, perhaps in another pid namespace)."""
    channel = _read_small(directory, CHANNEL_FILE)
    address = channel.get("address") if isinstance(channel, dict) else None
    if not isinstance(address, str):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(socket_address(address))
        except OSError:
            return False
    return True


def _stale(directory: Path, info: os.stat_result, now: float) -> bool:
    owner = _read_small(directory, OWNER_FILE)
    if isinstance(owner, dict) and isinstance(owner.get("pid"), int):
        started = owner.get("started")
        if _pid_alive(owner["pid"], started if isinstance(started, str) else None):
            return False
        return not _socket_answers(directory)
    # an earlier version (no owner record), or one killed before writing it: recognisable ones, by age
    try:
        names = set(os.listdir(directory))
    except OSError:
        return False
    ours = not names or bool(names & {LEGACY_SESSION_FILE, "config.json", "bin"})
    return ours and now - info.st_mtime > LEGACY_GRACE


def sweep_leftovers(tmpdir: str | None = None) -> list[Path]:
    """Remove temporary configs left by dead processes (ours by name prefix and uid; links never followed)."""
    base = Path(tmpdir or tempfile.gettempdir())
    removed: list[Path] = []
    now = time.time()
    try:
        entries = [entry for entry in os.scandir(base) if entry.name.startswith(PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        directory = Path(entry.path)
        try:
            info = os.lstat(directory)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or directory in _LIVE:
                continue
            if _stale(directory, info, now):
                shutil.rmtree(directory)  # never follows links inside; refuses a link at the top
                removed.append(directory)
        except OSError:
            continue
    return removed


def _remove_live_dirs() -> None:
    """At interpreter exit (also after SIGTERM on a worker-thread build): nothing of ours stays."""
    with _LIVE_LOCK:
        live = list(_LIVE)
        _LIVE.clear()
    for directory in live:
        shutil.rmtree(directory, ignore_errors=True)


def _track(directory: Path) -> None:
    global _ATEXIT_REGISTERED
    with _LIVE_LOCK:
        if not _ATEXIT_REGISTERED:
            atexit.register(_remove_live_dirs)
            _ATEXIT_REGISTERED = True
        _LIVE.add(directory)


def _untrack(directory: Path) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(directory)


@contextmanager
def private_docker_config(
    credentials: Mapping[str, Credential], *, user_dir: Path | None = None
) -> Iterator[BuildEnvironment]:
    """Yield a temporary docker config serving ``credentials`` (canonical host -> credential)."""
    user_dir = user_dir or user_config_dir()
    with terminate_as_exit():
        sweep_leftovers()
        directory = Path(tempfile.mkdtemp(prefix=PREFIX))  # mkdtemp makes it 0700
        _track(directory)
        server: _CredentialServer | None = None
        try:
            owner = {"pid": os.getpid(), "started": _process_start("self")}
            _write_private(directory / OWNER_FILE, json.dumps(owner))
            config, served = _route_config(runnable_helpers_only(load_config(user_dir)), credentials)
            server = _CredentialServer(served, directory)
            _write_private(directory / CHANNEL_FILE, server.channel())
            _write_private(directory / "config.json", json.dumps(config, indent=2))
            bin_dir = directory / "bin"
            bin_dir.mkdir(mode=0o700)
            shim = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m flyte_private_registry.push.helper "$@"\n'
            _write_private(bin_dir / HELPER_PROGRAM, shim, mode=0o700)
            _link_user_entries(user_dir, directory)
            env = {
                "DOCKER_CONFIG": str(directory),
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            }
            yield BuildEnvironment(directory, env)
        finally:
            if server is not None:
                server.close()
            shutil.rmtree(directory, ignore_errors=True)
            _untrack(directory)


@contextmanager
def patched_environ(overrides: Mapping[str, str]) -> Iterator[None]:
    """Builders shell out with the inherited environment, so the overrides go into ``os.environ``."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in overrides}
        os.environ.update(overrides)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


#: The signals docker, CI runners and terminals send to stop a process (SIGKILL cannot be caught).
EXIT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn stop signals into ``SystemExit`` while a build runs, so ``finally`` blocks clean up.

    Only on the main thread (Python allows handlers nowhere else) and only for signals left at
    their default action: an application's own handler, or an ignored SIGHUP (nohup), is kept.
    Off the main thread nothing is installed; that is safe because no secret is on disk.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    installed: dict[int, Any] = {}
    try:
        for signum in EXIT_SIGNALS:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_DFL:
                signal.signal(signum, _exit)
                installed[signum] = previous
        yield
    finally:
        for signum, previous in installed.items():
            signal.signal(signum, previous)
