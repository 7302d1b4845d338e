"""Run a command in its own mount and network namespaces, with a private /etc/hosts.

Why: the rig serves registries under provider names (``ghcr.io``, ECR hosts, ...) on fixed
loopback addresses such as ``127.0.0.52:443``. In the machine's namespaces that means editing the
shared /etc/hosts and binding shared ports, so two runs on one machine break each other. Under
``unshare --mount --net`` the run gets a private copy of /etc/hosts (a file on a private tmpfs,
bind-mounted over /etc/hosts), its own loopback and its own TMPDIR; everything it starts
(dockerd, registries, moto) inherits them, and the hosts copy and loopback vanish with the run's
last process, also after a SIGKILL.

Usage (as root): ``python tests/rig/isolate.py [--] COMMAND [ARGS...]``; ``./dev test`` and
``./dev bench`` go through it. Standalone on purpose (no imports from the rig package) so it
runs as a script before anything is installed on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

ETC_HOSTS = Path("/etc/hosts")
# Set by the launcher inside the new namespaces: "mnt=DEV:INO;hosts=DEV:INO;outer-fd=N".
MARKER_ENV = "FPR_RIG_ISOLATION"
_OUTER_ENV = "_FPR_RIG_OUTER_MNT"
HOW_TO_RUN = (
    "run the tests with `./dev test` (or, as root, `python tests/rig/isolate.py pytest ...`), which gives "
    "the run its own mount and network namespaces and a private /etc/hosts"
)


class IsolationError(RuntimeError):
    """The namespaces could not be set up; the message says what is missing."""


def _identity(path: str | Path) -> str:
    """``DEV:INO`` of a file or namespace: equal identities mean the same object."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def marker() -> dict[str, str]:
    """The launcher's marker as a dict (empty when this process was not started by it)."""
    raw = os.environ.get(MARKER_ENV, "")
    return dict(part.split("=", 1) for part in raw.split(";") if "=" in part)


def machine_mount_namespace() -> str | None:
    """Identity of the machine's (PID 1's) mount namespace, or None where it is hidden from us."""
    try:
        return _identity("/proc/1/ns/mnt")
    except OSError:
        return None


def isolation_problem() -> str | None:
    """Why editing /etc/hosts here would touch a file other runs share; None when it is private.

    Private means: this process is in the mount namespace the launcher created (its identity is
    in the marker, and it is not PID 1's where that is visible), and /etc/hosts is still the
    private copy the launcher bind-mounted there.
    """
    own = _identity("/proc/self/ns/mnt")
    if machine_mount_namespace() == own:
        return "this process shares the machine's mount namespace"
    found = marker()
    if not found:
        return "this process was not started by tests/rig/isolate.py"
    if found.get("mnt") != own:
        return "this process is not in the mount namespace tests/rig/isolate.py created"
    if found.get("hosts") != _identity(ETC_HOSTS):
        return "/etc/hosts is not the private copy tests/rig/isolate.py mounted"
    return None


def outer_mount_namespace_fd() -> int | None:
    """An fd of the mount namespace the launcher came from (tests use it to look outside)."""
    fd = marker().get("outer-fd")
    if fd is None or not fd.isdigit():
        return None
    try:
        is_namespace = os.fstat(int(fd)).st_dev == os.stat("/proc/self/ns/mnt").st_dev  # both on nsfs
    except OSError:
        return None
    return int(fd) if is_namespace else None


def _loopback_up() -> None:
    """``ip link set lo up`` without needing iproute2: SIOCGIFFLAGS/SIOCSIFFLAGS on ``lo``."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise IsolationError(f"`mount {' '.join(args)}` failed: {result.stderr.strip()}")


def _private_hosts() -> str:
    """Bind a copy of /etc/hosts from a private tmpfs over /etc/hosts; return the copy's identity.

    The tmpfs is detached from its directory right away, so nothing is left on disk: the copy
    lives only as long as the namespace (a killed run leaves nothing behind).
    """
    staging = Path(tempfile.mkdtemp(prefix="fpr-isolated-", dir="/tmp"))
    try:
        _mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "fpr-isolated", str(staging))
        try:
            copy = staging / "hosts"
            copy.write_bytes(ETC_HOSTS.read_bytes())
            copy.chmod(0o644)
            _mount("--bind", str(copy), str(ETC_HOSTS))
        finally:
            subprocess.run(["umount", "--lazy", str(staging)], check=False, capture_output=True)
    finally:
        staging.rmdir()
    return _identity(ETC_HOSTS)


def _run_child(command: Sequence[str], keep_fds: Sequence[int]) -> int:
    """Run ``command`` and wait; SIGTERM/SIGHUP/SIGQUIT are passed on, Ctrl-C reaches it from the tty."""
    child = subprocess.Popen(list(command), pass_fds=tuple(keep_fds))

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = child.wait()
    return 128 - code if code < 0 else code


def _inside(command: Sequence[str]) -> int:
    """Second stage, already in the new namespaces: loopback up, private hosts and TMPDIR, run.

    A private TMPDIR too, because tests look for their own leftovers there (``fpr-docker-*``,
    pytest's numbered basetemps) and must not see a concurrent run's. Removed afterwards unless
    RIG_KEEP is set.
    """
    own = _identity("/proc/self/ns/mnt")
    if own == os.environ.pop(_OUTER_ENV, ""):
        raise IsolationError("unshare did not give this process a new mount namespace")
    _loopback_up()
    hosts = _private_hosts()
    outer_fd = os.environ.pop("_FPR_RIG_OUTER_FD", "")
    os.environ[MARKER_ENV] = f"mnt={own};hosts={hosts};outer-fd={outer_fd}"
    tmpdir = tempfile.mkdtemp(prefix="fpr-run-")
    os.environ["TMPDIR"] = tempfile.tempdir = tmpdir
    try:
        return _run_child(command, [int(outer_fd)] if outer_fd.isdigit() else [])
    finally:
        if os.environ.get("RIG_KEEP"):
            print(f"isolate: kept TMPDIR {tmpdir}", file=sys.stderr)
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)


def launch_command(command: Sequence[str]) -> list[str]:
    """The argv that runs ``command`` isolated (``unshare`` re-running this file's second stage)."""
    if os.geteuid() != 0:
        raise IsolationError(
            "the integration tests need root: they start dockerd and mount a private /etc/hosts "
            "in their own namespaces; run `./dev test` as root (or with sudo)"
        )
    unshare = shutil.which("unshare") or shutil.which("unshare", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if unshare is None:
        raise IsolationError("`unshare` not found: apt-get install util-linux")
    second_stage = [sys.executable, os.path.abspath(__file__), "--inside", "--", *command]
    return [unshare, "--mount", "--net", "--propagation", "private", "--", *second_stage]


def exec_isolated(command: Sequence[str], before_exec: Callable[[], None] | None = None) -> None:
    """Replace this process with ``command`` run isolated (directly when already isolated)."""
    if isolation_problem() is None:
        os.execvp(command[0], list(command))
    argv = launch_command(command)
    # The namespace we come from, kept open so tests can prove what the outside sees.
    outer_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    os.set_inheritable(outer_fd, True)
    os.environ[_OUTER_ENV] = _identity("/proc/self/ns/mnt")
    os.environ["_FPR_RIG_OUTER_FD"] = str(outer_fd)
    if before_exec is not None:
        before_exec()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def ensure_isolated(before_exec: Callable[[], None] | None = None) -> None:
    """Re-run this very program isolated unless it already is (or an earlier attempt was made).

    For entry points people run directly (``pytest``, a benchmark script): they get the same
    namespaces as through ``./dev``. Raises :class:`IsolationError` when that is impossible.
    """
    if os.environ.get(MARKER_ENV) or isolation_problem() is None:
        return
    exec_isolated([sys.executable, *sys.orig_argv[1:]], before_exec)


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    inside = bool(args) and args[0] == "--inside"
    if inside:
        args = args[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if inside:
            return _inside(args)
        exec_isolated(args)
    except IsolationError as exc:
        print(f"isolate: {exc}", file=sys.stderr)
        return 1
    return 0  # not reached: exec_isolated replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
