"""Digest pinning and the platform check against the real dockerd and registries (docs/digests.md).

Every private task in a ``pyflyte package`` must carry ``@sha256:`` equal to what the registry
serves for the tag, whether the image was built now or already there; a later re-push of the tag
must not change what the earlier package pulls; multi-platform indexes and single manifests
pushed through the registry HTTP API must pass or fail the platform check as they should; and
pinning must not add a request to the existence check (counted in the registry's access log).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import subprocess
import sys
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flyteidl.admin import task_pb2
from flytekit.configuration import SerializationSettings
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from pydantic import SecretStr
from rig import Registry

from flyte_private_registry import PrivateRegistry, RegistryClient, RegistryError
from flyte_private_registry._reference import ImageReference
from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution._private_dir import user_cache_dir
from flyte_private_registry.push import _pinning, _platform_cache

pytestmark = pytest.mark.integration

PYFLYTE = str(Path(sys.executable).with_name("pyflyte"))
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


# -- helpers ------------------------------------------------------------------------------------
def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Pushes blobs and manifests through the registry HTTP API (Basic auth), as `crane`/`oras` would."""

    def __init__(self, registry: Registry, user: str, password: str) -> None:
        self.base = registry.url
        self.http = httpx.Client(auth=(user, password), timeout=10, trust_env=False)

    def blob(self, repository: str, data: bytes) -> str:
        digest = _digest(data)
        started = self.http.post(f"{self.base}/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(self.base).join(started.headers["location"]).copy_merge_params({"digest": digest})
        done = self.http.put(location, content=data)
        assert done.status_code == 201, done.text
        return digest

    def manifest(self, repository: str, reference: str, document: dict, media_type: str) -> tuple[str, int]:
        body = json.dumps(document).encode()
        answer = self.http.put(
            f"{self.base}/v2/{repository}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        assert answer.status_code == 201, answer.text
        return _digest(body), len(body)

    def image(self, repository: str, reference: str, os_: str, architecture: str, variant: str | None = None) -> str:
        """A one-layer OCI image whose config says ``os/architecture[/variant]``; returns its manifest digest."""
        layer = _tar({"hello.txt": f"{os_}/{architecture} {uuid.uuid4()}\n".encode()})
        layer_digest = self.blob(repository, layer)
        config = {"os": os_, "architecture": architecture, "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
        if variant:
            config["variant"] = variant
        config_bytes = json.dumps(config).encode()
        config_digest = self.blob(repository, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}
            ],
        }
        digest, _ = self.manifest(repository, reference, manifest, OCI_MANIFEST)
        return digest

    def index(self, repository: str, tag: str, platforms: list[tuple[str, str, str | None]]) -> str:
        """An OCI index over one image per platform (plus a buildx-style unknown/unknown attestation entry)."""
        entries = []
        for os_, architecture, variant in [*platforms, ("unknown", "unknown", None)]:
            digest = self.image(repository, f"part-{uuid.uuid4().hex[:8]}", os_, architecture, variant)
            size = len(self.http.get(f"{self.base}/v2/{repository}/manifests/{digest}").content)
            platform = {"os": os_, "architecture": architecture, **({"variant": variant} if variant else {})}
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform})
        digest, _ = self.manifest(
            repository, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX
        )
        return digest


def _tar(files: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _registry_digest(registry: Registry, image: str, password: str) -> str:
    ref = ImageReference.parse(image.split("@", 1)[0])
    with RegistryClient(registry.host, Credential("alice", SecretStr(password), source="test")) as client:
        digest = client.manifest_digest(ref.repository, ref.tag or "latest")
    assert digest, f"{image} is not in the registry"
    return digest


_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/[^ ]*) HTTP/[0-9.]+" (?P<status>[0-9]{3})')


def _requests(registry: Registry, *, since: int = 0) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request in the registry's access log after byte ``since``."""
    text = registry.log_path.read_bytes()[since:].decode("utf-8", "replace")
    return [(m["method"], m["path"].split("?")[0], int(m["status"])) for m in _ACCESS.finditer(text)]


def _log_size(registry: Registry) -> int:
    return registry.log_path.stat().st_size


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def engine_env(docker_engine, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    monkeypatch.delenv(_pinning.ENV_PIN, raising=False)
    ImageBuildEngine.build.cache_clear()
    _platform_cache.forget()
    yield
    ImageBuildEngine.build.cache_clear()


@pytest.fixture(scope="module")
def pin_registry(tmp_path_factory, registry_users) -> Iterator[Registry]:
    """A registry of this module's own, so its access log counts only these tests' requests."""
    registry = Registry.start_basic(tmp_path_factory.mktemp("pin-registry"), registry_users.basic)
    yield registry
    registry.stop()


@pytest.fixture
def pusher(pin_registry, registry_users) -> Iterator[Pusher]:
    pusher = Pusher(pin_registry, "alice", registry_users.alice_password)
    yield pusher
    pusher.http.close()


def _declare(pin_registry: Registry, password: str, **kwargs) -> PrivateRegistry:
    return PrivateRegistry(f"{pin_registry.host}/team", username="alice", password=password, **kwargs)


# -- pyflyte package ----------------------------------------------------------------------------
WORKFLOW = """
from flytekit import ContainerTask, ImageSpec, dynamic, map_task, task, workflow

image = ImageSpec(name={name!r}, registry={registry!r}, copy=["wf.py"])
other = ImageSpec(name={name!r} + "-other", registry={registry!r}, copy=["wf.py"], builder_options={options!r})

@task(container_image=image)
def private(x: int) -> int:
    return x + 1

@task(container_image=other)
def unpinned(x: int) -> int:
    return x

@task
def public(x: int) -> int:
    return x * 2

shell = ContainerTask(name="shell", image=image, command=["true"])

@dynamic(container_image=image)
def fan(n: int) -> int:
    return private(x=n)

@workflow
def wf(x: int = 1) -> int:
    shell()
    ys = map_task(private)(x=[x, x])
    return public(x=unpinned(x=fan(n=private(x=x))))
"""


def _package(project: Path, env: dict[str, str]) -> tuple[dict[str, task_pb2.TaskSpec], str]:
    result = subprocess.run(
        [PYFLYTE, "--pkgs", "wf", "package", "--force", "--output", "out.tgz"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    specs = {}
    with tarfile.open(project / "out.tgz") as tar:
        for member in tar.getmembers():
            if member.name.endswith("_1.pb"):
                spec = task_pb2.TaskSpec()
                spec.ParseFromString(tar.extractfile(member).read())
                specs[spec.template.id.name] = spec
    return specs, output


@pytest.fixture(scope="module")
def packaged(docker_engine, pin_registry, registry_users, tmp_path_factory) -> dict:
    """The workflow packaged twice: the first run builds and pushes, the second finds the image."""
    project = tmp_path_factory.mktemp("pin-project")
    name = f"wf-{uuid.uuid4().hex[:8]}"
    registry = f"{pin_registry.host}/team"
    (project / "wf.py").write_text(
        textwrap.dedent(WORKFLOW.format(name=name, registry=registry, options={"pin_digest": False}))
    )
    env = docker_engine.env(
        {
            "FLYTE_PRIVATE_REGISTRY_BUILDER": "docker-cli",
            "FLYTE_PRIVATE_REGISTRIES": json.dumps(
                [{"prefix": registry, "username": "alice", "password_env": "REG_PASSWORD"}]
            ),
            "REG_PASSWORD": registry_users.alice_password,
            "DOCKER_CONFIG": str(project / "user-docker-config"),
            "XDG_CONFIG_HOME": str(project / "xdg"),
            "XDG_CACHE_HOME": str(project / "xdg-cache"),
        }
    )
    built, built_output = _package(project, env)
    first = (project / "out.tgz").read_bytes()
    found, found_output = _package(project, env)
    return {
        "project": project,
        "name": name,
        "env": env,
        "built": built,
        "built_output": built_output,
        "found": found,
        "found_output": found_output,
        "first_archive": first,
    }


def _private_images(specs: dict[str, task_pb2.TaskSpec]) -> dict[str, str]:
    return {name: spec.template.container.image for name, spec in specs.items() if name != "wf.public"}


def test_every_private_task_is_pinned_to_the_registry_digest(packaged, pin_registry, registry_users):
    assert "not found in private registry" in packaged["built_output"]
    assert "Skip building" in packaged["found_output"] and "docker build" not in packaged["found_output"]
    for run in ("built", "found"):
        specs = packaged[run]
        images = _private_images(specs)
        # @task, the map task (it runs the inner task's image), ContainerTask and @dynamic
        pinned = {k: v for k, v in images.items() if k != "wf.unpinned"}
        assert {"wf.private", "shell", "wf.fan"} <= set(pinned), sorted(images)
        assert any("map" in k for k in pinned), sorted(images)
        for task_name, image in pinned.items():
            assert "@sha256:" in image, (run, task_name, image)
            ref = ImageReference.parse(image)
            assert image.startswith(f"{pin_registry.host}/team/{packaged['name']}:"), image
            assert ref.digest == _registry_digest(pin_registry, image, registry_users.alice_password), task_name
        assert specs["wf.public"].template.container.image.startswith("cr.flyte.org/")  # not ours: untouched
    assert _private_images(packaged["built"]) == _private_images(packaged["found"])


def test_dynamic_tasks_compile_with_the_pinned_image(packaged):
    """@dynamic compiles its sub-workflow in the pod from the serialized context: the pin must be in it."""
    env = {e.key: e.value for e in packaged["found"]["wf.fan"].template.container.env}
    settings = SerializationSettings.from_transport(env["_F_SS_C"])
    images = {image.full for image in settings.image_config.images or []}
    pinned = packaged["found"]["wf.private"].template.container.image
    assert "@sha256:" in pinned and pinned in images, images


def test_builder_option_opts_one_spec_out(packaged, pin_registry):
    for run in ("built", "found"):
        image = packaged[run]["wf.unpinned"].template.container.image
        assert "@" not in image and image.startswith(f"{pin_registry.host}/team/{packaged['name']}-other:"), image


def test_a_re_pushed_tag_does_not_change_what_the_earlier_package_pulls(
    packaged, docker_engine, pin_registry, registry_users, busybox_image, tmp_path
):
    pinned = packaged["found"]["wf.private"].template.container.image
    ref = ImageReference.parse(pinned)
    tag_image = pinned.split("@", 1)[0]
    original_config = _config_digest(pin_registry, registry_users, ref.repository, ref.digest)

    # someone re-pushes the tag with other content (CI reusing a tag, a mutable ECR tag)
    seed = tmp_path / "seed"
    seed.mkdir()
    seed_env = {"DOCKER_CONFIG": str(seed)}
    docker_engine.docker(
        "login", "-u", "alice", "--password-stdin", pin_registry.host, input=registry_users.alice_password, env=seed_env
    )
    docker_engine.docker("tag", busybox_image, tag_image, env=seed_env)
    docker_engine.docker("push", tag_image, env=seed_env)
    assert _registry_digest(pin_registry, tag_image, registry_users.alice_password) != ref.digest

    # the cluster pulls with nothing but the rendered pull Secret, as the kubelet would
    reg = PrivateRegistry(f"{pin_registry.host}/team", username="bob", password=registry_users.bob_password)
    (secret,) = reg.cluster_objects(namespaces=["flytesnacks-development"]).manifests
    env = _config_from_secret(secret, tmp_path / "from-secret")
    docker_engine.docker("rmi", "--force", tag_image, check=False)
    docker_engine.docker("rmi", "--force", pinned, check=False)
    docker_engine.docker("pull", pinned, env=env)
    pulled_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}}", pinned, env=env).stdout.strip()
    assert pulled_id == original_config  # the original image, not the re-pushed busybox
    busybox_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}}", busybox_image).stdout.strip()
    assert pulled_id != busybox_id


def _config_from_secret(secret: dict, directory: Path) -> dict[str, str]:
    """A docker config directory holding the Secret's .dockerconfigjson and nothing else."""
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    directory.mkdir()
    (directory / "config.json").write_bytes(base64.b64decode(secret["data"][".dockerconfigjson"]))
    return {"DOCKER_CONFIG": str(directory)}


def _config_digest(registry: Registry, users, repository: str, digest: str) -> str:
    cred = Credential("alice", SecretStr(users.alice_password), source="test")
    with RegistryClient(registry.host, cred) as client:
        manifest = client.manifest(repository, digest)
    assert manifest is not None and not manifest.is_index
    return manifest.document["config"]["digest"]


def test_registry_opt_out_serializes_the_plain_tag(packaged, pin_registry, registry_users):
    env = dict(packaged["env"])
    entries = json.loads(env["FLYTE_PRIVATE_REGISTRIES"])
    entries[0]["pin_digest"] = False  # the config-file key, as in flyte-private-registry.toml
    env["FLYTE_PRIVATE_REGISTRIES"] = json.dumps(entries)
    specs, output = _package(packaged["project"], env)
    images = _private_images(specs)
    assert images and all("@" not in image for image in images.values()), images
    assert "are pinned to" not in output


# -- in-process builds: opt-outs, gone digests, request counts ------------------------------------
def _spec(pin_registry: Registry, tag: str | None = None, **kwargs) -> ImageSpec:
    return ImageSpec(
        name=f"app-{uuid.uuid4().hex[:8]}",
        registry=f"{pin_registry.host}/team",
        tag_format=tag,
        **kwargs,
    )


def test_env_var_opts_out_for_the_process(engine_env, pin_registry, pusher, registry_users, monkeypatch):
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "v1")
    digest = pusher.image(f"team/{spec.name}", "v1", "linux", "amd64")
    monkeypatch.setenv(_pinning.ENV_PIN, "false")
    ImageBuildEngine.build(spec)
    assert spec.image_name() == f"{pin_registry.host}/team/{spec.name}:v1"
    monkeypatch.setenv(_pinning.ENV_PIN, "true")
    ImageBuildEngine.build.cache_clear()
    ImageBuildEngine.build(spec)
    assert spec.image_name() == f"{pin_registry.host}/team/{spec.name}:v1@{digest}"


def test_a_pinned_base_the_registry_no_longer_has_fails_at_registration(
    engine_env, pin_registry, pusher, registry_users, tmp_path, monkeypatch
):
    _declare(pin_registry, registry_users.alice_password)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "payload.txt").write_text("x\n")
    missing = "sha256:" + "0" * 64
    spec = _spec(pin_registry, base_image=f"{pin_registry.host}/team/base:v1@{missing}", copy=["payload.txt"])
    with pytest.raises(RegistryError) as failure:
        ImageBuildEngine.build(spec)
    message = str(failure.value)
    assert missing in message and "no longer has" in message and "ImagePullBackOff" in message, message


def test_pinning_adds_no_request_to_the_existence_check(engine_env, pin_registry, pusher, registry_users):
    """Server-side count: with the platform check off, a found image costs one HEAD pinned or not."""
    counts = {}
    for pin in (True, False):
        _declare(pin_registry, registry_users.alice_password, pin_digest=pin, platforms=[])
        spec = _spec(pin_registry, "v1")
        repository = f"team/{spec.name}"
        digest = pusher.image(repository, "v1", "linux", "amd64")
        ImageBuildEngine.build.cache_clear()
        start = _log_size(pin_registry)
        ImageBuildEngine.build(spec)
        seen = [r for r in _requests(pin_registry, since=start) if r[1].startswith(f"/v2/{repository}/")]
        counts[pin] = seen
        assert spec.image_name().endswith(f"@{digest}") == pin
    for pin, seen in counts.items():
        assert [(method, path.rsplit("/", 1)[-1], status) for method, path, status in seen] == [("HEAD", "v1", 200)], (
            pin
        )


def _kinds(pin_registry: Registry, repository: str, since: int) -> list[tuple[str, str]]:
    """(method, ``manifests`` or ``blobs``) of the requests for ``repository`` after byte ``since`` of the log."""
    seen = [r for r in _requests(pin_registry, since=since) if r[1].startswith(f"/v2/{repository}/")]
    return [(method, path.rsplit("/", 2)[-2]) for method, path, _ in seen]


def _check_again(spec: ImageSpec, *, new_process: bool) -> None:
    if new_process:
        _platform_cache.forget()  # what a new process knows: the disk cache only
    ImageBuildEngine.build.cache_clear()
    ImageBuildEngine.build(spec)


def test_a_first_check_reads_the_manifest_once_and_later_checks_are_one_head(
    engine_env, pin_registry, pusher, registry_users
):
    """A new tag: one GET answers both existence and the platform check (then the config); a known tag: one HEAD."""
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "v1")
    repository = f"team/{spec.name}"
    digest = pusher.image(repository, "v1", "linux", "amd64")
    start = _log_size(pin_registry)
    ImageBuildEngine.build(spec)
    first = _requests(pin_registry, since=start)
    assert _kinds(pin_registry, repository, start) == [("GET", "manifests"), ("GET", "blobs")], first
    assert spec.image_name().endswith(f"@{digest}")

    for new_process in (False, True):  # the same process, then a new one: the disk cache answers
        start = _log_size(pin_registry)
        _check_again(spec, new_process=new_process)
        assert _kinds(pin_registry, repository, start) == [("HEAD", "manifests")], new_process
        assert spec.image_name().endswith(f"@{digest}")


def test_a_moved_tag_is_checked_again_and_its_new_digest_remembered(engine_env, pin_registry, pusher, registry_users):
    """The remembered digest only picks HEAD over GET: the registry's answer is what is pinned and checked."""
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "v1")
    repository = f"team/{spec.name}"
    pusher.image(repository, "v1", "linux", "amd64")
    ImageBuildEngine.build(spec)
    moved = pusher.index(repository, "v1", [("linux", "amd64", None), ("linux", "arm64", "v8")])

    start = _log_size(pin_registry)
    _check_again(spec, new_process=True)
    kinds = _kinds(pin_registry, repository, start)
    assert kinds == [("HEAD", "manifests"), ("GET", "manifests")], kinds  # an index names its platforms
    assert spec.image_name().endswith(f"@{moved}")

    start = _log_size(pin_registry)
    _check_again(spec, new_process=True)
    assert _kinds(pin_registry, repository, start) == [("HEAD", "manifests")]
    assert spec.image_name().endswith(f"@{moved}")


def test_a_tag_whose_platform_check_failed_is_read_again_and_fails_again(
    engine_env, pin_registry, pusher, registry_users
):
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "v1")
    repository = f"team/{spec.name}"
    pusher.image(repository, "v1", "linux", "arm64")
    # the digest's platforms are a fact, kept; the tag is not remembered as checked
    for expected in ([("GET", "manifests"), ("GET", "blobs")], [("GET", "manifests")]):
        start = _log_size(pin_registry)
        with pytest.raises(RegistryError, match="has no linux/amd64 image"):
            _check_again(spec, new_process=True)
        assert _kinds(pin_registry, repository, start) == expected


def test_without_the_disk_cache_every_process_reads_two_and_never_three(
    engine_env, pin_registry, pusher, registry_users, monkeypatch
):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_TOKEN_CACHE", "0")
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "v1")
    repository = f"team/{spec.name}"
    pusher.image(repository, "v1", "linux", "amd64")
    for _ in range(2):
        start = _log_size(pin_registry)
        _check_again(spec, new_process=True)
        assert _kinds(pin_registry, repository, start) == [("GET", "manifests"), ("GET", "blobs")]


def _checked_once(pin_registry: Registry, pusher: Pusher, password: str) -> tuple[ImageSpec, str, Path]:
    """An amd64 image checked by one run: its spec, its digest and the platform cache's directory."""
    _declare(pin_registry, password)
    spec = _spec(pin_registry, "v1")
    digest = pusher.image(f"team/{spec.name}", "v1", "linux", "amd64")
    ImageBuildEngine.build(spec)
    return spec, digest, user_cache_dir("platforms")


def test_the_remembered_tag_names_no_image_and_is_private(engine_env, pin_registry, pusher, registry_users):
    spec, digest, directory = _checked_once(pin_registry, pusher, registry_users.alice_password)
    tags = [entry for entry in directory.iterdir() if entry.name.startswith("tag-")]
    entry = {"digest": digest, "platforms": ["linux/amd64"]}  # one file: a warm check reads nothing else
    mine = [path for path in tags if json.loads(path.read_text()) == entry]
    assert len(mine) == 1, tags
    assert stat.S_IMODE(mine[0].stat().st_mode) == 0o600
    assert spec.name not in mine[0].name and pin_registry.host.split(":")[0] not in mine[0].name
    assert not [path for path in directory.iterdir() if path.name.startswith("sha256-")]

    start = _log_size(pin_registry)
    _check_again(spec, new_process=True)
    assert _kinds(pin_registry, f"team/{spec.name}", start) == [("HEAD", "manifests")]

    mine[0].write_text('{"digest": "sha256:7cb4')  # a torn file is a miss: the tag and its config are read again
    start = _log_size(pin_registry)
    _check_again(spec, new_process=True)
    assert _kinds(pin_registry, f"team/{spec.name}", start) == [("GET", "manifests"), ("GET", "blobs")]
    assert spec.image_name().endswith(f"@{digest}") and json.loads(mine[0].read_text()) == entry


def test_a_tag_entry_of_the_earlier_form_still_spares_the_get(engine_env, pin_registry, pusher, registry_users):
    """Entries written before tag files carried platforms: the digest alone, its platforms in the digest's file."""
    spec, digest, directory = _checked_once(pin_registry, pusher, registry_users.alice_password)
    (tag,) = [path for path in directory.iterdir() if path.name.startswith("tag-")]
    tag.write_text(json.dumps(digest))
    by_digest = directory / f"{digest.replace(':', '-')}.json"
    by_digest.write_text('["linux/amd64"]')
    by_digest.chmod(0o600)  # as the cache wrote it: a file others can read is not trusted

    start = _log_size(pin_registry)
    _check_again(spec, new_process=True)
    assert _kinds(pin_registry, f"team/{spec.name}", start) == [("HEAD", "manifests")]
    assert spec.image_name().endswith(f"@{digest}")


# -- the platform check ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wanted", "ok"),
    [
        ("linux/amd64", True),
        ("linux/arm64", True),
        (["linux/amd64", "linux/arm64/v8"], True),
        ("linux/arm/v7", False),
        (["linux/amd64", "linux/s390x"], False),
    ],
)
def test_a_multi_platform_index_passes_or_fails_the_platform_check(
    engine_env, pin_registry, pusher, registry_users, wanted, ok
):
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "multi", builder_options={"platforms": wanted})
    index = pusher.index(f"team/{spec.name}", "multi", [("linux", "amd64", None), ("linux", "arm64", "v8")])
    if ok:
        ImageBuildEngine.build(spec)
        assert spec.image_name() == f"{pin_registry.host}/team/{spec.name}:multi@{index}"  # the index digest
        return
    with pytest.raises(RegistryError) as failure:
        ImageBuildEngine.build(spec)
    message = str(failure.value)
    assert f"{pin_registry.host}/team/{spec.name}:multi@{index}" in message
    assert "its platforms: linux/amd64, linux/arm64/v8)" in message and "unknown" not in message, message
    assert spec.image_name() == f"{pin_registry.host}/team/{spec.name}:multi"  # nothing pinned


def test_a_single_arch_image_for_another_architecture_fails(engine_env, pin_registry, pusher, registry_users):
    _declare(pin_registry, registry_users.alice_password)
    spec = _spec(pin_registry, "v1")  # flytekit's default platform: linux/amd64
    assert spec.platform == "linux/amd64"
    digest = pusher.image(f"team/{spec.name}", "v1", "linux", "arm64", "v8")
    with pytest.raises(RegistryError) as failure:
        ImageBuildEngine.build(spec)
    message = str(failure.value)
    assert f"{spec.name}:v1@{digest} has no linux/amd64 image (its platforms: linux/arm64/v8)" in message, message


def test_registry_platforms_override_the_spec(engine_env, pin_registry, pusher, registry_users):
    _declare(pin_registry, registry_users.alice_password, platforms=["linux/arm64"])
    spec = _spec(pin_registry, "v1")
    digest = pusher.image(f"team/{spec.name}", "v1", "linux", "arm64")
    ImageBuildEngine.build(spec)
    assert spec.image_name().endswith(f"@{digest}")


def test_a_built_image_is_checked_and_pinned_to_what_was_pushed(
    engine_env, pin_registry, registry_users, tmp_path, monkeypatch, capfd
):
    _declare(pin_registry, registry_users.alice_password)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "payload.txt").write_text(f"payload {uuid.uuid4()}\n")
    spec = _spec(pin_registry, copy=["payload.txt"])
    ImageBuildEngine.build(spec)
    out = capfd.readouterr().out
    assert "Verified" in out and "pinned to sha256:" in out
    image = spec.image_name()
    assert image.split("@")[1] == _registry_digest(pin_registry, image, registry_users.alice_password)

    # the push remembered the tag: the next run's check is one HEAD, its platforms cached
    start = _log_size(pin_registry)
    _check_again(spec, new_process=True)
    assert _kinds(pin_registry, f"team/{spec.name}", start) == [("HEAD", "manifests")]
    assert spec.image_name() == image
