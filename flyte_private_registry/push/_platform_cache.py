"""What the platform check learnt, kept in the process and on disk, so the next ``pyflyte`` run asks nothing again.

Two kinds of entry, both in ``$XDG_CACHE_HOME/flyte-private-registry/platforms`` (a private
directory like the token cache's, so no one else can plant an answer that passes the check; off
with ``$FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE=0``, one switch for the library's disk caches):

- by tag, the digest it had when its platforms were last checked, and those platforms: a hint
  for the existence check to choose a ``HEAD`` (seen before: the platforms are here) or a
  ``GET`` whose body the platform check reads (new). The registry's answer is always the one
  used. The file is named by a hash and says nothing of the registry or the image.
- by digest, the platforms a manifest serves (its content never changes under its digest), for
  digests reached other than through a checked tag: a pinned ``image@sha256:...``, a moved tag.

One file per tag, not a tag file and a digest file: a first run writes one file per image and a
warm run reads one. Creating a file costs 0.2-0.5 ms on this project's test machines, two per
image a noticeable share of a first ``pyflyte`` run. Tag files of the earlier form (the digest
alone) are still read; their platforms then come from the digest's file.

Entries are never stale in meaning, but a machine checks new tags every day: at most once a day a
write removes entries not rewritten for :data:`MAX_AGE_SECONDS`, so the directory does not grow
with every tag ever checked (an entry removed too early costs one manifest and config read again).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from typing import Any

from .._errors import ConfigurationError
from .._platform import Platform
from ..distribution._private_dir import PrivateDir, user_cache_dir
from ..distribution._spec import DIGEST
from ..distribution._token_cache import disk_cache_enabled

#: Entries not written for this long are removed by the daily sweep.
MAX_AGE_SECONDS = 30 * 86400
_SWEEP_EVERY_SECONDS = 86400
#: An empty file whose modification time is the last sweep's.
_SWEPT = "swept"
_NAME = re.compile(r"[a-z0-9]+-[a-f0-9]{32,128}\.json", re.ASCII)
_ENTRY_CAP = 64 * 1024

#: Per process: platforms by digest, digests by tag key (``None``: no entry on disk either).
_platforms: dict[str, tuple[Platform, ...]] = {}
_tags: dict[str, str | None] = {}
_lock = threading.Lock()
_swept = False  # this process has looked at the sweep's time


def forget() -> None:
    """What a new process knows: the disk only (tests that count requests start from here)."""
    global _swept
    with _lock:
        _platforms.clear()
        _tags.clear()
        _swept = False


def platforms(digest: str) -> tuple[Platform, ...] | None:
    """The platforms ``digest`` serves, if this process or an earlier one read them."""
    with _lock:
        found = _platforms.get(digest)
    if found is not None:
        return found
    found = _parse(_read(_file_name(digest), _ENTRY_CAP))
    if found is not None:
        with _lock:
            _platforms[digest] = found
    return found


def keep(digest: str, found: list[Platform], *, disk: bool = True) -> tuple[Platform, ...]:
    """Remember what ``digest`` serves; ``disk=False`` when a checked tag's entry will carry it."""
    result = tuple(dict.fromkeys(found))
    with _lock:
        _platforms[digest] = result
    if disk:
        _write(_file_name(digest), json.dumps([str(p) for p in result]))
    return result


def known_digest(host: str, repository: str, tag: str) -> str | None:
    """The digest ``tag`` had when its platforms were last checked here (this process or an earlier one), or ``None``.

    Its platforms, when the entry has them, are known from then on too: the check reads no other file.
    """
    key = _tag_key(host, repository, tag)
    with _lock:
        if key in _tags:
            return _tags[key]
    entry = _read(_file_name(key), _ENTRY_CAP)
    if isinstance(entry, dict):
        digest, found = entry.get("digest"), _parse(entry.get("platforms"))
    else:  # the earlier form: the digest alone
        digest, found = entry, None
    if not isinstance(digest, str) or not DIGEST.match(digest):
        digest = None
    with _lock:
        _tags[key] = digest
        if digest is not None and found is not None:
            _platforms.setdefault(digest, found)
    return digest


def remember_digest(host: str, repository: str, tag: str, digest: str) -> None:
    """After a passed platform check: the tag's next check is a ``HEAD``, and its platforms are in the same file."""
    if not DIGEST.match(digest):
        return
    key = _tag_key(host, repository, tag)
    with _lock:
        _tags[key] = digest
        found = _platforms.get(digest)
    entry: dict[str, Any] = {"digest": digest}
    if found is not None:
        entry["platforms"] = [str(p) for p in found]
    _write(_file_name(key), json.dumps(entry))


def _parse(listed: Any) -> tuple[Platform, ...] | None:
    """A list of platform strings as kept; ``None`` for anything else (a miss, never an error)."""
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        return None
    try:
        return tuple(Platform.parse(item) for item in listed)
    except ConfigurationError:
        return None


# -- the directory ----------------------------------------------------------------------------------
def _disk() -> PrivateDir | None:
    if not disk_cache_enabled():
        return None
    return PrivateDir(user_cache_dir("platforms"), _ours)


def _ours(name: str) -> bool:
    return name == _SWEPT or _NAME.fullmatch(name) is not None


def _tag_key(host: str, repository: str, tag: str) -> str:
    return "tag:" + hashlib.sha256(f"{host}/{repository}:{tag}".encode()).hexdigest()


def _file_name(key: str) -> str | None:
    """``sha256:<hex>`` (a digest) or ``tag:<hex>`` -> ``sha256-<hex>.json``; ``None`` for anything else."""
    algorithm, _, hexdigest = key.partition(":")
    name = f"{algorithm}-{hexdigest}.json"
    return name if _NAME.fullmatch(name) else None


def _read(name: str | None, limit: int) -> Any:
    """The JSON in our file ``name``; ``None`` for no cache, no file or a corrupt one (a miss, never an error)."""
    disk = _disk()
    if disk is None or name is None:
        return None
    with disk.opened() as fd:
        raw = PrivateDir.read(fd, name, limit) if fd is not None else None
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


def _write(name: str | None, text: str) -> None:
    disk = _disk()
    if disk is None or name is None:
        return
    with disk.opened() as fd:
        if fd is not None:
            disk.write(fd, name, text.encode())
            _sweep(disk, fd)


def _sweep(disk: PrivateDir, fd: int) -> None:
    """At most once a day (and one look per process): remove entries older than :data:`MAX_AGE_SECONDS`."""
    global _swept
    with _lock:
        if _swept:
            return
        _swept = True
    now = time.time()
    try:
        last = os.stat(_SWEPT, dir_fd=fd, follow_symlinks=False).st_mtime
    except OSError:
        last = 0.0
    if now - last < _SWEEP_EVERY_SECONDS:
        return
    disk.write(fd, _SWEPT, b"")
    cutoff = now - MAX_AGE_SECONDS

    def old(name: str) -> bool:
        try:
            return name != _SWEPT and os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime < cutoff
        except OSError:
            return False

    disk.sweep(fd, old)
