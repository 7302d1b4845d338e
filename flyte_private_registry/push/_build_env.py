"""A throw-away ``DOCKER_CONFIG`` that routes private hosts to our credential helper.

Why not write ``auths`` into a config? A ``credsStore`` (Docker Desktop, OS keychains) makes
docker ignore ``auths``; ``credHelpers`` wins over both. Why not edit ``~/.docker``? It is the
user's. So: a 0700 temp dir whose ``config.json`` is the user's plus ``credHelpers`` routes, the
user's other entries (``cli-plugins`` with buildx, ``contexts``, ``buildx``) linked in, a 0600
session file the helper serves from, and a ``bin/`` shim so the helper is on ``PATH`` even when
pyflyte runs from an unactivated virtualenv. Everything is removed on success, error, Ctrl-C
and SIGTERM.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from .._reference import docker_config_key
from ..credentials import Credential
from ..credentials._docker_config import OWN_HELPER, load_config, user_config_dir
from .helper import HELPER_PROGRAM, SESSION_FILE

_ENV_LOCK = threading.RLock()


@dataclass(frozen=True)
class BuildEnvironment:
    """Where the temporary config lives and the env vars that point a build at it."""

    directory: Path
    env: dict[str, str]


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _link_user_entries(user_dir: Path, target: Path) -> None:
    """Share buildx state, CLI plugins and contexts with the user's config dir (not copies)."""
    if not user_dir.is_dir():
        return
    for entry in user_dir.iterdir():
        if entry.name in ("config.json", SESSION_FILE, "bin"):
            continue
        os.symlink(entry, target / entry.name)


@contextmanager
def private_docker_config(
    credentials: Mapping[str, Credential], *, user_dir: Path | None = None
) -> Iterator[BuildEnvironment]:
    """Yield a temporary docker config serving ``credentials`` (canonical host -> credential)."""
    user_dir = user_dir or user_config_dir()
    directory = Path(tempfile.mkdtemp(prefix="fpr-docker-"))  # mkdtemp makes it 0700
    try:
        config = load_config(user_dir)
        helpers = dict(config.get("credHelpers") or {})
        for host in credentials:
            helpers[docker_config_key(host)] = OWN_HELPER
        config["credHelpers"] = helpers
        _write_private(directory / "config.json", json.dumps(config, indent=2))
        session = {
            "version": 1,
            "credentials": {
                host: {
                    "Username": cred.username,
                    "Secret": cred.password.get_secret_value(),
                    "Source": cred.source,
                }
                for host, cred in credentials.items()
            },
        }
        _write_private(directory / SESSION_FILE, json.dumps(session))
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
        shutil.rmtree(directory, ignore_errors=True)


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


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit`` while a build runs, so ``finally`` blocks clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        yield  # the application handles SIGTERM itself
        return

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
