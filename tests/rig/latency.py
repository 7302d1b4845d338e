"""A TCP forwarder that delays every byte by a fixed time each way: a remote registry on one machine.

Why: users' registries (ECR, ghcr.io, a company Harbor) are tens of milliseconds away, and every
check, handshake and token request pays that round trip. The rig's services answer in well under
a millisecond, and this kernel has no ``netem`` to slow the loopback down, so a benchmark that
wants the round trip puts this in front of a service. It forwards raw TCP (TLS passes through
untouched, so certificates and host names still check) and holds each chunk for ``delay``
seconds before passing it on, in order; a round trip therefore costs ``2 * delay``. Bandwidth is
not limited: registry checks are small.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from ._process import RigError
from .ports import free_port


class LatencyProxy:
    """``127.0.0.1:<port>`` forwarding to ``target`` with ``delay`` seconds added in each direction."""

    def __init__(self, target: tuple[str, int], delay: float, host: str = "127.0.0.1") -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.target, self.delay, self.bind_host = target, delay, host
        self.port = free_port(host)
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> str:
        """``host:port`` clients connect to instead of the target."""
        return f"{self.bind_host}:{self.port}"

    @classmethod
    def start(cls, target: tuple[str, int], delay: float, host: str = "127.0.0.1") -> LatencyProxy:
        proxy = cls(target, delay, host)
        proxy._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(proxy._serve, proxy.bind_host, proxy.port), proxy._loop
        )
        try:
            proxy._server = future.result(timeout=10)
        except Exception as err:
            proxy.stop()
            raise RigError(f"latency proxy could not listen on {proxy.address}: {err}") from err
        return proxy

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # each connection closes its sockets while the loop still runs, not when collected later;
            # again until none is left, for a connection accepted while the others were closing
            while tasks := [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
                return_exceptions=True,
            )
        except asyncio.CancelledError:  # stop(): the connection just ends
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk ``delay`` after it arrived; EOF travels late too."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            while True:
                try:
                    data = await reader.read(1 << 16)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    return

        receiving = asyncio.ensure_future(receive())
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            return
        finally:
            receiving.cancel()
