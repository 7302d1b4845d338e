"""Shared plumbing for the rig's child processes: binary lookup, log tails, termination, lifecycle."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TypeVar

TEST_COMMAND = "`./dev test` from the repository root"
_S = TypeVar("_S", bound="Service")


class RigError(RuntimeError):
    """A rig service could not be started or used; the message says what to look at."""


class Service:
    """A child process started once and stopped exactly once: by the test, by ``with``, or at exit.

    Subclasses set ``proc`` and ``log_path`` and implement ``_probe`` (``None`` when ready, else
    what the last attempt saw) and ``_shutdown``.
    """

    _stopped = False
    proc: subprocess.Popen[bytes]
    log_path: Path

    def _probe(self) -> str | None:
        raise NotImplementedError

    def _become_ready(self, what: str, timeout: float, interval: float = 0.1) -> None:
        """Poll until ready; on failure stop what was started and raise with the log's tail."""
        atexit.register(self.stop)
        try:
            deadline = time.monotonic() + timeout
            last = ""
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RigError(
                        f"{what} exited with {self.proc.returncode} during startup.\n"
                        f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}"
                    )
                seen = self._probe()
                if seen is None:
                    return
                last = seen
                time.sleep(interval)
            raise RigError(
                f"{what} not ready after {timeout:.0f}s (last: {last!r}).\n"
                f"--- {self.log_path} (tail) ---\n{log_tail(self.log_path)}"
            )
        except BaseException:
            self.stop()
            raise

    def _shutdown(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service and everything it spawned; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._shutdown()
        atexit.unregister(self.stop)

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MissingBinaryError(RigError):
    """A system binary the rig needs is absent; the message names the apt package to install."""


def require_binary(name: str, apt_package: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/sbin")) -> str:
    """Return the absolute path of ``name`` or fail naming the apt package.

    The rig never skips: a missing binary must fail the run, or CI would go green without ever
    exercising a real daemon/registry. ``/usr/sbin`` is searched too because ``dockerd`` lives
    there and non-login shells often lack it on PATH.
    """
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise MissingBinaryError(
        f"`{name}` is not installed; the integration rig needs it. Install it with "
        f"`apt-get install -y {apt_package}` and run the project's test command again ({TEST_COMMAND})."
    )


def log_tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a log file, for error messages (empty if the file is missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (zombies still answer ``kill 0``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM ``proc``, wait up to ``timeout``, then SIGKILL: a graceful stop that cannot hang."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def kill_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM then SIGKILL a process that is not our direct child (e.g. dockerd's containerd)."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
