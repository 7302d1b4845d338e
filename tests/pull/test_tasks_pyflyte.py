"""Proof through pyflyte: ``pyflyte package`` and ``pyflyte serialize`` on tests/pull/workflows, protobufs decoded.

Every task that pulls a private image must carry the pull secret of each registry it pulls
from, and every other task none. The ImageSpec image is really built and pushed by the library
during serialization (offline docker-cli builder), and then pulled by the real Docker engine
with a DOCKER_CONFIG made only from the rendered Secret: the registered task can start.
"""

import base64
import json
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from flyteidl.admin import task_pb2
from google.protobuf.json_format import MessageToDict

from flyte_private_registry import PrivateRegistry

pytestmark = pytest.mark.integration

PYFLYTE = str(Path(sys.executable).with_name("pyflyte"))
WORKFLOWS = Path(__file__).parent / "workflows"

# task name -> the pull secrets it must list (None: no k8s_pod at all)
EXPECTED = {
    "workflows.pull_path.train": ["ml-pull"],
    "workflows.pull_path.evaluate": ["ml-pull"],
    "workflows.pull_path.on_default_image": ["ml-pull"],
    "workflows.pull_path.publish": None,
    "workflows.pull_path.plain_public": None,
    "workflows.pull_path.with_private_sidecar": ["team-other", "vision-pull"],
    "workflows.pull_path.train_with_sidecar": ["team-other", "ml-pull", "vision-pull"],
    "workflows.pull_path.square": ["ml-pull"],
    "workflows.pull_path.fan_out": ["ml-pull"],
    "workflows.pull_path.fan_out_attached": ["ml-pull"],
    "ml-tool": ["ml-pull"],
    "public-tool": None,
    "workflows.pull_path.by_cluster_template": None,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory, docker_engine, basic_registry, registry_users):
    """A copy of tests/pull/workflows and the environment pyflyte runs in (the rig's dockerd and registry)."""
    root = tmp_path_factory.mktemp("pull-project")
    shutil.copytree(WORKFLOWS, root / "workflows", ignore=shutil.ignore_patterns("__pycache__"))
    env = docker_engine.env(
        {
            "PULL_TEST_REGISTRY": basic_registry.host,
            "PULL_TEST_PASSWORD": registry_users.alice_password,
            "PULL_TEST_IMAGE": f"trainer-{uuid.uuid4().hex[:8]}",
            "DOCKER_CONFIG": str(root / "docker-config"),
            "XDG_CONFIG_HOME": str(root / "xdg"),
            "FLYTE_PRIVATE_REGISTRIES": None,
            "FLYTE_PRIVATE_REGISTRY_CONFIG": None,
        }
    )
    return root, env


def _pyflyte(project, *args: str) -> str:
    root, env = project
    result = subprocess.run(
        [PYFLYTE, "--pkgs", "workflows", *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _templates(blobs: dict[str, bytes]) -> dict[str, dict]:
    templates = {}
    for name, blob in blobs.items():
        if name.endswith("_1.pb"):
            spec = task_pb2.TaskSpec()
            spec.ParseFromString(blob)
            templates[spec.template.id.name] = MessageToDict(spec.template)
    return templates


def _secrets(template: dict) -> list[str] | None:
    pod = template.get("k8sPod")
    return None if pod is None else [ref["name"] for ref in pod["podSpec"].get("imagePullSecrets", [])]


def _images(template: dict) -> list[str]:
    if "k8sPod" in template:
        return [c["image"] for c in template["k8sPod"]["podSpec"]["containers"]]
    return [template["container"]["image"]]


def _check(templates: dict[str, dict], host: str) -> None:
    assert set(EXPECTED) <= set(templates), sorted(templates)
    mapped = [t for name, t in templates.items() if name.endswith("-arraynode")]
    assert len(mapped) == 1 and _secrets(mapped[0]) == ["ml-pull"]
    for name, expected in EXPECTED.items():
        assert _secrets(templates[name]) == expected, name

    # The rule itself, checked on every task: a private image implies its registry's secret.
    for name, template in templates.items():
        needed = set()
        for image in _images(template):
            if image.startswith(f"{host}/ml/"):
                needed.add("ml-pull")
            elif image.startswith(f"{host}/vision/"):
                needed.add("vision-pull")
        by_name = template.get("metadata", {}).get("podTemplateName")
        if by_name:
            assert by_name == "flyte-pull" and _secrets(template) is None, name
        else:
            assert needed <= set(_secrets(template) or []), (name, _images(template))
            if not needed:
                assert not _secrets(template) or _secrets(template) == ["team-other"], name

    sidecar = templates["workflows.pull_path.with_private_sidecar"]["k8sPod"]
    assert sidecar["metadata"] == {"labels": {"team": "ml"}, "annotations": {"owner": "ml@example.com"}}
    assert sidecar["podSpec"]["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert [c["name"] for c in sidecar["podSpec"]["containers"]] == ["primary", "proxy"]


def test_pyflyte_package_and_serialize_carry_the_pull_secrets(
    project, basic_registry, registry_users, canary_password, docker_engine, tmp_path
):
    root, _ = project
    default_image = f"{basic_registry.host}/ml/default:v1"
    output = _pyflyte(project, "package", "--image", default_image, "--output", "out.tgz", "--force")
    assert "Successfully packaged" in output
    with tarfile.open(root / "out.tgz") as tar:
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    packaged = _templates(blobs)
    _check(packaged, basic_registry.host)
    assert all(canary_password.encode() not in blob for blob in blobs.values())
    assert canary_password not in output

    (root / "serialized").mkdir()
    output = _pyflyte(project, "serialize", "--image", default_image, "workflows", "--folder", "serialized")
    serialized = _templates({p.name: p.read_bytes() for p in (root / "serialized").iterdir()})
    _check(serialized, basic_registry.host)
    assert canary_password not in output
    # the same definitions give the same templates, whichever command serialized them
    assert packaged["workflows.pull_path.train"] == serialized["workflows.pull_path.train"]

    # The image the registered task names was pushed, and the rendered Secret alone can pull it.
    image = _images(packaged["workflows.pull_path.train"])[0]
    reg = PrivateRegistry(
        f"{basic_registry.host}/ml",
        username="alice",
        password=registry_users.alice_password,
        pull_username="bob",
        pull_password=registry_users.bob_password,
        pull_secret="ml-pull",
    )
    (secret,) = reg.cluster_objects(namespaces=["flytesnacks-development"]).manifests
    config = tmp_path / "from-secret"
    config.mkdir()
    payload = base64.b64decode(secret["data"][".dockerconfigjson"])
    (config / "config.json").write_bytes(payload)
    assert canary_password not in payload.decode()  # the read-only credential (bob) was preferred
    docker_engine.docker("rmi", "--force", image, check=False)
    docker_engine.docker("pull", image, env={"DOCKER_CONFIG": str(config)})
    assert json.loads(payload)["auths"].keys() == {basic_registry.host}
