"""Loaded as ``sitecustomize`` by a benchmark's child processes: a TCP connect to a LatencyProxy takes a round trip.

Why: :class:`rig.LatencyProxy` delays every byte, but the kernel completes a TCP handshake with a
listening socket at once, and this kernel has no ``netem``. Across a network a connect waits one
round trip, and the library reads that wait to tell a far registry from a near one, so a
benchmark of a far registry puts this directory on the child's ``PYTHONPATH`` with
``RIG_CONNECT_DELAY=<port>,<port>@<seconds>``. Only ``socket.create_connection`` to those ports
is slowed: the way http.client, httpcore and the library connect.
"""

from __future__ import annotations

import os
import socket
import time

_ports, _, _delay = os.environ.get("RIG_CONNECT_DELAY", "").partition("@")
_PORTS = {int(port) for port in _ports.split(",") if port.strip()}
_DELAY = float(_delay or 0)
_create_connection = socket.create_connection


def _slow_create_connection(address, *args, **kwargs):  # type: ignore[no-untyped-def]
    if address[1] in _PORTS:
        time.sleep(_DELAY)
    return _create_connection(address, *args, **kwargs)


if _PORTS and _DELAY > 0:
    socket.create_connection = _slow_create_connection
