"""A real Docker registry (distribution 2.8, Debian's ``docker-registry``) per test session.

Three flavours cover what private registries do: htpasswd Basic auth over HTTP, TLS + Bearer
tokens from :class:`~rig.token_server.TokenServer` (the GHCR/GitLab/Docker Hub/Harbor model),
and no auth at all.
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ._process import RigError, Service, require_binary, terminate
from .ports import free_port
from .tls import CertificateAuthority
from .token_server import TokenServer


def _reference_host(name: str, port: int, tls: bool) -> str:
    """``name[:port]`` as it must appear in an image reference (default ports are implied)."""
    default = 443 if tls else 80
    return name if port == default else f"{name}:{port}"


class Registry(Service):
    """A running ``docker-registry serve``; build it with a ``start_*`` constructor, then :meth:`stop`.

    ``host`` is exactly what goes in image references (``127.0.0.1:PORT``, or the first of
    ``hostnames`` for a registry served under a provider name mapped in /etc/hosts); ``bind``
    is the socket address actually listened on.
    """

    def __init__(
        self,
        workdir: Path,
        proc: subprocess.Popen[bytes],
        *,
        bind_host: str,
        port: int,
        public_name: str,
        tls: bool,
        ca_file: Path | None,
        auth: str,
        users: Mapping[str, str] | None = None,
        token_server: TokenServer | None = None,
    ) -> None:
        self.workdir = workdir
        self.proc = proc
        self.bind_host = bind_host
        self.port = port
        self.bind = f"{bind_host}:{port}"
        self.host = _reference_host(public_name, port, tls)
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://{self.host}"
        self.bind_url = f"{self.scheme}://{self.bind}"
        self.ca_file = ca_file
        self.auth = auth
        self.users: dict[str, str] = dict(users or {})
        self.token_server = token_server
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.storage_dir = workdir / "storage"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def start_basic(
        cls,
        workdir: Path,
        users: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int | None = None,
        hostnames: list[str] | None = None,
        ca: CertificateAuthority | None = None,
    ) -> Registry:
        """Registry with htpasswd (bcrypt) Basic auth for ``users`` (name -> password).

        Plain HTTP by default: docker treats 127.0.0.0/8 as insecure, so the daemon talks HTTP to
        it without config. With ``ca`` it serves TLS (cert for ``host`` + ``hostnames``), the way
        ECR and other Basic-auth registries do, so Python clients verify a real certificate.
        """
        workdir = _prepare(workdir)
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text("".join(_htpasswd_line(user, password) for user, password in users.items()))
        auth = {"htpasswd": {"realm": "rig-basic-registry", "path": str(htpasswd)}}
        port = port or free_port(host)
        public = (hostnames or [host])[0]
        tls = None
        if ca is not None:
            cert_path, key_path = ca.issue(list(hostnames or []), [host])
            tls = (cert_path, key_path, ca.ca_file)
        return cls._launch(workdir, host, port, auth, tls=tls, public_name=public, auth_kind="basic", users=users)

    @classmethod
    def start_token(
        cls,
        workdir: Path,
        token_server: TokenServer,
        ca: CertificateAuthority,
        host: str = "127.0.0.1",
        port: int | None = None,
        hostnames: list[str] | None = None,
    ) -> Registry:
        """TLS registry (cert from ``ca`` for ``host`` + ``hostnames``) trusting ``token_server``'s JWTs."""
        workdir = _prepare(workdir)
        cert_path, key_path = ca.issue(list(hostnames or []), [host])
        auth = {
            "token": {
                "realm": token_server.realm,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": str(token_server.root_cert_bundle),
            }
        }
        port = port or free_port(host)
        public = (hostnames or [host])[0]
        registry = cls._launch(
            workdir,
            host,
            port,
            auth,
            tls=(cert_path, key_path, ca.ca_file),
            public_name=public,
            auth_kind="token",
            token_server=token_server,
        )
        return registry

    @classmethod
    def start_open(
        cls,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        hostnames: list[str] | None = None,
    ) -> Registry:
        """Plain-HTTP registry without auth (a mirror/cache or an air-gapped in-cluster registry)."""
        workdir = _prepare(workdir)
        port = port or free_port(host)
        public = (hostnames or [host])[0]
        return cls._launch(workdir, host, port, None, tls=None, public_name=public, auth_kind="none")

    @classmethod
    def _launch(
        cls,
        workdir: Path,
        host: str,
        port: int,
        auth: dict[str, Any] | None,
        *,
        tls: tuple[Path, Path, Path] | None,
        public_name: str,
        auth_kind: str,
        users: Mapping[str, str] | None = None,
        token_server: TokenServer | None = None,
    ) -> Registry:
        binary = require_binary("docker-registry", "docker-registry")
        http: dict[str, Any] = {"addr": f"{host}:{port}", "secret": secrets.token_hex(16)}
        if tls is not None:
            http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(workdir / "storage")},
                # As shipped (Debian's /etc/docker/registry/config.yml, the registry:2 image): blob
                # descriptors cached in memory, not read from link files on every blob request.
                "cache": {"blobdescriptor": "inmemory"},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if auth is not None:
            config["auth"] = auth
        # JSON is valid YAML, and avoids a PyYAML dependency in the rig.
        (workdir / "config.yml").write_text(json.dumps(config, indent=2) + "\n")
        log_path = workdir / "registry.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [binary, "serve", str(workdir / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
            )
        registry = cls(
            workdir,
            proc,
            bind_host=host,
            port=port,
            public_name=public_name,
            tls=tls is not None,
            ca_file=tls[2] if tls is not None else None,
            auth=auth_kind,
            users=users,
            token_server=token_server,
        )
        registry._become_ready(f"docker-registry at {registry.bind_url}", timeout=15, interval=0.05)
        return registry

    # ------------------------------------------------------------------ lifecycle
    def _probe(self) -> str | None:
        """``GET /v2/`` on the bind address answers 200 or 401 once the registry is up.

        TLS is verified against our CA here, so a bad certificate fails at start, not mid-test.
        """
        verify: ssl.SSLContext | bool = False
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
            verify.check_hostname = False  # we connect by bind IP; the cert may name a hostname
        try:
            response = httpx.get(f"{self.bind_url}/v2/", verify=verify, timeout=2.0, trust_env=False)
        except httpx.HTTPError as exc:
            return repr(exc)
        return None if response.status_code in (200, 401) else f"HTTP {response.status_code}"

    def _shutdown(self) -> None:
        """SIGTERM the registry (SIGKILL after 10 s)."""
        terminate(self.proc, timeout=10)

    def reference(self, repository: str, tag: str = "latest") -> str:
        """Full image reference in this registry, e.g. ``127.0.0.1:5000/team/app:v1``."""
        return f"{self.host}/{repository}:{tag}"

    def __repr__(self) -> str:
        return f"Registry({self.auth}, {self.url}, bind={self.bind})"


def _prepare(workdir: Path) -> Path:
    workdir = Path(workdir).resolve()
    (workdir / "storage").mkdir(parents=True, exist_ok=True)
    return workdir


def _htpasswd_line(user: str, password: str) -> str:
    """One bcrypt htpasswd line; the password goes through stdin, never argv (``ps`` would show it)."""
    binary = require_binary("htpasswd", "apache2-utils")
    result = subprocess.run(
        [binary, "-n", "-i", "-B", "-C", "4", user],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RigError(f"htpasswd failed for {user!r}: {result.stderr.strip()}")
    return result.stdout.strip() + "\n"
