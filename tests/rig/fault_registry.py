"""A registry that misbehaves on purpose: real HTTP(S), one fault at a time, every request counted.

It speaks just enough of the distribution API (``/v2/``, manifest HEAD, a Bearer token endpoint
or Basic auth) to let a client log in and check a tag, and then answers whatever a broken
registry, proxy or token service can: 5xx/429 bursts, resets, a body dripped a byte a second,
300 MiB bodies (streamed from one reused buffer, never built in memory), bad gzip, redirect
loops, 401 without a challenge, malformed challenges and realms, odd token JSON, and error
bodies that echo the ``Authorization`` header back. Tests count requests server-side.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .tls import CertificateAuthority

#: Every fault the server can play; ``ok`` is a well-behaved registry.
FAULTS = (
    "ok",
    "5xx-then-ok",  # the first `times` manifest HEADs answer 503 (or `status`), then success
    "429-then-ok",  # the first `times` manifest HEADs answer 429 with Retry-After: `retry_after`
    "503-forever",  # every request answers 503
    "reset",  # the first `times` manifest HEADs get a TCP reset instead of an answer
    "reset-forever",
    "drip",  # every answer dribbles out one byte per `drip_interval`, status line included
    "drip-token",  # token answers send headers, then dribble the body
    "huge",  # /v2/ and token answers carry a 300 MiB body
    "bad-gzip",  # bodies claim Content-Encoding: gzip and are not gzip
    "redirect-loop",  # /v2/ redirects to itself, forever
    "no-challenge",  # 401 without WWW-Authenticate
    "challenge",  # 401 with `challenge` as the WWW-Authenticate header, verbatim
    "http-realm",  # (TLS) the Bearer realm is the plain-http twin listener
    "token-body",  # the token endpoint answers `token_body` verbatim (200, application/json)
    "echo-auth",  # every refusal echoes the Authorization header in its body and challenge
    "echo-bearer",  # tokens are issued, then the registry refuses them, echoing the Bearer header
)
HUGE_BYTES = 300 * 1024 * 1024
_CHUNK = b"\0" * (1024 * 1024)
DIGEST = "sha256:" + "ab" * 32


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it (``auth`` is the scheme only, never the secret)."""

    method: str
    path: str
    auth: str
    listener: str  # "main" or "plain" (the http twin of a TLS registry)


@dataclass
class FaultConfig:
    fault: str = "ok"
    auth: str = "basic"  # "basic" | "bearer" | "none"
    times: int = 2
    status: int = 503
    retry_after: str = "1"
    drip_interval: float = 1.0
    challenge: str = ""
    token_body: bytes = b""
    tags: dict[str, str] = field(default_factory=lambda: {"v1": DIGEST})


class FaultRegistry:
    """``with FaultRegistry(user, password, fault=...) as reg:`` then talk to ``reg.host``.

    With ``ca`` the registry speaks TLS (certificate for 127.0.0.1) and a plain-HTTP twin listens
    on ``plain_port`` (the ``http-realm`` fault points its realm there, to catch leaked logins).
    """

    def __init__(
        self,
        username: str = "alice",
        password: str = "secret",
        *,
        ca: CertificateAuthority | None = None,
        token: str | None = None,
        **config: Any,
    ) -> None:
        self.username, self.password = username, password
        self.config = FaultConfig(**config)
        if self.config.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.config.fault!r}; one of {FAULTS}")
        self.token = token or "tok-" + secrets.token_hex(16)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self._tls = ca is not None
        self.main = self._serve("main", ca)
        self.plain = self._serve("plain", None) if ca is not None else None
        self.port = self.main.server_address[1]
        self.plain_port = self.plain.server_address[1] if self.plain else None

    # -- lifecycle ------------------------------------------------------------------------
    def _serve(self, listener: str, ca: CertificateAuthority | None) -> ThreadingHTTPServer:
        registry = self

        class Handler(_Handler):
            owner = registry
            name = listener

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if ca is not None:
            cert, key = ca.issue(["localhost"], ["127.0.0.1"])
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, name=f"fault-registry-{listener}", daemon=True).start()
        self._servers.append(server)
        return server

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FaultRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    def requests(self, path_prefix: str = "", listener: str | None = None) -> list[Seen]:
        with self._lock:
            return [
                s for s in self.seen if s.path.startswith(path_prefix) and (listener is None or s.listener == listener)
            ]

    def manifest_requests(self) -> list[Seen]:
        return [s for s in self.requests("/v2/") if "/manifests/" in s.path]

    def _count(self, key: str) -> int:
        """How many times ``key`` was seen before this one (0 for the first)."""
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            return n

    # -- auth -----------------------------------------------------------------------------
    def basic_ok(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return hmac.compare_digest(header.encode(), f"Basic {expected}".encode())

    def bearer_ok(self, header: str) -> bool:
        return hmac.compare_digest(header.encode(), f"Bearer {self.token}".encode())

    def realm(self) -> str:
        if self.config.fault == "http-realm":
            return f"http://127.0.0.1:{self.plain_port}/token"
        return f"{self.scheme}://127.0.0.1:{self.port}/token"

    def challenge(self) -> str | None:
        config = self.config
        if config.fault == "no-challenge":
            return None
        if config.fault == "challenge":
            return config.challenge
        if config.auth == "basic":
            return 'Basic realm="fault-registry"'
        return f'Bearer realm="{self.realm()}",service="fault-registry"'


class _Handler(BaseHTTPRequestHandler):
    owner: FaultRegistry
    name: str
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------
    def _answer(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        fault = self.owner.config.fault
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('?',))[0]}"]
        headers = dict(headers or {})
        if fault == "bad-gzip" and body:
            headers["Content-Encoding"] = "gzip"
            body = b"\x1f\x8bthis is not gzip at all" + body[:16]
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Docker-Distribution-API-Version", "registry/2.0")
        head += [f"{k}: {v}" for k, v in headers.items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if self.command == "HEAD" else body)
        if fault == "drip":
            self._drip(raw)
        else:
            self.wfile.write(raw)
            self.wfile.flush()

    def _drip(self, raw: bytes) -> None:
        try:
            for i in range(len(raw)):
                self.wfile.write(raw[i : i + 1])
                self.wfile.flush()
                time.sleep(self.owner.config.drip_interval)
        except OSError:
            pass
        self.close_connection = True

    def _huge(self, status: int, headers: dict[str, str]) -> None:
        """300 MiB, one reused 1 MiB buffer at a time, until done or the client hangs up."""
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {HUGE_BYTES}"] + [f"{k}: {v}" for k, v in headers.items()]
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            while sent < HUGE_BYTES:
                self.wfile.write(_CHUNK)
                sent += len(_CHUNK)
        except OSError:
            pass
        self.close_connection = True

    def _reset(self) -> None:
        """RST instead of an answer: SO_LINGER 0 then close."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _refuse(self) -> None:
        owner, config = self.owner, self.owner.config
        headers: dict[str, str] = {"Content-Type": "application/json"}
        challenge = owner.challenge()
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        if config.fault in ("echo-auth", "echo-bearer"):
            said = self.headers.get("Authorization", "")
            body = {"errors": [{"code": "UNAUTHORIZED", "message": f"rejected header: {said}"}]}
            if challenge is not None:
                challenge += f',error="invalid_token",error_description="rejected {said}"'
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
        if config.fault == "huge":
            self._huge(401, headers)
            return
        self._answer(401, headers, json.dumps(body).encode())

    # -- routes ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._route()

    def _route(self) -> None:
        owner, config = self.owner, self.owner.config
        path = urlsplit(self.path).path
        header = self.headers.get("Authorization", "")
        with owner._lock:
            owner.seen.append(Seen(self.command, path, header.split(" ")[0], self.name))
        fault = config.fault
        if fault == "503-forever":
            self._answer(503, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNAVAILABLE"}]}')
            return
        if fault == "reset-forever":
            self._reset()
            return
        if path == "/token":
            self._token(header)
            return
        if path in ("/v2/", "/v2") and fault == "redirect-loop":
            self._answer(302, {"Location": "/v2/"})
            return
        authorized = (
            config.auth == "none"
            or (config.auth == "basic" and owner.basic_ok(header))
            or (config.auth == "bearer" and owner.bearer_ok(header))
        )
        if fault in ("no-challenge", "challenge"):
            authorized = False
        if (fault == "echo-auth" and header) or (fault == "echo-bearer" and header.startswith("Bearer")):
            authorized = False
        if not authorized:
            self._refuse()
            return
        if path in ("/v2/", "/v2"):
            if fault == "huge":
                self._huge(200, {"Content-Type": "application/json"})
                return
            self._answer(200, {"Content-Type": "application/json"}, b"{}")
            return
        if "/manifests/" in path:
            n = owner._count("manifest")
            if fault == "5xx-then-ok" and n < config.times:
                self._answer(config.status, {"Content-Type": "text/plain"}, b"upstream unavailable")
                return
            if fault == "429-then-ok" and n < config.times:
                self._answer(429, {"Retry-After": config.retry_after}, b"slow down")
                return
            if fault == "reset" and n < config.times:
                self._reset()
                return
            tag = path.rsplit("/", 1)[-1]
            digest = config.tags.get(tag)
            if digest is None:
                self._answer(404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                return
            mediatype = "application/vnd.oci.image.index.v1+json"
            self._answer(200, {"Docker-Content-Digest": digest, "Content-Type": mediatype}, b"")
            return
        self._answer(404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NOT_FOUND"}]}')

    def _token(self, header: str) -> None:
        owner, config = self.owner, self.owner.config
        if config.fault == "echo-auth":
            body = json.dumps({"details": f"rejected header: {header}"}).encode()
            self._answer(401, {"Content-Type": "application/json"}, body)
            return
        if not owner.basic_ok(header):
            self._answer(401, {"Content-Type": "application/json"}, b'{"details":"incorrect username or password"}')
            return
        if config.fault == "token-body":
            self._answer(200, {"Content-Type": "application/json"}, config.token_body)
            return
        body = json.dumps({"token": owner.token, "expires_in": 300}).encode()
        if config.fault == "huge":
            self._huge(200, {"Content-Type": "application/json"})
            return
        if config.fault == "drip-token":
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            self.wfile.write(head.encode())
            self.wfile.flush()
            self._drip(body)
            return
        self._answer(200, {"Content-Type": "application/json"}, body)
