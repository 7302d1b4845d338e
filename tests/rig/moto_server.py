"""moto in server mode: the AWS control plane (ECR, IAM, STS) for the ECR provider's tests and benchmark.

moto answers ECR API calls over real HTTP, so boto3 runs unchanged (its default credential
chain, endpoint resolution through ``AWS_ENDPOINT_URL_ECR``, retries, error parsing). It has no
registry v2 API and no ECR Public, and its ``expiresAt`` is fixed at 2015-01-01: pair it with a
rig registry for pushes and an injected clock for token lifetimes.

Calls are counted from moto's request recorder (every request the server received, from any
process), not from a client-side hook, so a benchmark spread over several processes counts
right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from ._process import Service, terminate
from .ports import free_port

#: ``X-Amz-Target`` prefix of ECR's JSON protocol; the operation name follows the dot.
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"
#: moto's default account; its tokens decode to ``AWS:<account>-auth-token``.
MOTO_ACCOUNT = "123456789012"


class MotoServer(Service):
    """A running ``python -m moto.server``; create it with :meth:`start`, always :meth:`stop` it."""

    def __init__(self, workdir: Path, proc: subprocess.Popen[bytes], host: str, port: int) -> None:
        self.workdir = workdir
        self.proc = proc
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.log_path = workdir / "moto.log"
        self.recording = workdir / "requests.jsonl"

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> MotoServer:
        """Start moto on ``host:port`` (a free port if None) with request recording on.

        ``env`` is added to the server's environment, e.g. ``INITIAL_NO_AUTH_ACTION_COUNT`` to
        make moto enforce IAM policies after that many calls. Raises :class:`RigError` with the
        log tail if moto does not answer within ``timeout``: callers must fail, never skip.
        """
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        port = port or free_port(host)
        server_env = {
            **os.environ,
            "MOTO_ENABLE_RECORDING": "true",
            "MOTO_RECORDER_FILEPATH": str(workdir / "requests.jsonl"),
            **(env or {}),
        }
        log_path = workdir / "moto.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env,
                cwd=workdir,
            )
        server = cls(workdir, proc, host, port)
        server._become_ready(f"moto server at {server.url} (is moto[server] installed?)", timeout)
        return server

    def _probe(self) -> str | None:
        try:
            response = httpx.get(f"{self.url}/moto-api/data.json", timeout=2.0)
        except httpx.HTTPError as exc:
            return repr(exc)
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    def _shutdown(self) -> None:
        """SIGTERM moto (SIGKILL after 10 s)."""
        terminate(self.proc, timeout=10)

    # ------------------------------------------------------------------ test helpers
    def reset(self) -> None:
        """Forget all state (repositories, IAM users) and the recorded requests."""
        httpx.post(f"{self.url}/moto-api/reset", timeout=10.0).raise_for_status()
        httpx.post(f"{self.url}/moto-api/recorder/reset-recording", timeout=10.0).raise_for_status()

    def targets(self) -> list[str]:
        """``X-Amz-Target`` of every recorded JSON-protocol request, oldest first."""
        if not self.recording.exists():
            return []
        found = []
        for line in self.recording.read_text().splitlines():
            if not line.strip():
                continue
            headers = {k.lower(): v for k, v in (json.loads(line).get("headers") or {}).items()}
            if "x-amz-target" in headers:
                found.append(headers["x-amz-target"])
        return found

    def calls(self, operation: str, target_prefix: str = ECR_TARGET) -> int:
        """How many ``operation`` requests (e.g. ``GetAuthorizationToken``) moto received."""
        return self.targets().count(f"{target_prefix}.{operation}")

    def env(self) -> dict[str, str]:
        """Variables that point boto3's default chain at this server with moto's dummy identity."""
        return {
            "AWS_ENDPOINT_URL_ECR": self.url,
            "AWS_ENDPOINT_URL_IAM": self.url,
            "AWS_ENDPOINT_URL_STS": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
