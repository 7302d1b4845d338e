"""An HTTPS token issuer implementing the Docker registry token protocol (Bearer auth).

Private registries (GHCR, GitLab, Docker Hub, ECR's Docker API, Harbor...) answer 401 with a
``Bearer realm=...`` challenge; a client must trade credentials for a JWT at the realm. This
server does that for a local ``docker-registry`` configured with ``auth: token``, and records
every request so tests can assert how often (and with which scopes) a client fetched tokens.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from .ports import free_port, wait_for_port
from .tls import CertificateAuthority, SigningKey, make_signing_key

Access = dict[str, Any]


@dataclass(frozen=True)
class UserSpec:
    """A token-server account: password, allowed actions, optional repository-prefix limits.

    ``actions`` may contain ``"*"`` to grant anything asked for. ``repositories`` are name
    prefixes (``"team-a/"``); ``None`` means every repository. ``refresh_token`` is returned to
    clients asking for offline access (``docker login`` stores it as ``identitytoken``).
    """

    password: str
    actions: tuple[str, ...] = ("pull", "push")
    repositories: tuple[str, ...] | None = None
    refresh_token: str | None = None

    def allowed(self, resource_type: str, name: str, requested: Iterable[str]) -> list[str]:
        """The subset of ``requested`` this user may do on ``resource_type:name``."""
        if self.repositories is not None and not any(name.startswith(p) for p in self.repositories):
            return []
        if "*" in self.actions:
            return list(dict.fromkeys(requested))
        return [action for action in dict.fromkeys(requested) if action in self.actions]


@dataclass(frozen=True)
class TokenRequest:
    """One request seen by the token server, whatever its outcome (``status``)."""

    method: str
    user: str | None
    scopes: list[str]
    granted: list[Access]
    status: int
    grant_type: str | None = None
    service: str | None = None
    account: str | None = None
    offline: bool = False
    at: float = field(default_factory=time.time)

    @property
    def granted_scopes(self) -> list[str]:
        """Granted access in scope syntax (``repository:NAME:pull,push``), empty grants left out."""
        return [f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in self.granted if a["actions"]]


def parse_scopes(values: Iterable[str]) -> list[tuple[str, str, list[str]]]:
    """Parse ``type:name:actions`` scopes (several per value, space separated) merging duplicates.

    The name may itself contain ':' (e.g. a registry host with a port), so the type is the first
    field and the actions the last.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for scope in value.split():
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            key = (parts[0], ":".join(parts[1:-1]))
            actions = merged.setdefault(key, [])
            actions.extend(a for a in parts[-1].split(",") if a and a not in actions)
    return [(kind, name, actions) for (kind, name), actions in merged.items()]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    rig: TokenServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # TLS handshake failures (clients that do not trust our CA) are expected in tests.
        self.rig._log(f"error from {client_address}: connection dropped")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "rig-token-server/1"
    # TCP_NODELAY, as Go's net/http and nginx set by default: without it a TLS 1.3 answer waits
    # for the client's delayed ACK (~40 ms per token request), a stall real token servers lack.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only: never headers (Authorization) nor bodies (passwords).
        self.server.rig._log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "unknown path"}]})
            return
        query = parse_qs(url.query, keep_blank_values=True)
        status, body = self.server.rig._handle_get(query, self.headers.get("Authorization"))
        self._send(status, body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path != "/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "unknown path"}]})
            return
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        status, body = self.server.rig._handle_post(form)
        self._send(status, body)

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="rig-token-server"')
        self.end_headers()
        self.wfile.write(payload)


def _unauthorized(message: str) -> tuple[int, dict[str, Any]]:
    return 401, {
        "errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}],
        "error": "invalid_grant",
        "details": message,
    }


class TokenServer:
    """A running HTTPS token issuer; create it with :meth:`start`, always :meth:`stop` it."""

    def __init__(
        self,
        workdir: Path,
        users: Mapping[str, UserSpec],
        signing_key: SigningKey,
        *,
        service: str,
        issuer: str,
        expires_in: int,
        include_x5c: bool,
        include_kid: bool,
        allow_anonymous: bool,
    ) -> None:
        self.workdir = workdir
        self.users: dict[str, UserSpec] = dict(users)
        self.signing_key = signing_key
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.include_x5c = include_x5c
        self.include_kid = include_kid
        self.allow_anonymous = allow_anonymous
        self.requests: list[TokenRequest] = []
        self.log_path = workdir / "token-server.log"
        self._lock = threading.Lock()
        self._fail_next: list[int] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.realm = ""
        self.url = ""
        self.ca_file: Path | None = None
        self.bind = ""

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(
        cls,
        workdir: Path,
        ca: CertificateAuthority,
        users: Mapping[str, UserSpec],
        *,
        service: str = "rig-registry",
        issuer: str = "rig-token-issuer",
        host: str = "127.0.0.1",
        port: int | None = None,
        hostnames: list[str] | None = None,
        expires_in: int = 300,
        include_x5c: bool = True,
        include_kid: bool = True,
        allow_anonymous: bool = False,
        signing_key: SigningKey | None = None,
    ) -> TokenServer:
        """Start the issuer on ``host:port`` (a free port if None) with a CA-issued TLS cert.

        ``hostnames`` go into the cert and the first one into :attr:`realm` (map it in
        /etc/hosts). ``include_x5c``/``include_kid`` choose how the registry finds the signing
        key; ``allow_anonymous`` answers credential-less scoped requests with an empty grant
        (like Docker Hub) instead of 401.
        """
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        key = signing_key or make_signing_key(workdir / "signer", common_name=f"{issuer}-signer")
        server = cls(
            workdir,
            users,
            key,
            service=service,
            issuer=issuer,
            expires_in=expires_in,
            include_x5c=include_x5c,
            include_kid=include_kid,
            allow_anonymous=allow_anonymous,
        )
        server._serve(ca, host, port or free_port(host), list(hostnames or []))
        return server

    def _serve(self, ca: CertificateAuthority, host: str, port: int, hostnames: list[str]) -> None:
        cert_path, key_path = ca.issue(hostnames, [host])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        httpd = _Server((host, port), _Handler)
        httpd.rig = self
        # Handshake lazily in the request thread, so one stuck client cannot block accept().
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._server = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"token-server-{port}",
            daemon=True,
        )
        self._thread.start()
        wait_for_port(host, port, timeout=10)
        public_host = hostnames[0] if hostnames else host
        self.bind = f"{host}:{port}"
        self.url = f"https://{public_host}" + ("" if port == 443 else f":{port}")
        self.realm = f"{self.url}/token"
        self.ca_file = ca.ca_file

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test helpers
    @property
    def root_cert_bundle(self) -> Path:
        """PEM cert of the signing key: the registry's ``auth.token.rootcertbundle``."""
        return self.signing_key.cert_path

    def clear_requests(self) -> None:
        """Forget recorded requests (e.g. after a warm-up)."""
        with self._lock:
            self.requests.clear()

    def requests_by(self, user: str | None) -> list[TokenRequest]:
        """Recorded requests made as ``user`` (None: anonymous)."""
        with self._lock:
            return [r for r in self.requests if r.user == user]

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Make the next ``count`` token requests fail with ``status`` (to test client retries)."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def decode(self, token: str) -> dict[str, Any]:
        """Verify a token we issued (signature, audience, issuer) and return its claims."""
        return jwt.decode(
            token,
            self.signing_key.private_key.public_key(),
            algorithms=["ES256"],
            audience=self.service,
            issuer=self.issuer,
        )

    def issue_token(self, user: str | None, access: list[Access]) -> tuple[str, int, str]:
        """Sign a token for ``user`` granting ``access``; returns (jwt, expires_in, issued_at)."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        headers: dict[str, Any] = {}
        if self.include_kid:
            headers["kid"] = self.signing_key.kid
        if self.include_x5c:
            headers["x5c"] = self.signing_key.x5c
        token = jwt.encode(claims, self.signing_key.private_key, algorithm="ES256", headers=headers)
        issued_at = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return token, self.expires_in, issued_at

    # ------------------------------------------------------------------ protocol
    def _log(self, line: str) -> None:
        with self._lock, self.log_path.open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _pop_failure(self) -> int | None:
        with self._lock:
            return self._fail_next.pop(0) if self._fail_next else None

    def _grant(self, user: str | None, scopes: list[str]) -> list[Access]:
        spec = self.users.get(user) if user is not None else None
        access: list[Access] = []
        for kind, name, actions in parse_scopes(scopes):
            allowed = spec.allowed(kind, name, actions) if spec is not None else []
            access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def _check_password(self, user: str, password: str) -> bool:
        spec = self.users.get(user)
        return spec is not None and hmac.compare_digest(spec.password.encode(), password.encode())

    def _handle_get(self, query: dict[str, list[str]], authorization: str | None) -> tuple[int, dict[str, Any]]:
        scopes = query.get("scope", [])
        service = (query.get("service") or [None])[0]
        account = (query.get("account") or [None])[0]
        offline = (query.get("offline_token") or ["false"])[0].lower() == "true"
        failure = self._pop_failure()
        if failure is not None:
            self._record(TokenRequest("GET", None, scopes, [], failure, None, service, account, offline))
            return failure, {"errors": [{"code": "UNAVAILABLE", "message": "injected failure"}]}
        user: str | None = None
        if authorization:
            credentials = _parse_basic(authorization)
            if credentials is None or not self._check_password(*credentials):
                name = credentials[0] if credentials else None
                self._record(TokenRequest("GET", name, scopes, [], 401, None, service, account, offline))
                return _unauthorized("invalid username or password")
            user = credentials[0]
        elif scopes and not self.allow_anonymous:
            self._record(TokenRequest("GET", None, scopes, [], 401, None, service, account, offline))
            return _unauthorized("authentication required")
        access = self._grant(user, scopes)
        token, expires_in, issued_at = self.issue_token(user, access)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": issued_at,
        }
        refresh = self.users[user].refresh_token if user is not None else None
        if offline and refresh:
            body["refresh_token"] = refresh
        self._record(TokenRequest("GET", user, scopes, access, 200, None, service, account, offline))
        return 200, body

    def _handle_post(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def first(name: str) -> str | None:
            return (form.get(name) or [None])[0]

        grant_type = first("grant_type")
        scopes = form.get("scope", [])
        service = first("service")
        offline = first("access_type") == "offline"
        failure = self._pop_failure()
        if failure is not None:
            self._record(TokenRequest("POST", None, scopes, [], failure, grant_type, service, None, offline))
            return failure, {"error": "temporarily_unavailable"}
        user: str | None
        if grant_type == "password":
            user, password = first("username"), first("password") or ""
            if user is None or not self._check_password(user, password):
                self._record(TokenRequest("POST", user, scopes, [], 401, grant_type, service, None, offline))
                return _unauthorized("invalid username or password")
        elif grant_type == "refresh_token":
            presented = first("refresh_token") or ""
            user = next(
                (
                    name
                    for name, spec in self.users.items()
                    if spec.refresh_token and hmac.compare_digest(spec.refresh_token.encode(), presented.encode())
                ),
                None,
            )
            if user is None:
                self._record(TokenRequest("POST", None, scopes, [], 401, grant_type, service, None, offline))
                return _unauthorized("invalid refresh token")
        else:
            self._record(TokenRequest("POST", None, scopes, [], 400, grant_type, service, None, offline))
            return 400, {"error": "unsupported_grant_type"}
        access = self._grant(user, scopes)
        token, expires_in, issued_at = self.issue_token(user, access)
        granted = TokenRequest("POST", user, scopes, access, 200, grant_type, service, None, offline)
        body: dict[str, Any] = {
            "access_token": token,
            "token": token,
            "expires_in": expires_in,
            "issued_at": issued_at,
            "scope": " ".join(granted.granted_scopes),
        }
        refresh = self.users[user].refresh_token
        if offline and refresh:
            body["refresh_token"] = refresh
        self._record(granted)
        return 200, body


def _parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
