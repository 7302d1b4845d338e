"""Loaded as ``sitecustomize`` by a benchmark's child processes: a TCP connect to a LatencyProxy takes a round trip.

Why: :class:`rig.LatencyProxy` delays every byte, but the kernel completes a TCP handshake with a
listening socket at once, and this kernel has no ``netem``. Across a network a connect waits one
round trip, and the library reads that wait to tell a far registry from a near one, so a
benchmark of a far registry puts this directory on the child's ``PYTHONPATH`` with
``RIG_CONNECT_DELAY=<port>,<port>@<seconds>``. Only ``socket.create_connection`` to those ports
is slowed: the way http.client, httpcore and the library connect. In-process tests use
:func:`slowed` directly.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Collection
from typing import Any


def slowed(ports: Collection[int], delay: float, connect: Callable[..., Any] = socket.create_connection) -> Any:
    """``connect`` (``socket.create_connection``), waiting ``delay`` first for a connect to one of ``ports``."""

    def create_connection(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        if address[1] in ports:
            time.sleep(delay)
        return connect(address, *args, **kwargs)

    return create_connection


_ports, _, _delay = os.environ.get("RIG_CONNECT_DELAY", "").partition("@")
_PORTS = {int(port) for port in _ports.split(",") if port.strip()}
if _PORTS and float(_delay or 0) > 0:
    socket.create_connection = slowed(_PORTS, float(_delay))
