"""Stand-ins for provider registries: a rig registry answering under the provider's own hostname.

``serve_as("ghcr.io", ...)`` maps the name to a 127.0.0.x address in the run's private /etc/hosts
(``rig/isolate.py``), serves a TLS registry there (Bearer tokens from a rig token server, or
htpasswd Basic like ECR) with a certificate from the session CA, and waits until dockerd resolves
the name. The library then runs unchanged: provider inference from the host, the provider's
keychains, the temporary docker config keyed by host, the credential helper, the v2 client with
TLS verified against ``ca_file``.

What differs from the real service is said where it matters: docker treats 127.0.0.0/8 as an
insecure range, so the daemon does not verify these certificates (the Python client does), and
the token server is ours.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from rig import CertificateAuthority, DockerEngine, Registry, TokenServer, UserSpec, hosts_entries


@dataclass
class StandIn:
    """A registry serving under a provider hostname, and its token server when it uses Bearer auth."""

    registry: Registry
    token_server: TokenServer | None

    @property
    def host(self) -> str:
        return self.registry.host

    def stored_tags(self, repository: str) -> set[str]:
        """Tags the registry has on disk for ``repository``: an existence check independent of any auth code."""
        tags = self.registry.storage_dir / "docker/registry/v2/repositories" / repository / "_manifests/tags"
        return {p.name for p in tags.iterdir()} if tags.is_dir() else set()

    def logs(self) -> str:
        text = self.registry.log_path.read_text(errors="replace")
        if self.token_server is not None and self.token_server.log_path.exists():
            text += self.token_server.log_path.read_text(errors="replace")
        return text


def wait_until_daemon_resolves(engine: DockerEngine, reference_host: str, timeout: float = 20.0) -> None:
    """Block until dockerd resolves ``reference_host`` through /etc/hosts.

    Go's resolver in dockerd re-reads /etc/hosts at most every 5 s, so a name mapped a moment ago
    may still be unknown to it. A probe pull tells: any answer but a failed lookup means resolved.
    """
    deadline = time.monotonic() + timeout
    probe = f"{reference_host}/fpr-probe/probe:none"
    last = ""
    while time.monotonic() < deadline:
        result = engine.docker("pull", probe, check=False, timeout=60)
        last = (result.stderr or result.stdout).strip()
        # Inside isolate.py's network namespace a name missing from /etc/hosts fails with
        # "dial tcp: lookup <name> on <dns>: ... network is unreachable", not "no such host".
        if not any(text in last for text in ("no such host", "server misbehaving", "dial tcp: lookup ")):
            return
        time.sleep(0.25)
    raise AssertionError(f"dockerd still cannot resolve {reference_host} after {timeout:.0f}s: {last}")


@contextmanager
def serve_as(
    workdir: Path,
    engine: DockerEngine,
    ca: CertificateAuthority,
    *,
    hostname: str,
    ip: str,
    users: Mapping[str, str | UserSpec],
    port: int = 443,
    auth: str = "token",
    service: str | None = None,
    token_hostname: str | None = None,
    token_ip: str | None = None,
    token_port: int | None = None,
) -> Iterator[StandIn]:
    """Serve a TLS registry as ``hostname`` on ``ip:port`` (see the module docstring).

    ``auth="basic"`` uses htpasswd (ECR's scheme); ``"token"`` uses a rig token server whose realm
    is ``https://<token_hostname or hostname>[:token_port]/token`` with ``service``.
    """
    workdir = workdir / f"{hostname.replace(':', '_')}-{uuid.uuid4().hex[:6]}"
    entries = {hostname: ip}
    if token_hostname is not None:
        entries[token_hostname] = token_ip or ip
    with ExitStack() as stack:
        stack.enter_context(hosts_entries(entries))
        token_server = None
        if auth == "basic":
            passwords = {u: (s.password if isinstance(s, UserSpec) else s) for u, s in users.items()}
            registry = Registry.start_basic(
                workdir / "registry", passwords, host=ip, port=port, hostnames=[hostname], ca=ca
            )
        else:
            specs = {u: (s if isinstance(s, UserSpec) else UserSpec(s, ("pull", "push"))) for u, s in users.items()}
            token_server = TokenServer.start(
                workdir / "token-server",
                ca,
                specs,
                service=service or hostname,
                host=token_ip or ip,
                port=token_port,
                hostnames=[token_hostname or hostname],
            )
            stack.callback(token_server.stop)
            registry = Registry.start_token(
                workdir / "registry", token_server, ca, host=ip, port=port, hostnames=[hostname]
            )
        stack.callback(registry.stop)
        wait_until_daemon_resolves(engine, registry.host)
        yield StandIn(registry, token_server)


@pytest.fixture
def build_env(docker_engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """What a user's shell has when running pyflyte: a docker daemon, and a project dir with a file to copy.

    The inner builder is the library's docker-cli builder (flytekit's default needs buildx and
    the internet); it shells out to the docker CLI exactly as flytekit's default does.
    """
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    project = tmp_path / "project"
    project.mkdir()
    (project / "payload.txt").write_text(f"payload {uuid.uuid4()}\n")
    monkeypatch.chdir(project)
    ImageBuildEngine.build.cache_clear()
    yield project
    ImageBuildEngine.build.cache_clear()


def image_spec(registry: str, name: str | None = None) -> ImageSpec:
    """A small ImageSpec the docker-cli builder can build offline (FROM scratch + one copied file)."""
    return ImageSpec(name=name or f"app-{uuid.uuid4().hex[:8]}", registry=registry, copy=["payload.txt"])


def split_image(image: str) -> tuple[str, str]:
    """``host/repo:tag`` or the pinned ``host/repo:tag@sha256:...`` -> (repository, tag)."""
    from flyte_private_registry._reference import ImageReference

    ref = ImageReference.parse(image)
    return ref.repository, ref.tag or ref.reference
