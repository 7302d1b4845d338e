"""Existence check of 100 tags in one private registry: ours vs skopeo vs flytekit's ``ImageSpec.exist()``.

All three run against the same real TLS + Bearer-token registry started here (tests/rig):
- ours: one ``RegistryClient`` (token fetched once, keep-alive HEADs, 8 in parallel);
- ``skopeo inspect --raw`` once per tag (a process, a TLS handshake and a token per tag);
- flytekit's ``ImageSpec.exist()`` per tag, through the Docker daemon (docker-py -> dockerd ->
  registry), authenticated with a docker config ``auths`` entry.
Prints times and ratios (goal: ours at least 4x faster than either) and token fetch counts.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pydantic import SecretStr  # noqa: E402
from rig import CertificateAuthority, DockerEngine, Registry, TokenServer, UserSpec  # noqa: E402

TAGS = 100
PASSWORD = "bench-password"


def _specs(registry: str) -> list:
    from flytekit.image_spec.image_spec import ImageSpec

    return [ImageSpec(name="app", registry=registry, env={"I": str(i)}) for i in range(TAGS)]


def main() -> None:
    from flyte_private_registry import RegistryClient
    from flyte_private_registry.credentials import Credential

    work = Path(tempfile.mkdtemp(prefix="fpr-bench-"))
    engine = server = registry = None
    try:
        ca = CertificateAuthority(work / "ca")
        users = {"alice": UserSpec(PASSWORD, ("pull", "push"))}
        server = TokenServer.start(work / "token", ca, users)
        registry = Registry.start_token(work / "registry", server, ca)
        engine = DockerEngine.start(work / "docker")
        prefix = f"{registry.host}/bench"
        specs = _specs(prefix)
        tags = [spec.tag for spec in specs]

        # seed one existing tag with the plain docker CLI
        config = work / "docker-config"
        config.mkdir(mode=0o700)
        auth = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
        engine.build_scratch_image("seed:1", {"/x": b"x"})
        engine.docker("tag", "seed:1", f"{prefix}/app:{tags[0]}")
        engine.docker("push", f"{prefix}/app:{tags[0]}", env={"DOCKER_CONFIG": str(config)})

        # ours
        server.clear_requests()
        start = time.perf_counter()
        with RegistryClient(registry.host, Credential("alice", SecretStr(PASSWORD), "bench"), ca_file=ca.ca_file) as c:
            ours_result = c.manifest_digests("bench/app", tags)
        ours = time.perf_counter() - start
        ours_tokens = len(server.requests)

        # ours, one HEAD at a time: what the builder does across a pyflyte run (one session per registry)
        server.clear_requests()
        start = time.perf_counter()
        with RegistryClient(registry.host, Credential("alice", SecretStr(PASSWORD), "bench"), ca_file=ca.ca_file) as c:
            sequential_found = sum(c.manifest_digest("bench/app", tag) is not None for tag in tags)
        sequential = time.perf_counter() - start
        sequential_tokens = len(server.requests)

        # skopeo, one process per tag
        skopeo = shutil.which("skopeo")
        skopeo_time = skopeo_tokens = None
        if skopeo:
            server.clear_requests()
            start = time.perf_counter()
            skopeo_found = 0
            for tag in tags:
                done = subprocess.run(
                    [
                        skopeo,
                        "inspect",
                        "--raw",
                        "--authfile",
                        str(config / "config.json"),
                        "--tls-verify=false",
                        f"docker://{prefix}/app:{tag}",
                    ],
                    capture_output=True,
                )
                skopeo_found += done.returncode == 0
            skopeo_time = time.perf_counter() - start
            skopeo_tokens = len(server.requests)

        # flytekit's ImageSpec.exist() through the daemon
        os.environ["DOCKER_HOST"] = engine.host
        os.environ["DOCKER_CONFIG"] = str(config)
        server.clear_requests()
        start = time.perf_counter()
        flytekit_answers = [spec.exist() for spec in specs]
        flytekit_time = time.perf_counter() - start
        flytekit_tokens = len(server.requests)

        found = sum(d is not None for d in ours_result.values())
        print(f"existence of {TAGS} tags (1 present) in a TLS + token-auth registry")
        print(
            f"  ours (RegistryClient.manifest_digests): {ours * 1000:8.0f} ms, found {found}, "
            f"token fetches {ours_tokens}"
        )
        print(
            f"  ours, one HEAD at a time (builder):     {sequential * 1000:8.0f} ms, found {sequential_found}, "
            f"token fetches {sequential_tokens}"
        )
        if skopeo_time is not None:
            print(
                f"  skopeo inspect --raw per tag:          {skopeo_time * 1000:8.0f} ms, found {skopeo_found}, "
                f"token fetches {skopeo_tokens}"
            )
        print(
            f"  flytekit ImageSpec.exist() per tag:    {flytekit_time * 1000:8.0f} ms, "
            f"found {sum(a is True for a in flytekit_answers)}, unsure {sum(a is None for a in flytekit_answers)}, "
            f"token fetches {flytekit_tokens}"
        )
        if skopeo_time is not None:
            print(
                f"ratio skopeo/ours:   {skopeo_time / ours:6.1f}x (goal >= 4x); "
                f"one at a time {skopeo_time / sequential:.1f}x"
            )
        print(
            f"ratio flytekit/ours: {flytekit_time / ours:6.1f}x (goal >= 4x); "
            f"one at a time {flytekit_time / sequential:.1f}x"
        )
    finally:
        for service in (engine, registry, server):
            if service is not None:
                service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
