"""The platform cache's directory: private entries, and a daily sweep so it does not grow with every tag checked.

No registry needed: entries are written through the module's own API, ages set with ``os.utime``.
``$XDG_CACHE_HOME`` is per test (tests/conftest.py).
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from flyte_private_registry._platform import Platform
from flyte_private_registry.distribution._private_dir import user_cache_dir
from flyte_private_registry.push import _platform_cache as cache

DAY = 86400.0
AMD64 = [Platform.parse("linux/amd64")]


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def _entry(digest: str) -> Path:
    return user_cache_dir("platforms") / f"{digest.replace(':', '-', 1)}.json"


def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


@pytest.fixture(autouse=True)
def _new_process():
    cache.forget()
    yield
    cache.forget()


def test_entries_are_private_and_answer_a_new_process():
    cache.keep(_digest(1), AMD64)
    cache.remember_digest("registry.example:5000", "team/app", "v1", _digest(1))
    cache.forget()
    assert cache.platforms(_digest(1)) == tuple(AMD64)
    assert cache.known_digest("registry.example:5000", "team/app", "v1") == _digest(1)
    assert cache.known_digest("registry.example:5000", "team/app", "v2") is None
    for entry in user_cache_dir("platforms").iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry
        assert "team" not in entry.name and "registry" not in entry.name


def test_a_checked_tag_is_one_file_holding_its_digest_and_platforms():
    cache.keep(_digest(1), AMD64, disk=False)  # learnt from the tag's own GET
    cache.remember_digest("registry.example:5000", "team/app", "v1", _digest(1))
    assert [entry.name[:4] for entry in user_cache_dir("platforms").iterdir() if entry.name != "swept"] == ["tag-"]

    cache.forget()
    assert cache.known_digest("registry.example:5000", "team/app", "v1") == _digest(1)
    assert cache.platforms(_digest(1)) == tuple(AMD64)  # from the tag's file: no other read


def test_a_process_reads_a_tag_entry_once():
    cache.keep(_digest(1), AMD64, disk=False)
    cache.remember_digest("registry.example:5000", "team/app", "v1", _digest(1))
    cache.forget()
    assert cache.known_digest("registry.example:5000", "team/app", "v1") == _digest(1)
    assert cache.known_digest("registry.example:5000", "team/app", "v2") is None
    for entry in user_cache_dir("platforms").iterdir():
        entry.unlink()
    assert cache.known_digest("registry.example:5000", "team/app", "v1") == _digest(1)  # the predicted check's read
    cache.forget()
    assert cache.known_digest("registry.example:5000", "team/app", "v1") is None


def test_a_write_removes_entries_a_month_old_once_a_day():
    cache.keep(_digest(1), AMD64)
    cache.keep(_digest(2), AMD64)
    _age(_entry(_digest(1)), 31)
    _age(_entry(_digest(2)), 29)
    stranger = user_cache_dir("platforms") / "notes.txt"  # not a name of ours: never touched
    stranger.write_text("mine")
    _age(stranger, 400)
    swept = user_cache_dir("platforms") / "swept"
    swept.unlink()  # the first write above swept an empty directory: as if that was long ago

    cache.forget()
    cache.keep(_digest(3), AMD64)  # a new process's first write sweeps
    assert not _entry(_digest(1)).exists()
    assert _entry(_digest(2)).exists() and _entry(_digest(3)).exists() and stranger.exists()
    assert swept.exists() and stat.S_IMODE(swept.stat().st_mode) == 0o600

    cache.keep(_digest(4), AMD64)
    _age(_entry(_digest(4)), 40)
    cache.forget()
    cache.keep(_digest(5), AMD64)  # swept less than a day ago: left
    assert _entry(_digest(4)).exists()

    _age(swept, 1.5)
    cache.forget()
    cache.keep(_digest(6), AMD64)
    assert not _entry(_digest(4)).exists() and _entry(_digest(2)).exists()


def test_reads_never_sweep():
    cache.keep(_digest(1), AMD64)
    _age(_entry(_digest(1)), 31)
    (user_cache_dir("platforms") / "swept").unlink()
    cache.forget()
    assert cache.platforms(_digest(1)) == tuple(AMD64)  # a warm run reads, and writes nothing
    assert _entry(_digest(1)).exists()


def test_the_switch_keeps_everything_in_memory(monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE", "0")
    cache.keep(_digest(1), AMD64)
    assert cache.platforms(_digest(1)) == tuple(AMD64)
    assert not user_cache_dir("platforms").exists()
    cache.forget()
    assert cache.platforms(_digest(1)) is None
