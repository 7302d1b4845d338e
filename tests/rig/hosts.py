"""Temporarily map provider hostnames (ECR, GHCR, ...) to loopback registries via /etc/hosts.

Hostname-based logic (provider detection, credential helpers, kubelet-style matching) can then
be tested end to end against a local registry answering under the real name. The daemon, Python
and every other resolver read /etc/hosts, so no DNS server is needed.

/etc/hosts is only ever edited when it is the run's private copy (see ``isolate.py``): the
machine's file is shared by every run and every program on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .isolate import ETC_HOSTS, HOW_TO_RUN, isolation_problem

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _rewrite(path: Path, edit: Callable[[str], str]) -> None:
    """Edit ``path`` in place under an exclusive lock.

    In place (not write-and-rename) because /etc/hosts is often a bind mount in containers.
    """
    with path.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            text = handle.read()
            new = edit(text)
            handle.seek(0)
            handle.write(new)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def hosts_entries(entries: Mapping[str, str], path: Path = ETC_HOSTS) -> Iterator[Path]:
    """Append ``hostname -> ip`` lines in a marked block, and remove exactly that block on exit.

    Other content (including blocks from concurrent rigs) is left untouched, also when the body
    raises. /etc/hosts itself is edited only inside the private namespaces ``isolate.py`` sets
    up; anywhere else we refuse up front, before touching it.
    """
    path = Path(path)
    if path.resolve() == ETC_HOSTS.resolve():
        problem = isolation_problem()
        if problem is not None:
            raise PermissionError(f"refusing to edit the machine's /etc/hosts: {problem}; {HOW_TO_RUN}.")
    lines = []
    for hostname, ip in entries.items():
        ipaddress.ip_address(ip)  # raises ValueError on garbage
        if not _HOSTNAME.match(hostname):
            raise ValueError(f"not a hostname: {hostname!r}")
        lines.append(f"{ip}\t{hostname}\n")
    marker = f"rig-hosts-{uuid.uuid4().hex[:12]}"
    begin, end = f"# >>> {marker} >>>\n", f"# <<< {marker} <<<\n"
    block = begin + "".join(lines) + end

    def add(text: str) -> str:
        return text + ("" if not text or text.endswith("\n") else "\n") + block

    def remove(text: str) -> str:
        start = text.find(begin)
        if start < 0:
            return text
        stop = text.find(end, start)
        if stop < 0:
            return text
        return text[:start] + text[stop + len(end) :]

    _rewrite(path, add)
    try:
        yield path
    finally:
        _rewrite(path, remove)
