"""Every example in examples/ serializes with `pyflyte package`, and private tasks carry their pull secrets.

No cloud registry can be reached here (ghcr.io, ECR, ...), so pyflyte runs with one stand-in:
a builder registered above ours whose ``should_build`` answers "exists". Everything else is
pyflyte's real serialization; this checks the pull side of the examples, not their pushes
(those are covered per provider against local registries in tests/providers/test_provider_*.py).
"""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from flyteidl.admin import task_pb2
from google.protobuf.json_format import MessageToDict

from flyte_private_registry._reference import ImageReference, RegistryPrefix

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PYFLYTE_WITHOUT_BUILDS = [
    sys.executable,
    "-c",
    "import sys, flytekit\n"
    "from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpecBuilder\n"
    "class NoCloud(ImageSpecBuilder):\n"
    "    def should_build(self, image_spec): return False\n"
    "    def build_image(self, image_spec): raise AssertionError('no builds in the examples test')\n"
    "ImageBuildEngine.register('no-cloud', NoCloud(), priority=1000)\n"
    "from flytekit.clis.sdk_in_container.pyflyte import main\n"
    "sys.argv[0] = 'pyflyte'\n"
    "main()\n",
]
MODULES = sorted(p.stem for p in EXAMPLES.glob("*.py"))

_INSPECT = """
import importlib, json, sys
from flyte_private_registry._catalog import CATALOG
module = importlib.import_module(sys.argv[1])
registries = {r.registry: r.pull_secret_name for r in CATALOG.registries()}
print(json.dumps({"registries": registries}))
"""


def _tasks(archive: Path) -> dict[str, dict]:
    out = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.name.endswith("_1.pb"):
                continue
            spec = task_pb2.TaskSpec()
            spec.ParseFromString(tar.extractfile(member).read())
            pod = MessageToDict(spec.template.k8s_pod.pod_spec) if spec.template.HasField("k8s_pod") else {}
            images = {spec.template.container.image} if spec.template.container.image else set()
            images |= {c["image"] for c in pod.get("containers", []) if c.get("image")}
            secrets = {s["name"] for s in pod.get("imagePullSecrets", [])}
            out[spec.template.id.name] = {"images": images, "secrets": secrets}
    return out


@pytest.mark.parametrize("module", MODULES)
def test_example_serializes_with_pull_secrets(module, tmp_path):
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    (work / "flyte-private-registry.toml").unlink()  # the config example is tested separately
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }
    inspected = subprocess.run(
        [sys.executable, "-c", _INSPECT, module], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    data = json.loads(inspected.stdout)
    assert data["registries"], f"{module} declares no private registry"
    result = subprocess.run(
        [*PYFLYTE_WITHOUT_BUILDS, "--pkgs", module, "package", "--force", "--output", "out.tgz"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = _tasks(work / "out.tgz")
    assert tasks
    prefixes = {RegistryPrefix.parse(p): secret for p, secret in data["registries"].items()}
    for name, task in tasks.items():
        needed = set()
        for image in task["images"]:
            ref = ImageReference.parse(image)
            needed |= {secret for prefix, secret in prefixes.items() if prefix.covers(ref.host, ref.repository)}
        assert task["secrets"] == needed, f"{name}: images {task['images']} secrets {task['secrets']}"
    assert any(task["secrets"] for task in tasks.values()), f"no task of {module} uses a private image"


def test_mixed_example_details(tmp_path):
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }
    subprocess.run(
        [*PYFLYTE_WITHOUT_BUILDS, "--pkgs", "mixed", "package", "--force", "--output", "out.tgz"],
        cwd=work,
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    )
    tasks = _tasks(work / "out.tgz")
    assert tasks["mixed.clean"]["secrets"] == set()
    assert tasks["mixed.train"]["secrets"] == {"harbor-pull"}
    assert tasks["mixed.score_one"]["secrets"] == {"harbor-pull"}
    assert tasks["mixed.report"]["secrets"] == {"harbor-pull"}
    assert "harbor.example.com/ml/metrics:1.2" in tasks["mixed.report"]["images"]


def test_config_file_example_declares_registries(tmp_path, monkeypatch):
    from flyte_private_registry._catalog import CATALOG

    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", str(EXAMPLES / "flyte-private-registry.toml"))
    CATALOG.clear()
    harbor = CATALOG.for_spec("harbor.example.com/ml", "trainer")
    ecr = CATALOG.for_spec("123456789012.dkr.ecr.us-east-1.amazonaws.com/team", "trainer")
    assert harbor is not None and harbor.pull_secret == "harbor-pull"
    assert ecr is not None and ecr.provider.kind == "ecr"
