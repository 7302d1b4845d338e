"""While ``pyflyte`` starts, the configured registries are reached ahead of the first check (push/_warm_up.py).

Real rig: the TLS + Bearer-token registry, whose log names the client port of every answered
request (so a check can be seen using a connection the warm-up opened), and the token server,
which counts token requests. The warm-up is started as the plugin starts it, with the argv of a
``pyflyte package``; the checks are the builder's stdlib checker, as in a real run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import forget_registry_cache, push_oci_manifest
from pydantic import SecretStr
from rig import Registry

from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution import _quick
from flyte_private_registry.distribution._quick import QuickChecker
from flyte_private_registry.push import _warm_up

PACKAGE = ["/venv/bin/pyflyte", "--pkgs", "wf", "package", "--force"]
# logrus text lines: the message, then the fields sorted by name (method, remoteaddr, uri)
_ANSWERED = re.compile(
    r'msg="response completed" .*?http\.request\.method=(?P<method>[A-Z]+) '
    r'http\.request\.remoteaddr="?(?P<peer>[^" ]+)"? http\.request\.uri="?(?P<uri>[^" ]+)"?'
)


@pytest.fixture(autouse=True)
def _no_warm_left() -> Iterator[None]:
    """The warm-ups are per process: each test starts and ends without one."""
    _quick._WARMED.clear()
    yield
    for warm in _quick._WARMED.values():
        for connection in [c for group in warm.connections.values() for c in group]:
            connection.close()
    _quick._WARMED.clear()


# -- when it runs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        PACKAGE,
        ["pyflyte", "register", "wf.py"],
        ["pyflyte", "serialize", "workflows", "-f", "out"],
        ["/x/pyflyte", "build", "wf.py", "wf"],
        ["pyflyte", "run", "--remote", "wf.py", "wf"],
        ["pyflyte", "-c", "cfg.yaml", "run", "-r", "wf.py", "wf"],
        ["/x/site-packages/flytekit/clis/sdk_in_container/pyflyte.py", "package"],
    ],
)
def test_a_pyflyte_command_that_builds_images_warms_up(argv: list[str]) -> None:
    assert _warm_up.wanted(argv, {})


@pytest.mark.parametrize(
    "argv",
    [
        ["pyflyte", "run", "wf.py", "wf"],  # a local run builds nothing
        ["pyflyte-execute", "--inputs", "s3://x", "--resolver", "r"],  # a task container
        ["pyflyte-fast-execute", "--additional-distribution", "x", "--", "pyflyte-execute"],
        ["/usr/bin/python3", "-m", "pytest"],
        ["ipykernel_launcher.py", "-f", "kernel.json"],
        ["pyflyte"],
        [],
    ],
)
def test_no_other_process_warms_up(argv: list[str]) -> None:
    assert not _warm_up.wanted(argv, {})


@pytest.mark.parametrize("value", ["0", "false", "off", "No"])
def test_the_env_var_turns_it_off(value: str) -> None:
    assert not _warm_up.wanted(PACKAGE, {_warm_up.ENV_WARM_UP: value})


def test_nothing_configured_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYTE_PRIVATE_REGISTRIES", raising=False)
    assert _warm_up.start(PACKAGE, {}) == []


def test_a_broken_config_is_left_for_the_builder_to_explain(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRIES", '[{"prefix": "registry.example.com/x", "insecure": "yes"}]')
    assert _warm_up.start(PACKAGE, {}) == []
    assert capfd.readouterr() == ("", "")


# -- what it does against a real registry ------------------------------------------------------------
class _Answers:
    """(method, client port, uri) of the registry's answered requests from now on."""

    def __init__(self, registry: Registry) -> None:
        self.path, self.offset = registry.log_path, registry.log_path.stat().st_size

    def read(self) -> list[tuple[str, str, str]]:
        time.sleep(0.3)  # the log is written as each answer goes out
        text = self.path.read_bytes()[self.offset :].decode("utf-8", "replace")
        return [(m["method"], m["peer"].rsplit(":", 1)[1], m["uri"]) for m in _ANSWERED.finditer(text)]


def _warm(registry: Registry, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> _quick._Warm:
    """Start the warm-up as the plugin does in ``pyflyte package``; return once every connection is open."""
    declared = [
        {"prefix": f"{registry.host}/team", "username": "alice", "password_env": "NOT_READ", "ca_file": str(ca_file)}
    ]
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRIES", json.dumps(declared))
    threads = _warm_up.start(PACKAGE, {})
    assert len(threads) == 1
    threads[0].join(10)
    (warm,) = _quick._WARMED.values()
    deadline = time.monotonic() + 10
    while any(warm.pending.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert warm.endpoint is not None and not any(warm.pending.values())
    return warm


def _ports(warm: _quick._Warm) -> set[str]:
    return {str(c.sock.getsockname()[1]) for group in warm.connections.values() for c in group if c.sock}


def _image(registry: Registry, password: str, ca_file: Path) -> tuple[str, str]:
    repository = f"team/warm-{uuid.uuid4().hex[:8]}"
    push_oci_manifest(registry, Credential("alice", SecretStr(password), source="test"), ca_file, repository, "v1")
    return repository, "v1"


@pytest.mark.integration
def test_the_first_check_uses_the_endpoint_and_a_connection_the_warm_up_made(
    token_registry, token_server, registry_users, ca, monkeypatch
):
    """A first run: the warm-up pings (no credential, no token) and connects; the check only logs in and asks."""
    password = registry_users.alice_password
    repository, tag = _image(token_registry, password, ca.ca_file)
    forget_registry_cache()
    token_server.clear_requests()
    answers = _Answers(token_registry)

    warm = _warm(token_registry, ca.ca_file, monkeypatch)
    assert token_server.requests == []  # nothing secret was sent: no login, no credential
    opened = _ports(warm)
    assert len(opened) == 5  # four to the registry, one to the token realm (another origin)
    before = answers.read()

    checker = QuickChecker(
        token_registry.host, Credential("alice", SecretStr(password), source="test"), ca_file=ca.ca_file
    )
    digest = checker.manifest_digest(repository, tag)
    assert isinstance(digest, str) and digest.startswith("sha256:")
    after = answers.read()[len(before) :]
    assert [(m, u) for m, _, u in after] == [("HEAD", f"/v2/{repository}/manifests/{tag}")]  # no ping of its own
    assert after[0][1] in opened, (after, opened)  # over a connection the warm-up had open
    assert len(token_server.requests) == 1  # the check's own login
    checker.close()


@pytest.mark.integration
def test_a_connection_kept_past_its_time_is_not_used(token_registry, registry_users, ca, monkeypatch):
    """Servers close idle connections: one older than WARM_SECONDS is closed, and the check opens its own."""
    password = registry_users.alice_password
    repository, tag = _image(token_registry, password, ca.ca_file)
    warm = _warm(token_registry, ca.ca_file, monkeypatch)
    opened = _ports(warm)
    monkeypatch.setattr(_quick, "WARM_SECONDS", 0.0)
    answers = _Answers(token_registry)

    checker = QuickChecker(
        token_registry.host, Credential("alice", SecretStr(password), source="test"), ca_file=ca.ca_file
    )
    assert isinstance(checker.manifest_digest(repository, tag), str)
    (head,) = [a for a in answers.read() if a[0] == "HEAD"]
    assert head[1] not in opened
    assert not _quick._WARMED  # and the stale warm-up was let go
    assert all(c.sock is None for group in warm.connections.values() for c in group)  # its connections closed
    checker.close()


@pytest.mark.integration
def test_an_unreachable_registry_is_silent_and_the_check_goes_on(monkeypatch, capfd, ca):
    """Nothing listens: the warm-up gives up without a word, and the check is the usual unanswered one."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again at once: nothing listens there
    declared = [{"prefix": f"127.0.0.1:{port}/team", "ca_file": str(ca.ca_file)}]
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRIES", json.dumps(declared))
    (thread,) = _warm_up.start(PACKAGE, {})
    thread.join(10)
    (warm,) = _quick._WARMED.values()
    assert warm.ready.is_set() and warm.endpoint is None and warm.connections == {}
    checker = QuickChecker(f"127.0.0.1:{port}", None, ca_file=ca.ca_file)
    assert checker.manifest_digest("team/x", "v1") is _quick.UNKNOWN  # the full client's turn, as without a warm-up
    assert capfd.readouterr() == ("", "")


@pytest.mark.integration
def test_importing_flytekit_elsewhere_reaches_no_registry(token_registry, ca, tmp_path):
    """A task container, a notebook, a test: ``import flytekit`` with registries configured sends nothing."""
    declared = [{"prefix": f"{token_registry.host}/team", "ca_file": str(ca.ca_file)}]
    answers = _Answers(token_registry)
    log_size = token_registry.log_path.stat().st_size
    script = "import threading, flytekit; print(sorted(t.name for t in threading.enumerate()))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "FLYTE_PRIVATE_REGISTRIES": json.dumps(declared)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warm-up" not in done.stdout
    assert answers.read() == [] and token_registry.log_path.stat().st_size == log_size
