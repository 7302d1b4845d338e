"""Proves the integration rig itself: real dockerd, registries, token server, TLS, /etc/hosts.

These tests are deliberately strict (they fail if a service accepts what it should refuse), so
the library tests built on the rig can trust it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from provider_rig import wait_until_daemon_resolves
from rig import (
    CertificateAuthority,
    DockerEngine,
    LatencyProxy,
    Registry,
    TokenServer,
    UserSpec,
    free_port,
    hosts_entries,
    wait_for_port,
)
from rig.isolate import ETC_HOSTS, isolation_problem, outer_mount_namespace_fd

if TYPE_CHECKING:
    from conftest import RegistryUsers

pytestmark = pytest.mark.integration

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


# ---------------------------------------------------------------------------- helpers
def login(engine: DockerEngine, registry: Registry, user: str, password: str, check: bool = True) -> str:
    result = engine.docker("login", "--username", user, "--password-stdin", registry.host, input=password, check=check)
    return result.stdout + result.stderr if not check else result.stdout


def bearer_challenge(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def fetch_token(server: TokenServer, ca: CertificateAuthority, user: str, password: str, scope: str) -> str:
    response = httpx.get(
        server.realm,
        params={"service": server.service, "scope": scope},
        auth=(user, password),
        verify=ca.ssl_context(),
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def independent_kid(cert_pem: bytes) -> str:
    """libtrust key id computed here from the cert, not with the rig's helper."""
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


@pytest.fixture(scope="module")
def pushed_token_image(
    docker_engine: DockerEngine,
    token_registry: Registry,
    registry_users: RegistryUsers,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, str, str]:
    """(repository, tag, digest) of a small image alice pushed to the token registry."""
    config = tmp_path_factory.mktemp("seed-docker-config")
    repository, tag = "rig/seed", "v1"
    reference = token_registry.reference(repository, tag)
    docker_engine.build_scratch_image(reference, {"seed.txt": b"seed\n"})
    env = {"DOCKER_CONFIG": str(config)}
    docker_engine.docker(
        "login", "-u", "alice", "--password-stdin", token_registry.host,
        input=registry_users.alice_password, env=env,
    )  # fmt: skip
    docker_engine.docker("push", reference, env=env)
    digest = docker_engine.image_digest(reference)
    assert digest and digest.startswith("sha256:")
    return repository, tag, digest


# ---------------------------------------------------------------------------- ports
def test_free_port_is_bindable_and_wait_for_port_times_out() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        wait_for_port("127.0.0.1", port, timeout=2)
    with pytest.raises(TimeoutError, match=str(port)):
        wait_for_port("127.0.0.1", port, timeout=0.3)


# ---------------------------------------------------------------------------- latency proxy
def test_latency_proxy_delays_each_round_trip_and_keeps_the_bytes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with LatencyProxy.start(server.getsockname(), 0.02) as proxy:
            client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            peer, _ = server.accept()
            with client, peer:
                payload = os.urandom(200_000)
                started = time.monotonic()
                client.sendall(payload)
                received = b""
                while len(received) < len(payload):
                    received += peer.recv(1 << 16)
                peer.sendall(b"ok")
                assert client.recv(2) == b"ok"
                elapsed = time.monotonic() - started
            assert received == payload
            assert elapsed >= 0.04  # there and back, 20 ms each way
            assert proxy.connections == 1


def test_slow_connect_delays_only_the_named_ports(tmp_path: Path) -> None:
    """The child-process half of a far registry: a connect to the proxy's port waits the round trip."""
    with socket.socket() as slow, socket.socket() as fast:
        for listener in (slow, fast):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        probe = (
            "import socket, sys, time\n"
            "for port in map(int, sys.argv[1:]):\n"
            "    t = time.monotonic(); socket.create_connection(('127.0.0.1', port)).close()\n"
            "    print(round(time.monotonic() - t, 3))\n"
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).parent / "rig" / "slow_connect"),
            "RIG_CONNECT_DELAY": f"{slow.getsockname()[1]}@0.2",
        }
        out = subprocess.run(
            [sys.executable, "-c", probe, str(slow.getsockname()[1]), str(fast.getsockname()[1])],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    assert float(out[0]) >= 0.2
    assert float(out[1]) < 0.1


# ---------------------------------------------------------------------------- docker engine
def test_docker_engine_is_private_and_builds_images(
    docker_engine: DockerEngine, busybox_image: str, tmp_path: Path
) -> None:
    assert docker_engine.host.startswith("unix:///tmp/")
    assert docker_engine.env()["DOCKER_HOST"] == docker_engine.host
    assert docker_engine.env({"DOCKER_HOST": None}).get("DOCKER_HOST") is None

    out = docker_engine.docker("run", "--rm", "--network", "none", busybox_image, "sh", "-c", "echo $((6*7))")
    assert out.stdout.strip() == "42"

    tag = docker_engine.build_scratch_image("rig/scratch:files", {"hello.txt": b"hi\n", "a/b.bin": b"\x00\x01"})
    container = docker_engine.docker("create", tag, "/nothing").stdout.strip()
    try:
        docker_engine.docker("cp", f"{container}:/hello.txt", str(tmp_path / "hello.txt"))
        docker_engine.docker("cp", f"{container}:/a/b.bin", str(tmp_path / "b.bin"))
    finally:
        docker_engine.docker("rm", container)
    assert (tmp_path / "hello.txt").read_bytes() == b"hi\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"

    with pytest.raises(Exception, match="No such image"):
        docker_engine.docker("image", "inspect", "rig/does-not-exist:1")


# ---------------------------------------------------------------------------- basic registry
def test_basic_registry_docker_login_push_pull(
    docker_engine: DockerEngine,
    basic_registry: Registry,
    registry_users: RegistryUsers,
    busybox_image: str,
    user_docker_config: Path,
    canary_password: str,
) -> None:
    assert basic_registry.url == f"http://{basic_registry.host}"
    assert basic_registry.ca_file is None
    reference = basic_registry.reference("team/busybox", uuid.uuid4().hex[:8])
    docker_engine.docker("tag", busybox_image, reference)

    refused = docker_engine.docker("push", reference, check=False)
    assert refused.returncode != 0 and "no basic auth credentials" in refused.stderr

    bad = login(docker_engine, basic_registry, "alice", "wrong-password", check=False)
    assert "unauthorized" in bad.lower(), bad
    assert (
        not (user_docker_config / "config.json").exists()
        or basic_registry.host not in (user_docker_config / "config.json").read_text()
    )

    assert "Login Succeeded" in login(docker_engine, basic_registry, "alice", registry_users.alice_password)
    auths = json.loads((user_docker_config / "config.json").read_text())["auths"]
    stored = base64.b64decode(auths[basic_registry.host]["auth"]).decode()
    assert stored == f"alice:{canary_password}"

    docker_engine.docker("push", reference)
    docker_engine.docker("rmi", reference)
    docker_engine.docker("pull", reference)
    run = docker_engine.docker("run", "--rm", "--network", "none", reference, "echo", "pulled")
    assert run.stdout.strip() == "pulled"

    # bob is a second, independent htpasswd user
    login(docker_engine, basic_registry, "bob", registry_users.bob_password)
    docker_engine.docker("pull", reference)

    # the canary never appears in what the services log
    assert canary_password not in basic_registry.log_path.read_text()
    assert canary_password not in docker_engine.log_path.read_text()


# ---------------------------------------------------------------------------- token registry (docker)
def test_token_registry_docker_login_push_pull_and_reader_limits(
    docker_engine: DockerEngine,
    token_registry: Registry,
    token_server: TokenServer,
    registry_users: RegistryUsers,
    busybox_image: str,
    user_docker_config: Path,
    canary_password: str,
) -> None:
    # Docker trusts nothing about our CA: 127.0.0.0/8 is an insecure range, so the daemon speaks
    # TLS without verifying the registry's (or the token realm's) certificate.
    cidrs = docker_engine.docker("info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}").stdout
    assert "127.0.0.0/8" in json.loads(cidrs)

    repository = f"team/app-{uuid.uuid4().hex[:8]}"
    reference = token_registry.reference(repository, "v1")
    docker_engine.docker("tag", busybox_image, reference)

    bad = login(docker_engine, token_registry, "alice", "wrong-password", check=False)
    assert "unauthorized" in bad.lower() or "401" in bad, bad

    start = len(token_server.requests)
    login(docker_engine, token_registry, "alice", registry_users.alice_password)
    docker_engine.docker("push", reference)
    alice_grants = [r for r in token_server.requests[start:] if r.user == "alice" and r.status == 200]
    # dockerd asks for "push,pull" (in that order) and sends account=<user>
    assert any(
        {"type": "repository", "name": repository, "actions": ["push", "pull"]} in r.granted and r.account == "alice"
        for r in alice_grants
    ), alice_grants

    # reader: pull works, push is refused (token server grants a reduced scope with 200)
    docker_engine.docker("logout", token_registry.host)
    login(docker_engine, token_registry, "reader", registry_users.reader_password)
    docker_engine.docker("rmi", reference)
    docker_engine.docker("pull", reference)
    start = len(token_server.requests)
    docker_engine.docker("tag", busybox_image, token_registry.reference(repository, "by-reader"))
    pushed = docker_engine.docker("push", token_registry.reference(repository, "by-reader"), check=False)
    assert pushed.returncode != 0
    assert "denied" in pushed.stderr.lower() or "unauthorized" in pushed.stderr.lower(), pushed.stderr
    reader_requests = [r for r in token_server.requests[start:] if r.user == "reader"]
    assert reader_requests and all(r.status == 200 for r in reader_requests)
    assert any("push" in " ".join(r.scopes) for r in reader_requests)
    assert all("push" not in " ".join(r.granted_scopes) for r in reader_requests)

    # anonymous pulls are refused
    docker_engine.docker("logout", token_registry.host)
    docker_engine.docker("rmi", reference)
    anonymous = docker_engine.docker("pull", reference, check=False)
    assert anonymous.returncode != 0

    assert canary_password not in token_registry.log_path.read_text()
    assert canary_password not in token_server.log_path.read_text()
    assert canary_password not in docker_engine.log_path.read_text()


# ---------------------------------------------------------------------------- token registry (httpx)
def test_httpx_bearer_flow_and_manifest_head(
    token_registry: Registry,
    token_server: TokenServer,
    ca: CertificateAuthority,
    registry_users: RegistryUsers,
    pushed_token_image: tuple[str, str, str],
) -> None:
    repository, tag, digest = pushed_token_image
    verify = ssl.create_default_context(cafile=str(ca.ca_file))
    assert token_registry.ca_file == ca.ca_file
    assert token_registry.url.startswith("https://127.0.0.1:")

    # TLS is real: without our CA the handshake fails
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{token_registry.url}/v2/", verify=ssl.create_default_context())

    challenge = httpx.get(f"{token_registry.url}/v2/", verify=verify)
    assert challenge.status_code == 401
    params = bearer_challenge(challenge.headers["WWW-Authenticate"])
    assert params["realm"] == token_server.realm
    assert params["service"] == token_server.service

    with httpx.Client(verify=verify) as client:
        url = f"{token_registry.url}/v2/{repository}/manifests/{tag}"
        anonymous = client.head(url, headers={"Accept": MANIFEST_ACCEPT})
        assert anonymous.status_code == 401
        scope_hint = bearer_challenge(anonymous.headers["WWW-Authenticate"])["scope"]
        assert scope_hint == f"repository:{repository}:pull"

        token = fetch_token(token_server, ca, "alice", registry_users.alice_password, scope_hint)
        head = client.head(url, headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"})
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == digest
        assert head.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"

        missing = client.head(
            f"{token_registry.url}/v2/{repository}/manifests/nope",
            headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {token}"},
        )
        assert missing.status_code == 404

        # a token for another repository does not open this one
        other = fetch_token(token_server, ca, "alice", registry_users.alice_password, "repository:other:pull")
        wrong_scope = client.head(url, headers={"Accept": MANIFEST_ACCEPT, "Authorization": f"Bearer {other}"})
        assert wrong_scope.status_code == 401


def test_token_server_counts_requests(
    token_registry: Registry,
    token_server: TokenServer,
    ca: CertificateAuthority,
    registry_users: RegistryUsers,
    pushed_token_image: tuple[str, str, str],
) -> None:
    repository, tag, _ = pushed_token_image
    start = len(token_server.requests)
    token = fetch_token(token_server, ca, "reader", registry_users.reader_password, f"repository:{repository}:pull")
    with httpx.Client(verify=ca.ssl_context(), headers={"Authorization": f"Bearer {token}"}) as client:
        statuses = {
            client.head(
                f"{token_registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
            ).status_code
            for _ in range(100)
        }
    assert statuses == {200}
    new = token_server.requests[start:]
    assert len(new) == 1
    assert new[0].user == "reader"
    assert new[0].scopes == [f"repository:{repository}:pull"]
    assert new[0].granted_scopes == [f"repository:{repository}:pull"]
    assert token_server.requests_by("reader")[-1] is new[0]


def test_token_server_protocol(
    token_server: TokenServer, ca: CertificateAuthority, registry_users: RegistryUsers
) -> None:
    verify = ca.ssl_context()
    realm, service = token_server.realm, token_server.service
    scope = "repository:team/x:pull,push"

    wrong = httpx.get(realm, params={"service": service, "scope": scope}, auth=("alice", "nope"), verify=verify)
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "UNAUTHORIZED"

    missing = httpx.get(realm, params={"service": service, "scope": scope}, verify=verify)
    assert missing.status_code == 401

    anonymous = httpx.get(realm, params={"service": service}, verify=verify)
    assert anonymous.status_code == 200
    assert token_server.decode(anonymous.json()["token"])["access"] == []

    # reduced scope answered with 200, like real token servers; several scope params allowed
    reduced = httpx.get(
        realm,
        params=[
            ("service", service),
            ("scope", scope),
            ("scope", "repository:team/y:pull"),
            ("account", "reader"),
        ],
        auth=("reader", registry_users.reader_password),
        verify=verify,
    )
    assert reduced.status_code == 200
    body = reduced.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["issued_at"])
    claims = token_server.decode(body["token"])
    assert claims["access"] == [
        {"type": "repository", "name": "team/x", "actions": ["pull"]},
        {"type": "repository", "name": "team/y", "actions": ["pull"]},
    ]
    assert claims["sub"] == "reader" and claims["aud"] == service and claims["iss"] == token_server.issuer
    assert {"exp", "nbf", "iat", "jti"} <= claims.keys()
    assert token_server.requests[-1].account == "reader"

    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256"
    assert header["kid"] == independent_kid(token_server.root_cert_bundle.read_bytes())
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", header["kid"])
    cert = x509.load_pem_x509_certificate(token_server.root_cert_bundle.read_bytes())
    assert base64.b64decode(header["x5c"][0]) == cert.public_bytes(serialization.Encoding.DER)

    # OAuth2 password grant (what dockerd uses when it has a refresh token / forceOAuth)
    oauth = httpx.post(
        realm,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": registry_users.alice_password,
            "service": service,
            "scope": scope,
            "client_id": "rig-test",
        },
        verify=verify,
    )
    assert oauth.status_code == 200
    assert oauth.json()["scope"] == scope
    assert "refresh_token" not in oauth.json()
    bad_oauth = httpx.post(realm, data={"grant_type": "password", "username": "alice", "password": "x"}, verify=verify)
    assert bad_oauth.status_code == 401


def test_refresh_tokens_and_failure_injection(ca: CertificateAuthority, tmp_path: Path) -> None:
    users = {"robot": UserSpec("robot-pw", ("pull",), repositories=("team-a/",), refresh_token="rt-123")}
    with TokenServer.start(tmp_path / "ts", ca, users, expires_in=60) as server:
        verify = ca.ssl_context()
        login = httpx.get(
            server.realm,
            params={"service": server.service, "offline_token": "true", "client_id": "docker"},
            auth=("robot", "robot-pw"),
            verify=verify,
        )
        assert login.json()["refresh_token"] == "rt-123"
        assert login.json()["expires_in"] == 60
        refreshed = httpx.post(
            server.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": "rt-123",
                "service": server.service,
                "scope": "repository:team-a/app:pull,push repository:team-b/app:pull",
            },
            verify=verify,
        )
        assert refreshed.status_code == 200
        assert refreshed.json()["scope"] == "repository:team-a/app:pull"
        assert server.requests[-1].user == "robot" and server.requests[-1].grant_type == "refresh_token"
        bad = httpx.post(server.realm, data={"grant_type": "refresh_token", "refresh_token": "x"}, verify=verify)
        assert bad.status_code == 401

        server.fail_next(2, status=503)
        codes = [httpx.get(server.realm, params={"service": server.service}, verify=verify).status_code for _ in "abc"]
        assert codes == [503, 503, 200]


@pytest.mark.parametrize(("x5c", "kid"), [(False, True), (True, False)])
def test_registry_accepts_kid_or_x5c_and_rejects_foreign_signers(
    ca: CertificateAuthority, tmp_path: Path, x5c: bool, kid: bool
) -> None:
    users = {"alice": UserSpec("pw")}
    with (
        TokenServer.start(tmp_path / "ts", ca, users, include_x5c=x5c, include_kid=kid) as trusted,
        TokenServer.start(tmp_path / "foreign", ca, users) as foreign,
        Registry.start_token(tmp_path / "registry", trusted, ca) as registry,
    ):
        good = fetch_token(trusted, ca, "alice", "pw", "repository:a:pull")
        header = jwt.get_unverified_header(good)
        assert ("x5c" in header) is x5c and ("kid" in header) is kid
        evil = fetch_token(foreign, ca, "alice", "pw", "repository:a:pull")
        with httpx.Client(verify=ca.ssl_context()) as client:
            assert client.get(f"{registry.url}/v2/", headers={"Authorization": f"Bearer {good}"}).status_code == 200
            assert client.get(f"{registry.url}/v2/", headers={"Authorization": f"Bearer {evil}"}).status_code == 401
    assert registry.proc.poll() is not None


# ---------------------------------------------------------------------------- hosts
def test_hosts_entries_adds_and_removes_exactly_its_block(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    original = "127.0.0.1 localhost\n# keep me\n"
    hosts.write_text(original)
    with hosts_entries({"a.example": "127.0.0.5"}, path=hosts):
        with hosts_entries({"b.example": "127.0.0.6"}, path=hosts):
            text = hosts.read_text()
            assert "127.0.0.5\ta.example" in text and "127.0.0.6\tb.example" in text
        assert "b.example" not in hosts.read_text() and "a.example" in hosts.read_text()
    assert hosts.read_text() == original

    with pytest.raises(RuntimeError, match="boom"), hosts_entries({"c.example": "127.0.0.7"}, path=hosts):
        raise RuntimeError("boom")
    assert hosts.read_text() == original

    with pytest.raises(ValueError):
        hosts_entries({"bad name": "127.0.0.1"}, path=hosts).__enter__()
    assert hosts.read_text() == original


def run_outside(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in the mount namespace the run was launched from (the machine's, for ``./dev test``)."""
    fd = outer_mount_namespace_fd()
    if fd is None:
        pytest.fail("no handle on the launcher's mount namespace: run the tests with `./dev test`", pytrace=False)
    return subprocess.run(
        ["nsenter", f"--mount=/proc/self/fd/{fd}", "--", *args],
        pass_fds=(fd,), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# Calls the real hosts writer with the file writes stubbed out, so a broken guard cannot touch
# the machine's /etc/hosts even while this test proves the guard.
_HOSTS_WRITER_PROBE = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from rig import hosts
writes = []
hosts._rewrite = lambda path, edit: writes.append(str(path))
try:
    with hosts.hosts_entries({{"refusal-probe.example": "127.0.0.9"}}):
        pass
except PermissionError as exc:
    print("REFUSED:", exc)
print("WRITES:", writes)
"""


def test_run_is_isolated_with_a_private_hosts_file() -> None:
    assert isolation_problem() is None
    outside = run_outside("stat", "-L", "--format=%d:%i", "/proc/self/ns/mnt", str(ETC_HOSTS))
    assert outside.returncode == 0, outside.stderr
    outer_ns, outer_hosts = outside.stdout.split()
    own = Path("/proc/self/ns/mnt").stat()
    hosts = ETC_HOSTS.stat()
    assert outer_ns != f"{own.st_dev}:{own.st_ino}"
    assert outer_hosts != f"{hosts.st_dev}:{hosts.st_ino}"


@pytest.mark.parametrize("where", ["machine namespace", "unmarked process"])
def test_hosts_writer_refuses_outside_the_private_namespace(where: str) -> None:
    if where == "machine namespace":
        result = run_outside(sys.executable, "-c", _HOSTS_WRITER_PROBE)
    else:
        env = {k: v for k, v in os.environ.items() if k != "FPR_RIG_ISOLATION"}
        result = subprocess.run(
            [sys.executable, "-c", _HOSTS_WRITER_PROBE], env=env, capture_output=True, text=True, timeout=120
        )
    assert "REFUSED: refusing to edit the machine's /etc/hosts" in result.stdout, result.stdout + result.stderr
    assert "`./dev test`" in result.stdout
    assert "WRITES: []" in result.stdout


def test_killed_isolated_run_leaves_the_machines_hosts_untouched() -> None:
    """A run killed with SIGKILL mid-way: its hosts entry and private copy vanish with its namespace."""
    before = run_outside("cat", str(ETC_HOSTS))
    launcher = Path(__file__).resolve().parent / "rig" / "isolate.py"
    # The launcher ($PPID) and its command both die with SIGKILL, with the entry in place.
    script = "echo '127.0.0.9 killed-run.example' >> /etc/hosts && grep -q killed-run /etc/hosts && kill -9 $PPID $$"
    killed = run_outside(sys.executable, str(launcher), "sh", "-c", script)
    assert killed.returncode in (-9, 137), killed.stderr
    after = run_outside("cat", str(ETC_HOSTS))
    assert before.returncode == after.returncode == 0
    assert after.stdout == before.stdout and "killed-run.example" not in after.stdout
    assert not list(Path("/tmp").glob("fpr-isolated-*/hosts"))


@pytest.fixture
def ecr_like_registry(
    rig_dir: Path, token_server: TokenServer, ca: CertificateAuthority, docker_engine: DockerEngine
) -> Iterator[Registry]:
    """The token registry served as ECR's hostname on 127.0.0.42:443 via the run's private /etc/hosts."""
    with hosts_entries({ECR_HOST: "127.0.0.42"}):
        registry = Registry.start_token(
            rig_dir / f"ecr-{uuid.uuid4().hex[:6]}", token_server, ca, host="127.0.0.42", port=443,
            hostnames=[ECR_HOST],
        )  # fmt: skip
        try:
            wait_until_daemon_resolves(docker_engine, ECR_HOST)  # dockerd caches /etc/hosts for up to 5 s
            yield registry
        finally:
            registry.stop()
    assert ECR_HOST not in Path("/etc/hosts").read_text()


def test_registry_under_provider_hostname(
    ecr_like_registry: Registry,
    docker_engine: DockerEngine,
    busybox_image: str,
    registry_users: RegistryUsers,
    ca: CertificateAuthority,
    user_docker_config: Path,
) -> None:
    registry = ecr_like_registry
    assert registry.host == ECR_HOST
    assert registry.bind == "127.0.0.42:443"
    assert socket.gethostbyname(ECR_HOST) == "127.0.0.42"
    assert ECR_HOST in ETC_HOSTS.read_text()
    machine_hosts = run_outside("cat", str(ETC_HOSTS))
    assert machine_hosts.returncode == 0 and ECR_HOST not in machine_hosts.stdout  # the mapping is ours alone
    response = httpx.get(f"https://{ECR_HOST}/v2/", verify=ca.ssl_context())
    assert response.status_code == 401

    reference = registry.reference("rig/busybox", "ecr")
    docker_engine.docker("tag", busybox_image, reference)
    login(docker_engine, registry, "alice", registry_users.alice_password)
    docker_engine.docker("push", reference)
    auths = json.loads((user_docker_config / "config.json").read_text())["auths"]
    assert list(auths) == [ECR_HOST]


def test_docker_login_stores_identity_token_when_offered(
    docker_engine: DockerEngine,
    ca: CertificateAuthority,
    busybox_image: str,
    user_docker_config: Path,
    tmp_path: Path,
) -> None:
    """dockerd asks for offline tokens at login; a refresh token replaces the password on disk."""
    users = {"robot": UserSpec("robot-secret-pw", refresh_token="robot-refresh-token")}
    with (
        TokenServer.start(tmp_path / "ts", ca, users) as server,
        Registry.start_token(tmp_path / "registry", server, ca) as registry,
    ):
        login(docker_engine, registry, "robot", "robot-secret-pw")
        entry = json.loads((user_docker_config / "config.json").read_text())["auths"][registry.host]
        assert entry["identitytoken"] == "robot-refresh-token"
        assert "robot-secret-pw" not in (user_docker_config / "config.json").read_text()
        assert server.requests[0].offline and server.requests[0].method == "GET"

        reference = registry.reference("robot/app", "v1")
        docker_engine.docker("tag", busybox_image, reference)
        docker_engine.docker("push", reference)
        push_requests = [r for r in server.requests if r.scopes]
        assert push_requests and all(r.method == "POST" for r in push_requests)
        assert {r.grant_type for r in push_requests} == {"refresh_token"}
