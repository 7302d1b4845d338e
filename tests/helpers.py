"""Small test utilities shared by several test modules (not fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path


def write_fake_helper(bin_dir: Path, name: str, entries: dict[str, tuple[str, str]], log: Path | None = None) -> Path:
    """A real executable ``docker-credential-<name>`` speaking the helper protocol from a fixed table.

    It stands in for OS keychain helpers (osxkeychain, wincred, desktop) that cannot run on this
    machine; docker and the library run it as a real subprocess found on PATH.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    table = json.dumps({k: {"Username": u, "Secret": s} for k, (u, s) in entries.items()})
    log_line = f"open({str(log)!r}, 'a').write(sys.argv[1] + ' ' + server + '\\n')" if log else "pass"
    script = f"""#!/usr/bin/env python3
import json, sys
table = json.loads({table!r})
action = sys.argv[1]
server = sys.stdin.read().strip()
{log_line}
if action == "get":
    entry = table.get(server)
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": server, **entry}}))
elif action == "list":
    print(json.dumps({{k: v["Username"] for k, v in table.items()}}))
else:
    sys.exit(0)
"""
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def write_docker_config(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def prepend_path(monkeypatch, directory: Path) -> None:
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")


def docker_push(engine, source: str, image: str, username: str, password: str, config_dir: Path) -> str:
    """Tag ``source`` as ``image`` and push it with the plain docker CLI (a login in ``config_dir``).

    Used to seed registries; the library is not involved. Returns the pushed manifest digest.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    env = {"DOCKER_CONFIG": str(config_dir)}
    engine.docker("login", "-u", username, "--password-stdin", image.split("/", 1)[0], input=password, env=env)
    engine.docker("tag", source, image, env=env)
    engine.docker("push", image, env=env)
    return engine.image_digest(image)


def push_oci_manifest(registry, credential, ca_file, repository: str, tag: str, label: str | None = None) -> str:
    """Upload a config blob and an OCI image manifest (no layers) through the v2 API; return its digest.

    An OCI manifest is what a narrow Accept list misses, so the tests use one on purpose. A
    ``label`` gives the image a config (and so a digest) of its own.
    """
    import hashlib
    import json

    import httpx

    from flyte_private_registry import RegistryClient

    with RegistryClient(registry.host, credential, ca_file=ca_file, actions=("pull", "push")) as client:
        client.login(repository)
        http: httpx.Client = client._http
        base = client._url("")
        config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        if label is not None:
            config = config[:-1] + b',"config":{"Labels":' + json.dumps({"label": label}).encode() + b"}}"
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        start = http.post(f"{base}/v2/{repository}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(base).join(start.headers["location"])
        done = http.put(location.copy_merge_params({"digest": config_digest}), content=config)
        assert done.status_code == 201, done.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        put = http.put(
            f"{base}/v2/{repository}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def forget_registry_cache() -> None:
    """A first ``pyflyte`` run: no token, endpoint or platform remembered on disk (a seeding push leaves some)."""
    shutil.rmtree(Path(os.environ["XDG_CACHE_HOME"]) / "flyte-private-registry", ignore_errors=True)
