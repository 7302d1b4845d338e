"""The stdlib quick path (distribution/_quick.py): first and later checks without httpx, on the real rig.

Counts come from the services themselves: the token server records every token request, the
registry's access log every ping, HEAD and GET. Checks run in fresh Python processes, as
``pyflyte`` does (``$XDG_CACHE_HOME`` is per test, tests/conftest.py). Whatever the quick path
does not judge must come back UNKNOWN, fast, and leave the full client's outcome as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import forget_registry_cache, push_oci_manifest
from pydantic import SecretStr
from rig import CertificateAuthority, FaultRegistry, LatencyProxy, Registry

from flyte_private_registry import FlytePrivateRegistryError, RegistryClient, RetryPolicy
from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution._auth import BLOB_JSON_CAP, Manifest
from flyte_private_registry.distribution._quick import UNKNOWN, QuickChecker

pytestmark = pytest.mark.integration

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/[^ ]*) HTTP/1\.1" (?P<status>\d{3})')

# What pyflyte does: a workflow module's tasks (flytekit knows every ImageSpec), then one check per spec.
_BUILDER = textwrap.dedent(
    """
    import json, os, sys
    import flytekit
    from flytekit import task
    from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec

    prefix, ca_file, names = sys.argv[1], sys.argv[2] or None, json.loads(sys.argv[3])
    specs = [ImageSpec(name=name, registry=prefix, tag_format="v1") for name in names]
    for i, spec in enumerate(specs):
        def fn(x: int) -> int:
            return x
        fn.__name__ = fn.__qualname__ = f"t{i}"
        task(container_image=spec)(fn)
    from flyte_private_registry import PrivateRegistry
    PrivateRegistry(prefix, username="alice", password_env="CHECK_PASSWORD", ca_file=ca_file)
    builder = ImageBuildEngine.get_registry()["private-registry"][0]
    built = [builder.should_build(spec) for spec in specs]
    images = [spec.image_name() for spec in specs]
    rules = "flyte_private_registry.distribution._auth" in sys.modules  # what only a first run needs
    print(json.dumps({"built": built, "images": images, "httpx": "httpx" in sys.modules, "rules": rules}))
    """
)
_QUICK = textwrap.dedent(
    """
    import json, os, sys
    from pydantic import SecretStr
    from flyte_private_registry.credentials import Credential
    from flyte_private_registry.distribution._quick import UNKNOWN, QuickChecker

    host, ca_file, images = sys.argv[1], sys.argv[2] or None, json.loads(sys.argv[3])
    credential = Credential("alice", SecretStr(os.environ["CHECK_PASSWORD"]), source="env CHECK_PASSWORD")
    checker = QuickChecker(host, credential, ca_file=ca_file)
    answers = [checker.manifest_digest(repository, tag) for repository, tag in images]
    print(json.dumps({"answers": ["UNKNOWN" if a is UNKNOWN else a for a in answers], "httpx": "httpx" in sys.modules}))
    """
)


def _cred(password: str) -> Credential:
    return Credential("alice", SecretStr(password), source="test")


def _run(where: Path, script: str, password: str, *args: str) -> dict[str, Any]:
    """Run ``script`` in a fresh process (from a file: flytekit reads a task's source); its JSON line."""
    probe = where / f"probe-{hashlib.sha256(script.encode()).hexdigest()[:8]}.py"
    probe.write_text(script)
    done = subprocess.run(
        [sys.executable, str(probe), *args],
        env={**os.environ, "CHECK_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert password not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


class _Log:
    """(method, path, status) of the registry's v2 requests from now on."""

    def __init__(self, registry: Registry) -> None:
        self.path, self.offset = registry.log_path, registry.log_path.stat().st_size

    def requests(self) -> list[tuple[str, str, int]]:
        time.sleep(0.3)  # the access log is written as each answer goes out
        text = self.path.read_bytes()[self.offset :].decode("utf-8", "replace")
        return [(m["method"], m["path"], int(m["status"])) for m in _ACCESS.finditer(text)]

    def count(self, method: str, kind: str) -> int:
        """``kind``: ``ping``, ``manifests`` or ``blobs``."""
        if kind == "ping":
            return sum(m == method and p == "/v2/" for m, p, _ in self.requests())
        return sum(m == method and f"/{kind}/" in p for m, p, _ in self.requests())


# -- cold and warm, through the builder ------------------------------------------------------------
def test_a_first_check_is_one_ping_one_token_one_get_per_image_without_httpx(
    token_registry, token_server, registry_users, ca, tmp_path
):
    """Three images, cold: one ping, one token (all three scopes), one GET each (the platform check reads it)."""
    password = registry_users.alice_password
    run = uuid.uuid4().hex[:8]
    names = [f"quick-{run}-{i}" for i in range(3)]
    digests = [push_oci_manifest(token_registry, _cred(password), ca.ca_file, f"team/{n}", "v1") for n in names]
    forget_registry_cache()
    prefix = f"{token_registry.host}/team"

    token_server.clear_requests()
    log = _Log(token_registry)
    cold = _run(tmp_path, _BUILDER, password, prefix, str(ca.ca_file), json.dumps(names))
    assert cold["built"] == [False] * 3
    assert cold["images"] == [f"{prefix}/{n}:v1@{d}" for n, d in zip(names, digests, strict=True)]
    assert cold["httpx"] is False and cold["rules"] is True
    tokens = token_server.requests_by("alice")
    assert len(tokens) == 1 and sorted(tokens[0].scopes) == sorted(f"repository:team/{n}:pull" for n in names)
    assert log.count("GET", "ping") == 1 and log.count("HEAD", "manifests") == 0
    assert [p for m, p, _ in log.requests() if m == "GET" and "/manifests/" in p] == [
        f"/v2/team/{n}/manifests/v1" for n in names
    ]
    assert log.count("GET", "blobs") == 1  # the (one, shared) digest's config blob, read once

    token_server.clear_requests()
    log = _Log(token_registry)
    warm = _run(tmp_path, _BUILDER, password, prefix, str(ca.ca_file), json.dumps(names))
    assert warm == {**cold, "rules": False}  # a warm HEAD loads neither httpx nor the challenge rules
    assert token_server.requests == []
    assert [(m, p) for m, p, _ in log.requests()] == [("HEAD", f"/v2/team/{n}/manifests/v1") for n in names]

    # what the quick path stored is what the full client reads: no ping, no token either
    token_server.clear_requests()
    log = _Log(token_registry)
    with RegistryClient(token_registry.host, _cred(password), ca_file=ca.ca_file) as client:
        assert client.manifest_digest(f"team/{names[0]}", "v1") == digests[0]
    assert token_server.requests == [] and [m for m, _, _ in log.requests()] == ["HEAD"]


def test_missing_images_cost_one_pull_and_one_push_token_request_per_registry(
    token_registry, token_server, registry_users, ca, tmp_path
):
    """Three missing images, cold: the checks share a pull-only token, the push proofs one pull+push token."""
    run = uuid.uuid4().hex[:8]
    names = [f"absent-{run}-{i}" for i in range(3)]
    forget_registry_cache()
    prefix = f"{token_registry.host}/team"

    token_server.clear_requests()
    log = _Log(token_registry)
    cold = _run(tmp_path, _BUILDER, registry_users.alice_password, prefix, str(ca.ca_file), json.dumps(names))
    assert cold["built"] == [True] * 3
    tokens = token_server.requests_by("alice")
    assert [sorted(t.scopes) for t in tokens] == [
        sorted(f"repository:team/{n}:pull" for n in names),  # the checks never ask for push
        sorted(f"repository:team/{n}:pull,push" for n in names),  # the first push proof, for all three
    ]
    assert all(t.status == 200 for t in tokens)
    # the first by the stdlib path; the push proof then brings in the full client, which HEADs
    assert [(m, s) for m, p, s in log.requests() if "/manifests/" in p] == [("GET", 404), ("HEAD", 404), ("HEAD", 404)]


def test_a_pull_only_user_gets_the_push_refusal_for_its_own_repository(
    token_registry, token_server, registry_users, ca, tmp_path
):
    """The batch push token is granted pull only: each repository asks alone, and the refusal names it."""
    names = [f"absent-{uuid.uuid4().hex[:8]}-{i}" for i in range(2)]
    forget_registry_cache()
    script = _BUILDER.replace('username="alice"', 'username="reader"').replace(
        "built = [builder.should_build(spec) for spec in specs]",
        "try:\n    builder.should_build(specs[0])\nexcept Exception as err:\n"
        "    print(json.dumps({'error': type(err).__name__, 'text': str(err)}))\n    raise SystemExit(0)",
    )
    token_server.clear_requests()
    refused = _run(
        tmp_path,
        script,
        registry_users.reader_password,
        f"{token_registry.host}/team",
        str(ca.ca_file),
        json.dumps(names),
    )
    assert refused["error"] == "AuthorizationError"
    assert f"team/{names[0]}" in refused["text"] and "granted only ['pull']" in refused["text"]
    scopes = [sorted(t.scopes) for t in token_server.requests_by("reader")]
    assert scopes[-2:] == [
        sorted(f"repository:team/{n}:pull,push" for n in names),
        [f"repository:team/{names[0]}:pull,push"],  # granted less than asked: asked again alone, then refused
    ]


def test_a_missing_image_is_a_404_without_httpx(token_registry, token_server, registry_users, ca, tmp_path):
    token_server.clear_requests()
    log = _Log(token_registry)
    repository = f"never-{uuid.uuid4().hex[:8]}/app"
    found = _run(
        tmp_path,
        _QUICK,
        registry_users.alice_password,
        token_registry.host,
        str(ca.ca_file),
        json.dumps([[repository, "v1"]]),
    )
    assert found == {"answers": [None], "httpx": False}
    assert len(token_server.requests_by("alice")) == 1
    assert [(m, s) for m, _, s in log.requests()] == [("GET", 401), ("HEAD", 404)]


def test_a_sibling_uses_the_token_its_parent_fetched_and_never_fetches_one(
    token_registry, token_server, registry_users, ca, monkeypatch
):
    """Checks made alongside (push/_lookahead.py) keep a run at one token request per registry."""
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE", "0")  # shared in memory, not read back from disk
    password = registry_users.alice_password
    repository = f"sibling-{uuid.uuid4().hex[:8]}/app"
    digest = push_oci_manifest(token_registry, _cred(password), ca.ca_file, repository, "v1")
    parent = QuickChecker(token_registry.host, _cred(password), ca_file=ca.ca_file)
    token_server.clear_requests()

    early = parent.sibling()
    assert early.manifest_digest(repository, "v1") is UNKNOWN  # no token yet: the caller's own check asks
    assert token_server.requests == []
    assert parent.ready(repository)
    assert len(token_server.requests_by("alice")) == 1
    late = parent.sibling()
    log = _Log(token_registry)
    assert late.manifest_digest(repository, "v1") == digest
    assert len(token_server.requests_by("alice")) == 1
    assert [(m, p) for m, p, _ in log.requests()] == [("HEAD", f"/v2/{repository}/manifests/v1")]
    for checker in (early, late, parent):
        checker.close()


def test_a_basic_registry_first_and_next_run(basic_registry, registry_users, tmp_path):
    """Plain HTTP on loopback (https refused first, as the full client tries it), htpasswd Basic auth."""
    password = registry_users.alice_password
    name = f"quick-basic-{uuid.uuid4().hex[:8]}"
    digest = push_oci_manifest(basic_registry, _cred(password), None, f"team/{name}", "v1")
    forget_registry_cache()
    prefix = f"{basic_registry.host}/team"

    log = _Log(basic_registry)
    cold = _run(tmp_path, _BUILDER, password, prefix, "", json.dumps([name]))
    assert cold == {"built": [False], "images": [f"{prefix}/{name}:v1@{digest}"], "httpx": False, "rules": True}
    assert [(m, s) for m, _, s in log.requests()] == [("GET", 401), ("GET", 200), ("GET", 200)]  # manifest, config

    log = _Log(basic_registry)
    assert _run(tmp_path, _BUILDER, password, prefix, "", json.dumps([name])) == {**cold, "rules": False}
    assert [(m, s) for m, _, s in log.requests()] == [("HEAD", 200)]


# -- every fault: UNKNOWN, fast, and the full client ends as it did without the quick path ----------
FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.5, deadline=3.0)
BUDGET = 1.5
DIGEST = "sha256:" + "ab" * 32
TOKEN = "tok-" + "7a" * 16
FAULT_CASES: list[tuple[str, dict[str, Any], object]] = [
    ("ok-basic", {"fault": "ok"}, DIGEST),
    ("ok-bearer", {"fault": "ok", "auth": "bearer"}, DIGEST),
    ("5xx", {"fault": "5xx-then-ok", "times": 1}, UNKNOWN),
    ("429", {"fault": "429-then-ok", "times": 1, "retry_after": "0"}, UNKNOWN),
    ("reset", {"fault": "reset", "times": 1}, UNKNOWN),
    ("503-forever", {"fault": "503-forever"}, UNKNOWN),
    ("reset-forever", {"fault": "reset-forever"}, UNKNOWN),
    ("drip", {"fault": "drip", "drip_interval": 0.5}, UNKNOWN),
    ("drip-token", {"fault": "drip-token", "auth": "bearer", "drip_interval": 0.5}, UNKNOWN),
    ("huge-401", {"fault": "huge"}, UNKNOWN),
    ("huge-token", {"fault": "huge", "auth": "bearer"}, UNKNOWN),
    ("bad-gzip-token", {"fault": "bad-gzip", "auth": "bearer"}, UNKNOWN),
    ("redirect-loop", {"fault": "redirect-loop"}, UNKNOWN),
    ("no-challenge", {"fault": "no-challenge"}, UNKNOWN),
    *[
        (f"challenge {c!r}", {"fault": "challenge", "challenge": c}, UNKNOWN)
        for c in ['Bearer realm="unterminated', "Bearer", 'Bearer realm="a",realm="b"', "Negotiate", "N a", "\x00\x01"]
    ],
    *[
        (f"realm {r!r}", {"fault": "challenge", "challenge": f'Bearer realm="{r}",service="x"'}, UNKNOWN)
        for r in ["http://[::1", "ftp://h/token", "/relative"]
    ],
    *[
        (f"token {b[:10]!r}", {"fault": "token-body", "auth": "bearer", "token_body": b}, UNKNOWN)
        for b in [b"[]", b"{}", b'{"token": 5}', b'{"token": ""}', b'{"token": "a b"}', b"[" * 100_000]
    ],
    (
        "odd expires_in",
        {"fault": "token-body", "auth": "bearer", "token_body": b'{"token":"%s","expires_in":"x"}'},
        DIGEST,
    ),
    ("echo-auth", {"fault": "echo-auth"}, UNKNOWN),
    ("echo-auth-bearer", {"fault": "echo-auth", "auth": "bearer"}, UNKNOWN),
    ("echo-bearer", {"fault": "echo-bearer", "auth": "bearer"}, UNKNOWN),
]


def _fault_registry(options: dict[str, Any], password: str, ca: CertificateAuthority | None = None) -> FaultRegistry:
    options = dict(options)
    if b"%s" in options.get("token_body", b""):
        options["token_body"] = options["token_body"].replace(b"%s", TOKEN.encode())
    return FaultRegistry("alice", password, token=TOKEN, ca=ca, **options)


def _full(reg: FaultRegistry, password: str, **client: Any) -> object:
    """What the builder's fallback answers: the full client's check, or the library error it raised."""
    try:
        with RegistryClient(reg.host, _cred(password), retry=FAST, timeout=1.5, **client) as full:
            return full.manifest_digest("team/app", "v1")
    except FlytePrivateRegistryError as err:
        return err


def _outcome(answer: object) -> tuple[str, Any]:
    if isinstance(answer, FlytePrivateRegistryError):
        return type(answer).__name__, getattr(answer, "status", None)
    return "answer", answer


@pytest.mark.parametrize(("options", "expected"), [c[1:] for c in FAULT_CASES], ids=[c[0] for c in FAULT_CASES])
def test_every_fault_is_unknown_to_the_quick_path_and_ends_as_before(options, expected, canary_password):
    with _fault_registry(options, canary_password) as alone:
        before = _full(alone, canary_password)
    with _fault_registry(options, canary_password) as reg:
        started = time.monotonic()
        quick = QuickChecker(reg.host, _cred(canary_password), timeout=BUDGET).manifest_digest("team/app", "v1")
        elapsed = time.monotonic() - started
        after = quick if quick is not UNKNOWN else _full(reg, canary_password)
    assert quick is expected or quick == expected, quick
    assert elapsed < BUDGET + 1.0, elapsed  # a dripping or huge answer cannot hold the builder
    assert _outcome(after) == _outcome(before)


_FAULTY = [c for c in FAULT_CASES if c[2] is UNKNOWN]


@pytest.mark.parametrize("options", [c[1] for c in _FAULTY], ids=[c[0] for c in _FAULTY])
def test_every_fault_is_unknown_to_a_first_check_by_get_too(options, canary_password):
    """A first check GETs the manifest instead of HEADing it: the same faults leave it to the full client, as fast."""
    with _fault_registry(options, canary_password) as reg:
        started = time.monotonic()
        checker = QuickChecker(reg.host, _cred(canary_password), timeout=BUDGET)
        answer = checker.manifest("team/app", "v1", check=True)
        elapsed = time.monotonic() - started
    assert answer is UNKNOWN
    assert elapsed < BUDGET + 1.0, elapsed


def test_credentials_never_go_to_an_http_realm_of_an_https_registry(canary_password, tmp_path):
    ca = CertificateAuthority(tmp_path / "ca")
    with _fault_registry({"fault": "http-realm", "auth": "bearer"}, canary_password, ca) as reg:
        checker = QuickChecker(reg.host, _cred(canary_password), ca_file=ca.ca_file, timeout=BUDGET)
        assert checker.manifest_digest("team/app", "v1") is UNKNOWN
        assert reg.requests(listener="plain") == []  # not even a connection with a header
        declared = QuickChecker(reg.host, _cred(canary_password), ca_file=ca.ca_file, insecure=True)
        assert declared.manifest_digest("team/app", "v1") == DIGEST  # the full client's rule: declared insecure
        assert len(reg.requests("/token", listener="plain")) == 1


def test_a_connection_opened_ahead_serves_the_next_check(token_registry, token_server, registry_users, ca, monkeypatch):
    """Helpers connect while the first check logs in (push/_lookahead.py), then check on that connection."""
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE", "0")
    password = registry_users.alice_password
    repository = f"ahead-{uuid.uuid4().hex[:8]}/app"
    digest = push_oci_manifest(token_registry, _cred(password), ca.ca_file, repository, "v1")
    with LatencyProxy.start(("127.0.0.1", token_registry.port), 0.0) as proxy:
        parent = QuickChecker(proxy.address, _cred(password), ca_file=ca.ca_file)
        assert parent.reach()  # GET /v2/, on the parent's connection
        helper = parent.sibling()
        seconds = helper.open()
        assert isinstance(seconds, float) and seconds >= 0
        assert helper.open() is None  # open already
        assert proxy.connections == 2
        assert parent.ready(repository)
        assert helper.manifest_digest(repository, "v1") == digest
        assert proxy.connections == 2  # no new connection for the check
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # left to httpx: nothing is opened here
        monkeypatch.setenv("NO_PROXY", "")
        assert parent.sibling().open() is None
        assert proxy.connections == 2
        for checker in (helper, parent):
            checker.close()


def test_after_the_token_expired_the_registry_connection_opens_while_the_token_is_fetched(ca, registry_users, tmp_path):
    """A run with the endpoint remembered pings nothing: the check's own connection must not wait for the login.

    The token server sits behind a LatencyProxy holding each chunk 0.25 s, so its request is in
    flight for over a second; the registry's proxy adds nothing and counts connections.
    """
    from rig import TokenServer

    from flyte_private_registry.distribution._token_cache import token_cache_dir

    password = registry_users.alice_password
    server = TokenServer.start(tmp_path / "token", ca, registry_users.token)
    token_port = int(server.url.rsplit(":", 1)[1])
    with LatencyProxy.start(("127.0.0.1", token_port), 0.25) as far_tokens:
        server.realm = f"https://{far_tokens.address}/token"
        registry = Registry.start_token(tmp_path / "registry", server, ca)
        try:
            repository = f"expired-{uuid.uuid4().hex[:8]}/app"
            digest = push_oci_manifest(registry, _cred(password), ca.ca_file, repository, "v1")
            with LatencyProxy.start(("127.0.0.1", registry.port), 0.0) as near:
                first = QuickChecker(near.address, _cred(password), ca_file=ca.ca_file)
                assert first.manifest_digest(repository, "v1") == digest  # remembers the endpoint and the token
                first.close()
                for token in token_cache_dir().glob("token-*.json"):
                    token.unlink()  # as if it expired
                server.clear_requests()
                opened = near.connections

                quick = QuickChecker(near.address, _cred(password), ca_file=ca.ca_file)
                answers: list[object] = []
                check = threading.Thread(target=lambda: answers.append(quick.manifest_digest(repository, "v1")))
                check.start()
                deadline = time.monotonic() + 20
                while not server.requests and time.monotonic() < deadline:
                    time.sleep(0.005)
                during_login = near.connections - opened  # the token's answer is still 0.25 s away
                check.join(30)
                quick.close()
                assert answers == [digest]
                assert len(server.requests_by("alice")) == 1
                assert during_login == 1
                assert near.connections - opened == 1  # and the check used that connection
        finally:
            registry.stop()
            server.stop()


def test_a_proxy_in_the_environment_is_left_to_httpx(canary_password, monkeypatch):
    with _fault_registry({"fault": "ok"}, canary_password) as reg:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.setenv("NO_PROXY", "")
        assert QuickChecker(reg.host, _cred(canary_password)).manifest_digest("team/app", "v1") is UNKNOWN
        assert reg.requests() == []
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert QuickChecker(reg.host, _cred(canary_password)).manifest_digest("team/app", "v1") == DIGEST


# -- the platform check's GETs: one redirect, credentials only for the registry ----------------------
CONFIG = b'{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}}'
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG_DIGEST, "size": 1},
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class _Stub:
    """A registry or object store that answers ``routes[path]`` verbatim and records who sent credentials."""

    def __init__(self, ca: CertificateAuthority | None) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}  # Content-Length "" sends none
        self.seen: list[tuple[str, str, bool]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                stub.seen.append((self.command, path, "Authorization" in self.headers))
                status, headers, body = stub.routes.get(path, (404, {}, b""))
                if path.startswith("/v2/") and self.headers.get("Authorization") != "Basic " + _basic():
                    status, headers, body = 401, {"WWW-Authenticate": 'Basic realm="stub"'}, b""
                self.send_response(status)
                headers = {"Content-Length": str(len(body)), **headers}
                if headers["Content-Length"] == "":  # no length: the body ends when the connection does
                    del headers["Content-Length"]
                    headers["Connection"] = "close"
                    self.close_connection = True
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if ca is not None:
            cert, key = ca.issue(["localhost"], ["127.0.0.1"])
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if ca is not None else "http"
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _basic() -> str:
    import base64

    return base64.b64encode(b"alice:stub-password").decode()


@pytest.fixture
def stubs(tmp_path):
    """``make(tls)``: stub servers, the TLS ones with certificates from one CA (``make.ca``)."""
    made: list[_Stub] = []
    ca = CertificateAuthority(tmp_path / "ca")

    def make(tls: bool) -> _Stub:
        made.append(_Stub(ca if tls else None))
        return made[-1]

    make.ca = ca
    yield make
    for stub in made:
        stub.close()


def _serve_image(registry: _Stub, blob_location: str) -> None:
    registry.routes[f"/v2/team/app/manifests/{MANIFEST_DIGEST}"] = (
        200,
        {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": MANIFEST_DIGEST},
        MANIFEST,
    )
    registry.routes[f"/v2/team/app/blobs/{CONFIG_DIGEST}"] = (307, {"Location": blob_location}, b"")


@pytest.mark.parametrize(
    ("registry_scheme", "storage_scheme", "storage_name", "storage_answer", "ok"),
    [
        ("https", "https", "127.0.0.1", (200, {}, CONFIG), True),
        ("http", "http", "127.0.0.1", (200, {}, CONFIG), True),  # an insecure loopback registry's own host
        ("https", "https", "127.0.0.1", (200, {}, CONFIG + b" "), False),  # not the content the digest names
        ("https", "https", "127.0.0.1", (302, {"Location": "/again"}, b""), False),  # a second redirect
        ("https", "https", "127.0.0.1", (200, {"Content-Length": str(5 << 20)}, b""), False),  # too big for a config
        ("https", "https", "127.0.0.1", (200, {"Content-Encoding": "gzip"}, CONFIG), False),
        ("https", "http", "127.0.0.1", (200, {}, CONFIG), False),  # plain http from an https registry
        ("http", "http", "localhost", (200, {}, CONFIG), False),  # plain http to another host name
    ],
)
def test_the_config_blob_follows_one_redirect_without_our_credentials(
    stubs, registry_scheme, storage_scheme, storage_name, storage_answer, ok
):
    registry, storage = stubs(registry_scheme == "https"), stubs(storage_scheme == "https")
    location = f"{storage_scheme}://{storage.host.replace('127.0.0.1', storage_name)}/bucket/blob?signature=s3cr3t"
    _serve_image(registry, location)
    storage.routes["/bucket/blob"] = storage_answer
    ca_file = stubs.ca.ca_file if registry_scheme == "https" else None
    checker = QuickChecker(registry.host, Credential("alice", SecretStr("stub-password"), source="t"), ca_file=ca_file)

    manifest = checker.manifest("team/app", MANIFEST_DIGEST)
    assert isinstance(manifest, Manifest) and not manifest.is_index
    assert manifest.document["config"]["digest"] == CONFIG_DIGEST
    config = checker.blob_json("team/app", CONFIG_DIGEST)
    assert config == json.loads(CONFIG) if ok else config is UNKNOWN
    assert [auth for method, path, auth in registry.seen if path != "/v2/"] == [True, True]  # manifest, blob
    assert all(not auth for _, _, auth in storage.seen)  # the registry's credentials stay with the registry
    followed = registry_scheme == storage_scheme and storage_name == "127.0.0.1"
    assert [p for _, p, _ in storage.seen] == (["/bucket/blob"] if followed else [])  # one hop at most


def test_a_manifest_that_does_not_hash_to_its_digest_is_unknown(stubs):
    registry = stubs(False)
    _serve_image(registry, "/unused")
    wrong = "sha256:" + "0" * 64
    registry.routes[f"/v2/team/app/manifests/{wrong}"] = registry.routes[f"/v2/team/app/manifests/{MANIFEST_DIGEST}"]
    checker = QuickChecker(registry.host, Credential("alice", SecretStr("stub-password"), source="test"))
    assert checker.manifest("team/app", wrong) is UNKNOWN
    assert isinstance(checker.manifest("team/app", MANIFEST_DIGEST), Manifest)


@pytest.mark.parametrize("length", ["", "declared"])
def test_a_blob_larger_than_any_config_is_unknown_however_it_is_sent(stubs, length):
    big = CONFIG[:-1] + b" " * (BLOB_JSON_CAP + 1) + b"}"  # valid JSON, and these are its bytes: only the size is wrong
    digest = "sha256:" + hashlib.sha256(big).hexdigest()
    registry = stubs(False)
    registry.routes[f"/v2/team/app/blobs/{digest}"] = (200, {"Content-Length": ""} if length == "" else {}, big)
    checker = QuickChecker(registry.host, Credential("alice", SecretStr("stub-password"), source="t"))
    assert checker.blob_json("team/app", digest) is UNKNOWN


_OCI = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, {**_OCI, "Docker-Content-Digest": MANIFEST_DIGEST}, MANIFEST), MANIFEST_DIGEST),
        ((404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'), None),
        ((200, _OCI, MANIFEST), UNKNOWN),  # no digest sent: the HEAD's rule
        ((200, {**_OCI, "Docker-Content-Digest": "sha256:" + "0" * 64}, MANIFEST), UNKNOWN),  # not this content
        ((200, {**_OCI, "Docker-Content-Digest": MANIFEST_DIGEST}, b"<html>"), UNKNOWN),
        ((500, {}, b"upstream unavailable"), UNKNOWN),
    ],
    ids=["found", "missing", "no-digest", "other-digest", "junk", "5xx"],
)
def test_a_first_check_by_get_answers_only_clean_cases(stubs, answer, expected):
    registry = stubs(False)
    registry.routes["/v2/team/app/manifests/v1"] = answer
    checker = QuickChecker(registry.host, Credential("alice", SecretStr("stub-password"), source="t"))
    found = checker.manifest("team/app", "v1", check=True)
    if isinstance(expected, str):
        assert isinstance(found, Manifest) and found.digest == expected
        assert found.document["config"]["digest"] == CONFIG_DIGEST
    else:
        assert found is expected
    if expected is None:  # a platform read of a digest the registry lacks stays the full client's to explain
        assert checker.manifest("team/app", "v1") is UNKNOWN
