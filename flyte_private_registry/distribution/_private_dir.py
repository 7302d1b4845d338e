"""A directory only we own, holding files only we can read: the base of every on-disk token cache.

Why one helper: tokens are credentials, and more than one cache keeps them across processes
(registry bearer tokens in ``distribution/_token_cache.py``; the ECR cache in
``providers/_ecr.py`` has the same rules). Getting symlink safety right once is easier than
twice. The rules, all enforced on descriptors rather than path names:

- the directory is opened with ``O_NOFOLLOW`` (a symlink there turns the cache off), must be a
  real directory owned by us, and is tightened to 0700 through its descriptor;
- files are opened relative to that descriptor with ``O_NOFOLLOW`` and trusted only if they are
  regular, owned by us and not readable by anyone else (0600);
- writes go to a temporary file created with ``O_EXCL`` and are renamed over the entry
  atomically; a temporary file a killed writer left behind is swept by the next writer;
- only names the caller calls its own are ever read, replaced, deleted or locked;
- a lock file (``locked``) serialises work across processes, e.g. so that processes starting
  together wait for one fetch instead of each making it.

Every failure turns the cache off for that call (``None``/``False``), never into an error: a
cache must not break the command it speeds up. Stdlib only, cheap to import.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: A writer holds its temporary file for milliseconds; an older one lost its writer.
TEMP_GRACE_SECONDS = 60.0
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]+\.tmp", re.ASCII)


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/flyte-private-registry/<parts>`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "flyte-private-registry", *parts)


def supported() -> bool:
    """Descriptor-relative, no-follow file operations exist here (not on Windows)."""
    return bool(getattr(os, "O_NOFOLLOW", 0)) and os.open in os.supports_dir_fd


class PrivateDir:
    """``directory``, used only through a checked descriptor; ``ours`` says which names are ours."""

    def __init__(self, directory: Path, ours: Callable[[str], bool]) -> None:
        self.directory = directory
        self._ours = ours

    @contextlib.contextmanager
    def opened(self) -> Iterator[int | None]:
        """A descriptor of the directory, or ``None`` when it is not safely ours (the cache is then off)."""
        if not supported():  # pragma: no cover - Windows
            yield None
            return
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW
        try:
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.directory, 0o700)
            fd = os.open(self.directory, flags)  # a symlink fails here (ELOOP/ENOTDIR)
        except OSError:
            yield None
            return
        try:
            try:
                info = os.fstat(fd)
                usable = stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
                if usable and info.st_mode & 0o077:
                    os.fchmod(fd, 0o700)  # the descriptor is the checked directory itself, not a link's target
            except OSError:
                usable = False
            yield fd if usable else None
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[bool]:
        """Hold an exclusive cross-process lock on our file ``name`` (created 0600) for the block.

        Yields whether the lock is held: without one (directory not ours, no ``fcntl``, any error)
        the block still runs, unserialised, which is still correct, only slower.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield False
            return
        if not self._ours(name):
            yield False
            return
        with self.opened() as dir_fd:
            if dir_fd is None:
                yield False
                return
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
            except OSError:
                yield False
                return
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:  # e.g. ENOLCK on a network file system
                    held = False
                else:
                    held = True
                yield held
            finally:
                os.close(fd)  # closing releases the lock

    @staticmethod
    def read(dir_fd: int, name: str, limit: int = 1 << 20) -> bytes | None:
        """The bytes of ``name`` if it is a regular 0600 file of ours (links are not followed)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
                return None  # not ours, or readable by others: do not trust it
            if info.st_size > limit:
                return None
            return os.read(fd, limit + 1)[:limit]
        except OSError:
            return None
        finally:
            os.close(fd)

    def write(self, dir_fd: int, name: str, data: bytes) -> bool:
        """Replace ``name`` atomically with a 0600 file holding ``data``; ``False`` if that failed.

        No ``fsync``: these are caches, and a file torn by a power cut reads as a miss. An fsync per
        write cost 1-8 ms of a cold ``pyflyte`` check's wall time, three writes per run.
        """
        if not self._ours(name):
            return False
        tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        except BaseException as err:  # the temporary file never outlives a failed write
            self.unlink(dir_fd, tmp)
            if isinstance(err, OSError):
                return False
            raise

    def unlink(self, dir_fd: int, name: str) -> None:
        """Delete ``name`` if it is one of ours (or our temporary file) and owned by us; links are not followed."""
        temp = _TEMP.fullmatch(name)
        if not self._ours(temp["name"] if temp else name):
            return
        with contextlib.suppress(OSError):
            if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid == os.geteuid():
                os.unlink(name, dir_fd=dir_fd)

    def sweep(self, dir_fd: int, stale: Callable[[str], bool]) -> None:
        """Delete our entries that ``stale`` rejects and temporary files whose writer is gone."""
        try:
            names = os.listdir(dir_fd)
        except OSError:
            return
        wall = time.time()
        for name in names:
            temp = _TEMP.fullmatch(name)
            if temp is not None:
                if self._ours(temp["name"]) and self._abandoned(dir_fd, name, int(temp["pid"]), wall):
                    self.unlink(dir_fd, name)
            elif self._ours(name) and stale(name):
                self.unlink(dir_fd, name)

    @staticmethod
    def _abandoned(dir_fd: int, name: str, pid: int, wall: float) -> bool:
        """A temporary file whose writer is gone (killed mid-write) or that is older than any write takes."""
        try:
            age = wall - os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime
        except OSError:
            return False
        if age > TEMP_GRACE_SECONDS or pid == 0:
            return True
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
