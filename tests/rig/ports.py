"""TCP port helpers: pick a free port and wait for a service to listen on one."""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that is free on ``host`` right now.

    The kernel picks it (bind to port 0), so parallel rigs do not collide the way hard-coded
    ports would. There is a small race until the caller binds it, which is fine for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until something accepts TCP connections on ``host:port``.

    Raises ``TimeoutError`` naming the address, so a service that never came up fails loudly
    instead of making the first real request fail with a vaguer error.
    """
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.1f}s: {last_error}")
        time.sleep(0.05)
