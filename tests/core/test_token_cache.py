"""Bearer tokens cached across processes, and one token request for many repositories (real rig registries).

Counts come from the services themselves: the token server records every token request, and
the registry's access log every HEAD and ``GET /v2/``. Each check runs in a fresh Python process,
as ``pyflyte`` does; ``$XDG_CACHE_HOME`` is per test (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from helpers import push_oci_manifest
from pydantic import SecretStr
from rig import Registry, TokenServer, UserSpec

from flyte_private_registry import RegistryClient
from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution._token_cache import ENV_TOKEN_CACHE, token_cache_dir

pytestmark = pytest.mark.integration

_CHECK = textwrap.dedent(
    """
    import json, os, sys
    from pydantic import SecretStr
    from flyte_private_registry import RegistryClient
    from flyte_private_registry.credentials import Credential

    host, user, ca_file, images = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    credential = Credential(user, SecretStr(os.environ["CHECK_PASSWORD"]), source="env CHECK_PASSWORD")
    with RegistryClient(host, credential, ca_file=ca_file) as client:
        print(json.dumps([client.manifest_digest(repository, tag) for repository, tag in images]))
    """
)
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/\S*) HTTP/1\.1" (?P<status>\d{3})')


def _cred(user: str, password: str) -> Credential:
    return Credential(user, SecretStr(password), source="test")


class _Log:
    """The registry's access log from a point on: which v2 requests arrived."""

    def __init__(self, registry: Registry) -> None:
        self.path = registry.log_path
        self.offset = self.path.stat().st_size

    def requests(self, settle: float = 0.3) -> list[tuple[str, str, int]]:
        time.sleep(settle)  # the access log is written as each answer goes out
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode("utf-8", "replace")
        return [(m["method"], m["path"], int(m["status"])) for m in _ACCESS.finditer(text)]


def _check(registry: Registry, user: str, password: str, ca_file: Path, images: list[tuple[str, str]], **env: str):
    """Run one existence check of ``images`` in a fresh process; its digests."""
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, registry.host, user, str(ca_file), json.dumps(images)],
        env={**os.environ, "CHECK_PASSWORD": password, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert password not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def images(token_registry, registry_users, ca) -> list[tuple[str, str, str]]:
    """Three existing images in three repositories of the token registry: (repository, tag, digest)."""
    cred = _cred("alice", registry_users.alice_password)
    run = uuid.uuid4().hex[:8]
    out = []
    for index in range(3):
        repository, tag = f"cache-{run}/app{index}", "v1"
        out.append((repository, tag, push_oci_manifest(token_registry, cred, ca.ca_file, repository, tag)))
    return out


def _pairs(images: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(repository, tag) for repository, tag, _ in images]


def test_second_process_makes_no_token_request_and_one_head_per_image(
    token_registry, token_server, registry_users, ca, images
):
    password = registry_users.alice_password
    token_server.clear_requests()
    first = _check(token_registry, "alice", password, ca.ca_file, _pairs(images))
    assert first == [digest for _, _, digest in images]
    assert len(token_server.requests_by("alice")) == len(images)  # one pull token per repository

    token_server.clear_requests()
    log = _Log(token_registry)
    second = _check(token_registry, "alice", password, ca.ca_file, _pairs(images))
    assert second == first
    assert token_server.requests == []
    seen = log.requests()
    assert [(m, p) for m, p, _ in seen] == [("HEAD", f"/v2/{r}/manifests/{t}") for r, t in _pairs(images)]
    assert all(status == 200 for _, _, status in seen)

    # the cache file: 0600 in a 0700 directory, tokens but never the password
    directory = token_cache_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(directory.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert not any(password in f.read_text() for f in files)


def test_disabled_by_env_var(token_registry, token_server, registry_users, ca, images):
    pairs = _pairs(images)[:1]
    for _ in range(2):
        _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs, **{ENV_TOKEN_CACHE: "0"})
    assert not token_cache_dir().exists() or not any(token_cache_dir().iterdir())
    token_server.clear_requests()
    _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs, **{ENV_TOKEN_CACHE: "0"})
    assert len(token_server.requests_by("alice")) == 1


def test_another_credential_never_uses_the_cached_token(token_registry, token_server, registry_users, ca, images):
    pairs = _pairs(images)[:1]
    _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs)
    token_server.clear_requests()
    assert _check(token_registry, "reader", registry_users.reader_password, ca.ca_file, pairs) == [images[0][2]]
    assert [r.user for r in token_server.requests] == ["reader"]
    # a wrong password for the same user is another credential too: refused, not served from the cache
    token_server.clear_requests()
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, token_registry.host, "alice", str(ca.ca_file), json.dumps(pairs)],
        env={**os.environ, "CHECK_PASSWORD": "wrong-password"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "refused user 'alice'" in " ".join(done.stderr.split())
    assert token_server.requests and all(r.status == 401 for r in token_server.requests)


def test_a_cache_file_under_a_symlinked_directory_is_not_used(
    token_registry, token_server, registry_users, ca, images, tmp_path
):
    pairs = _pairs(images)[:1]
    _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs)
    real = token_cache_dir()
    moved = tmp_path / "elsewhere"
    real.rename(moved)
    real.symlink_to(moved, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in moved.iterdir()}
    token_server.clear_requests()
    log = _Log(token_registry)
    assert _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs) == [images[0][2]]
    assert len(token_server.requests_by("alice")) == 1  # the valid token behind the link was not used
    assert ("GET", "/v2/") in [(m, p) for m, p, _ in log.requests()]  # nor the remembered challenge
    assert {p.name: p.read_bytes() for p in moved.iterdir()} == before  # nothing written through the link


@pytest.mark.parametrize(
    "corruption",
    ["garbage", "truncated", "wrong-types", "readable-by-others", "huge", "directory"],
)
def test_a_corrupt_cache_file_is_a_miss_not_a_crash(
    token_registry, token_server, registry_users, ca, images, corruption
):
    pairs = _pairs(images)[:1]
    _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs)
    files = [p for p in token_cache_dir().iterdir() if p.suffix == ".json"]
    assert {p.name.split("-")[0] for p in files} == {"token", "endpoint"}
    for path in files:
        text = path.read_text()
        if corruption == "garbage":
            path.write_bytes(b"\x00\xff{not json")
        elif corruption == "truncated":
            path.write_text(text[: len(text) // 2])
        elif corruption == "wrong-types":
            path.write_text(json.dumps({"version": 1, "registry": ["x"], "tokens": {"a": 1}, "params": 3}))
        elif corruption == "readable-by-others":
            path.chmod(0o644)
        elif corruption == "huge":
            path.write_text(" " * (2 << 20) + text)
        elif corruption == "directory":
            path.unlink()
            path.mkdir()
    token_server.clear_requests()
    assert _check(token_registry, "alice", registry_users.alice_password, ca.ca_file, pairs) == [images[0][2]]
    assert len(token_server.requests_by("alice")) == 1


def test_expiry_is_honoured_across_processes(rig_dir, ca, tmp_path):
    """A 12 s token is used for 2 s (10 s margin); after that the next process asks again."""
    users = {"alice": UserSpec("short-lived-password", ("pull", "push"))}
    work = rig_dir / f"short-lived-{uuid.uuid4().hex[:6]}"
    with TokenServer.start(work / "token", ca, users, expires_in=12) as server:
        registry = Registry.start_token(work / "registry", server, ca)
        try:
            cred = _cred("alice", "short-lived-password")
            digest = push_oci_manifest(registry, cred, ca.ca_file, "team/short", "v1")
            pairs = [("team/short", "v1")]
            shutil.rmtree(token_cache_dir())  # the push's own token (pull,push) would serve the checks
            server.clear_requests()
            started = time.monotonic()
            assert _check(registry, "alice", "short-lived-password", ca.ca_file, pairs) == [digest]
            assert _check(registry, "alice", "short-lived-password", ca.ca_file, pairs) == [digest]
            if time.monotonic() - started < 2.0:  # the second process ran inside the token's usable life
                assert len(server.requests) == 1
            time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
            server.clear_requests()
            assert _check(registry, "alice", "short-lived-password", ca.ca_file, pairs) == [digest]
            assert len(server.requests) == 1
            stored = json.loads(next(token_cache_dir().glob("token-*.json")).read_text())
            assert all(entry["expires_at"] > time.time() for entry in stored["tokens"])  # the expired one is gone
        finally:
            registry.stop()


def test_many_repositories_one_token_request(token_registry, token_server, registry_users, ca, images):
    pairs = [*_pairs(images), *[(f"never/pushed{i}", "v1") for i in range(20)]]
    token_server.clear_requests()
    with RegistryClient(token_registry.host, _cred("alice", registry_users.alice_password), ca_file=ca.ca_file) as c:
        answers = c.check_many(pairs)
    assert [answers[p] for p in _pairs(images)] == [digest for _, _, digest in images]
    assert all(answers[p] is None for p in pairs[3:])
    requests = token_server.requests_by("alice")
    assert len(requests) == 1
    assert sorted(requests[0].scopes) == sorted(f"repository:{r}:pull" for r, _ in pairs)  # pull only: a check


def test_a_reduced_batch_grant_falls_back_to_one_request_for_the_rest(
    token_registry, token_server, registry_users, ca, images
):
    """``limited`` may read only ``cache-*`` repositories: the batch token covers those, the others ask alone."""
    token_server.users["limited"] = UserSpec("limited-password", ("pull",), repositories=("cache-",))
    try:
        pairs = [*_pairs(images), ("team/other", "v1")]
        with RegistryClient(token_registry.host, _cred("limited", "limited-password"), ca_file=ca.ca_file) as c:
            answers = c.check_many(pairs)
        assert [answers[p] for p in _pairs(images)] == [digest for _, _, digest in images]
        assert "does not allow" in str(answers[("team/other", "v1")])
        assert len(token_server.requests_by("limited")) == 2  # the batch, then team/other alone
    finally:
        del token_server.users["limited"]


_QUICK = textwrap.dedent(
    """
    import json, os, sys
    from pydantic import SecretStr
    from flyte_private_registry.credentials import Credential
    from flyte_private_registry.distribution._quick import UNKNOWN, QuickChecker

    host, user, ca_file, images = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    credential = Credential(user, SecretStr(os.environ["CHECK_PASSWORD"]), source="env CHECK_PASSWORD")
    checker = QuickChecker(host, credential, ca_file=ca_file)
    answers = [checker.manifest_digest(repository, tag) for repository, tag in images]
    print(json.dumps(["UNKNOWN" if a is UNKNOWN else a for a in answers] + ["httpx" in sys.modules]))
    """
)


def test_the_quick_path_answers_from_the_cache_without_httpx(token_registry, token_server, registry_users, ca, images):
    """What the builder does first: one stdlib HEAD per image with the remembered endpoint and token."""
    pairs = [*_pairs(images), ("never/pushed", "v1")]

    def quick() -> list:
        done = subprocess.run(
            [sys.executable, "-c", _QUICK, token_registry.host, "alice", str(ca.ca_file), json.dumps(pairs)],
            env={**os.environ, "CHECK_PASSWORD": registry_users.alice_password},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    # the full client remembers the endpoint and a token (a cold quick path: tests/core/test_quick.py) ...
    with RegistryClient(token_registry.host, _cred("alice", registry_users.alice_password), ca_file=ca.ca_file) as c:
        c.check_many(pairs)
    token_server.clear_requests()
    log = _Log(token_registry)
    assert quick() == [*(digest for _, _, digest in images), None, False]  # ... the quick path reads them
    assert token_server.requests == []
    assert [m for m, _, _ in log.requests()] == ["HEAD"] * 4
