"""Session fixtures backed by real services from ``tests/rig`` (dockerd, registries, token server).

Nothing is mocked and nothing is skipped: a missing system binary fails the run with the apt
package to install. Each fixture tears down what it started.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rig import (
    CertificateAuthority,
    DockerEngine,
    MissingBinaryError,
    Registry,
    TokenServer,
    UserSpec,
)
from rig.isolate import IsolationError, ensure_isolated


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Re-run this pytest in private namespaces (``rig/isolate.py``) when root and not there yet.

    The rig maps provider names in /etc/hosts and binds fixed loopback ports, so a plain
    ``pytest`` would break concurrent runs. Without root it goes on: the rig then refuses to
    touch /etc/hosts and says how to run.
    """
    if os.geteuid() != 0:
        return
    capture = config.pluginmanager.getplugin("capturemanager")

    def before_exec() -> None:
        if capture is not None:
            capture.suspend_global_capture(in_=True)
        print("conftest: re-running pytest in private mount/network namespaces (tests/rig/isolate.py)", file=sys.stderr)

    try:
        ensure_isolated(before_exec)
    except IsolationError as exc:
        print(f"conftest: not isolated ({exc}); tests that map hostnames will refuse to run", file=sys.stderr)


@dataclass(frozen=True)
class RegistryUsers:
    """Passwords of the rig's accounts (alice's is the canary that must never leak)."""

    alice_password: str
    bob_password: str
    reader_password: str

    @property
    def basic(self) -> dict[str, str]:
        """Users of ``basic_registry`` (htpasswd)."""
        return {"alice": self.alice_password, "bob": self.bob_password}

    @property
    def token(self) -> dict[str, UserSpec]:
        """Users of ``token_server``: alice may pull and push, reader may only pull."""
        return {
            "alice": UserSpec(self.alice_password, ("pull", "push")),
            "reader": UserSpec(self.reader_password, ("pull",)),
        }


def _fail_missing(exc: MissingBinaryError) -> NoReturn:
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rig_dir() -> Iterator[Path]:
    """A short directory under /tmp for the session (unix socket paths must stay < ~100 chars).

    Set RIG_KEEP=1 to keep it (logs, configs, registry storage) for debugging.
    """
    path = Path(tempfile.mkdtemp(prefix="rig-", dir="/tmp"))
    yield path
    if not os.environ.get("RIG_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def canary_password() -> str:
    """A unique secret; tests grep logs, configs and outputs to prove it never leaks."""
    return f"canary-{secrets.token_hex(8)}-pw"


@pytest.fixture(scope="session")
def registry_users(canary_password: str) -> RegistryUsers:
    """Passwords for alice (the canary), bob and reader."""
    return RegistryUsers(
        alice_password=canary_password,
        bob_password=f"bob-password-{secrets.token_hex(6)}",
        reader_password=f"reader-{secrets.token_hex(6)}",
    )


@pytest.fixture(scope="session")
def ca(rig_dir: Path) -> CertificateAuthority:
    """The session CA; pass ``verify=str(ca.ca_file)`` to Python clients talking to TLS services."""
    return CertificateAuthority(rig_dir / "ca")


@pytest.fixture(scope="session")
def docker_engine(rig_dir: Path) -> Iterator[DockerEngine]:
    """A private dockerd for the session (vfs, no network); ``.docker(...)`` runs the CLI on it."""
    try:
        engine = DockerEngine.start(rig_dir / "docker")
    except MissingBinaryError as exc:
        _fail_missing(exc)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: DockerEngine) -> str:
    """A runnable local image (static busybox, CMD /bin/sh) built without any registry."""
    try:
        return docker_engine.import_busybox("rig/busybox:latest")
    except MissingBinaryError as exc:
        _fail_missing(exc)


@pytest.fixture(scope="session")
def basic_registry(rig_dir: Path, registry_users: RegistryUsers) -> Iterator[Registry]:
    """Plain-HTTP registry with htpasswd users alice (canary password) and bob; ``.users`` has both."""
    try:
        registry = Registry.start_basic(rig_dir / "basic-registry", registry_users.basic)
    except MissingBinaryError as exc:
        _fail_missing(exc)
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def token_server(rig_dir: Path, ca: CertificateAuthority, registry_users: RegistryUsers) -> Iterator[TokenServer]:
    """HTTPS token issuer: alice (pull, push; canary password), reader (pull only)."""
    server = TokenServer.start(rig_dir / "token-server", ca, registry_users.token)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(rig_dir: Path, token_server: TokenServer, ca: CertificateAuthority) -> Iterator[Registry]:
    """TLS registry (cert from ``ca``) accepting Bearer tokens from ``token_server``."""
    try:
        registry = Registry.start_token(rig_dir / "token-registry", token_server, ca)
    except MissingBinaryError as exc:
        _fail_missing(exc)
    yield registry
    registry.stop()


@pytest.fixture
def user_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty docker config dir for this test, exported as DOCKER_CONFIG."""
    path = tmp_path / "docker-config"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


def _snapshot(directory: Path) -> dict[str, str]:
    if not directory.exists():
        return {}
    result = {"": "dir"}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            result[str(path.relative_to(directory))] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            result[str(path.relative_to(directory))] = "other"
    return result


@pytest.fixture(autouse=True)
def _guard_real_docker_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Never let a test touch the real ~/.docker.

    DOCKER_CONFIG points at a throwaway dir unless the test chooses one (``user_docker_config``
    does); HOME is left alone so other tools keep working. Code that ignores DOCKER_CONFIG and
    writes ~/.docker anyway fails the test.
    """
    real = Path.home() / ".docker"
    before = _snapshot(real)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path_factory.mktemp("guard-docker-config")))
    yield
    after = _snapshot(real)
    if after != before:
        pytest.fail(f"the test modified the real {real} (before: {sorted(before)}, after: {sorted(after)})")


@pytest.fixture(autouse=True)
def _private_token_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own ``$XDG_CACHE_HOME``: tokens cached on disk by one test never serve another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(autouse=True)
def _fresh_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no declared registries and no config file from the real home."""
    from flyte_private_registry._catalog import CATALOG

    monkeypatch.delenv("FLYTE_PRIVATE_REGISTRY_CONFIG", raising=False)
    monkeypatch.delenv("FLYTE_PRIVATE_REGISTRIES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", os.path.join(tempfile.gettempdir(), "fpr-no-xdg-config"))
    CATALOG.clear()
    yield
    CATALOG.clear()
