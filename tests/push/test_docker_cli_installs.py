"""``docker-cli`` installs what an ImageSpec asks for with plain ``docker build`` (no BuildKit syntax).

No Python base image and no package index can be reached here, so the generated Dockerfile and
context are pinned exactly, and a real build runs every RUN line on the rig's dockerd in a busybox
base whose ``python3`` and ``apt-get`` are scripts that record their arguments: docker's classic
builder parses the file and executes it, and the image shows what pip and apt were asked to do.
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from flytekit import __version__ as flytekit_version
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from helpers import prepend_path

from flyte_private_registry import ConfigurationError, PrivateRegistry
from flyte_private_registry.push._docker_cli_builder import DockerCLIBuilder, create_docker_context

LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
FLYTEKIT = f"flytekit=={flytekit_version}"


def _context(spec: ImageSpec, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The Dockerfile and the context's other top-level files."""
    context = tmp_path / f"ctx-{uuid.uuid4().hex[:6]}"
    context.mkdir()
    create_docker_context(spec, context)
    files = {p.name: p.read_text() for p in context.iterdir() if p.is_file() and p.name != "Dockerfile"}
    return (context / "Dockerfile").read_text(), files


def _spec(**kwargs) -> ImageSpec:
    kwargs.setdefault("name", f"app-{uuid.uuid4().hex[:8]}")
    kwargs.setdefault("registry", "127.0.0.1:5000/team")
    return ImageSpec(**kwargs)


CHECK_PYTHON3 = (
    "RUN command -v python3 >/dev/null 2>&1 || { echo 'flyte-private-registry docker-cli: base image {base} has "
    "no python3 on PATH; packages are installed with the Python of the base image. Use a base image with Python 3 "
    "and pip (or leave base_image unset), or set python_exec.' >&2; exit 1; }"
)
PIP_INSTALL = (
    "RUN python3 -m pip install --no-cache-dir --disable-pip-version-check {args}--requirement "
    "/tmp/flyte-private-registry/requirements.txt && rm -rf /tmp/flyte-private-registry"
)
COPY_REQUIREMENTS = 'COPY ["requirements.txt", "/tmp/flyte-private-registry/requirements.txt"]'


def test_the_readme_quickstart_spec_builds_on_a_python_base_with_pip(tmp_path):
    spec = _spec(name="trainer", packages=["flyte-private-registry", "pandas"])
    dockerfile, files = _context(spec, tmp_path)
    base = f"python:{LOCAL_PYTHON}-slim-bookworm"  # flytekit: the local interpreter's version
    assert dockerfile.splitlines() == [
        f"FROM {base}",
        'ENV PYTHONPATH="/root"',
        CHECK_PYTHON3.replace("{base}", base),
        COPY_REQUIREMENTS,
        PIP_INSTALL.format(args=""),
        "WORKDIR /root",
        f'ENV _F_IMG_ID="{spec.id}"',
    ]
    # flytekit's requirements_uv.txt: packages, then flytekit pinned to the version serializing
    assert files == {"requirements.txt": f"flyte-private-registry\npandas\n{FLYTEKIT}\n"}
    assert "--mount" not in dockerfile and "#syntax" not in dockerfile


def test_every_common_field_in_flytekit_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("numpy==2.1.0\nflytekit>=1.14\n")
    (tmp_path / "conf.toml").write_text("x = 1\n")
    base = ImageSpec(name="base", registry="127.0.0.1:5000/team", base_image="rig/busybox:latest")
    spec = _spec(
        base_image=base,
        python_version="3.11",
        requirements="requirements.txt",
        packages=["pandas>=2", "scikit-learn"],
        apt_packages=["git", "curl"],
        pip_index="https://pypi.internal/simple",
        pip_extra_index_url=["https://mirror.internal/simple", "https://other.internal/simple"],
        pip_extra_args="--pre",
        env={"PYTHONPATH": "/root:/opt/lib", "MODE": "two words"},
        entrypoint=["python3"],
        copy=["conf.toml"],
        commands=["echo hi > /hi.txt"],
    )
    dockerfile, files = _context(spec, tmp_path)
    base_name = base.image_name()
    version_check = (
        'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "3.11" else "flyte-private-registry '
        f'docker-cli: base image {base_name} has Python " + v + ", the ImageSpec asks for python_version 3.11: use '
        'a base image with that Python or unset python_version")'
    )
    assert dockerfile.splitlines() == [
        f"FROM {base_name}",
        "RUN apt-get update && apt-get install -y --no-install-recommends git curl && rm -rf /var/lib/apt/lists/*",
        'ENV PYTHONPATH="/root:/opt/lib"',  # the user's env overrides flytekit's PYTHONPATH=/root
        'ENV MODE="two words"',
        CHECK_PYTHON3.replace("{base}", base_name),
        f"RUN python3 -c {shlex.quote(version_check)}",
        COPY_REQUIREMENTS,
        PIP_INSTALL.format(
            args="--index-url https://pypi.internal/simple --extra-index-url https://mirror.internal/simple "
            "--extra-index-url https://other.internal/simple --pre "
        ),
        'ENTRYPOINT ["python3"]',
        'COPY ["copy/conf.toml", "/root/./"]',
        "RUN echo hi > /hi.txt",
        "WORKDIR /root",
        f'ENV _F_IMG_ID="{spec.id}"',
    ]
    # the requirements file's lines, then packages; flytekit is already named, so not added (as flytekit)
    assert files["requirements.txt"] == "numpy==2.1.0\nflytekit>=1.14\npandas>=2\nscikit-learn\n"


def test_python_exec_installs_into_a_venv_like_flytekit(tmp_path):
    spec = _spec(base_image="nvcr.io/nvidia/tensorrt:24.01-py3", python_exec="/usr/bin/python3", packages=["numpy"])
    dockerfile, _ = _context(spec, tmp_path)
    lines = dockerfile.splitlines()
    assert lines[2].startswith("RUN command -v /usr/bin/python3 >/dev/null 2>&1 || {")
    assert lines[3:7] == [
        "RUN /usr/bin/python3 -m venv --system-site-packages /root/.venv",
        'ENV PATH="/root/.venv/bin:$PATH"',
        COPY_REQUIREMENTS,
        PIP_INSTALL.format(args="").replace("RUN python3", "RUN /root/.venv/bin/python"),
    ]


def test_nothing_to_install_stays_offline_capable(tmp_path):
    dockerfile, files = _context(_spec(env={"A": "1"}), tmp_path)
    assert dockerfile.splitlines()[0] == "FROM scratch" and "pip" not in dockerfile and files == {}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"pip_secret_mounts": [(".netrc", "/root/.netrc")]}, "pip_secret_mounts (mounts BuildKit secrets"),
        ({"conda_packages": ["numpy"]}, "conda_packages (installs conda packages"),
        ({"conda_channels": ["nvidia"]}, "conda_channels ("),
        ({"cuda": "12.1"}, "cuda (flytekit refuses it too"),
        ({"requirements": "uv.lock"}, "requirements=uv.lock (installs with uv"),
        ({"requirements": "poetry.lock"}, "requirements=poetry.lock (installs with poetry"),
    ],
)
def test_buildkit_and_conda_only_fields_are_refused_before_any_docker_command(fields, named, tmp_path, monkeypatch):
    bin_dir = tmp_path / "fake-docker-bin"
    bin_dir.mkdir()
    log = tmp_path / "docker-calls.log"
    (bin_dir / "docker").write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(log))}\n')
    (bin_dir / "docker").chmod(0o755)
    prepend_path(monkeypatch, bin_dir)
    monkeypatch.chdir(tmp_path)
    for name in ("uv.lock", "poetry.lock", "pyproject.toml"):
        (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match=r"cannot honour .*" + __import__("re").escape(named)) as info:
        DockerCLIBuilder().build_image(_spec(**fields))
    assert 'PrivateRegistry(..., builder="default")' in str(info.value)
    assert not log.exists()


# -- a real build: every RUN line executes under docker's classic builder ---------------------

FAKE_PYTHON = r"""#!/bin/sh
# records how the Dockerfile calls python (and the requirements it is handed), like pip would see them
echo "python3 $*" >> /fake-calls.log
previous=""
for arg in "$@"; do
    if [ "$previous" = "--requirement" ]; then
        while IFS= read -r line; do echo "  requirement: $line" >> /fake-calls.log; done < "$arg"
    fi
    previous="$arg"
done
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> /fake-calls.log
"""


@pytest.fixture
def fake_python_base(docker_engine, busybox_image, tmp_path):
    """A busybox image whose python3 and apt-get record their arguments (no Python base can be pulled here)."""
    context = tmp_path / "fake-python-base"
    context.mkdir()
    (context / "python3").write_text(FAKE_PYTHON)
    (context / "apt-get").write_text(FAKE_APT)
    (context / "Dockerfile").write_text(
        textwrap.dedent(
            f"""\
            FROM {busybox_image}
            RUN ["/bin/busybox", "--install", "-s", "/bin"]
            COPY python3 /usr/local/bin/python3
            COPY apt-get /usr/bin/apt-get
            RUN chmod 755 /usr/local/bin/python3 /usr/bin/apt-get
            """
        )
    )
    tag = f"rig/fake-python:{uuid.uuid4().hex[:8]}"
    docker_engine.docker("build", "--tag", tag, str(context), env={"DOCKER_BUILDKIT": "0"})
    return tag


def test_packages_requirements_apt_and_index_really_run_with_plain_docker_build(
    docker_engine, fake_python_base, basic_registry, registry_users, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("numpy==2.1.0\n")
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    index = f"http://{basic_registry.host}/simple"  # any listener will do: the pre-build probe only connects
    spec = _spec(
        registry=registry.registry,
        base_image=fake_python_base,
        python_version="3.11",
        requirements="requirements.txt",
        packages=["pandas>=2"],
        apt_packages=["git"],
        pip_index=index,
        pip_extra_index_url=["https://mirror.internal/simple"],
        env={"MODE": "test"},
        commands=["echo done > /commands.txt"],
    )
    tag_before = spec.tag  # flytekit's hash
    ImageBuildEngine.build.cache_clear()
    try:
        ImageBuildEngine.build(spec)
    finally:
        ImageBuildEngine.build.cache_clear()
    image = spec.image_name()
    assert image.split("@")[0].endswith(f":{tag_before}") and "Verified" in capfd.readouterr().out  # pinned

    calls = docker_engine.docker("run", "--rm", "--network", "none", image, "cat", "/fake-calls.log").stdout
    lines = calls.splitlines()
    assert lines[:2] == ["apt-get update", "apt-get install -y --no-install-recommends git"]
    assert lines[2].startswith('python3 -c import sys; v = "%d.%d" % sys.version_info[:2];')
    assert lines[3:] == [
        "python3 -m pip install --no-cache-dir --disable-pip-version-check "
        f"--index-url {index} --extra-index-url https://mirror.internal/simple "
        "--requirement /tmp/flyte-private-registry/requirements.txt",
        "  requirement: numpy==2.1.0",
        "  requirement: pandas>=2",
        f"  requirement: {FLYTEKIT}",
    ]
    ran = docker_engine.docker(
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "pwd; cat /commands.txt; test ! -e /tmp/flyte-private-registry",
    )
    assert ran.stdout == "/root\ndone\n"  # WORKDIR /root; the requirements were removed after the install
    config = json.loads(docker_engine.docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["WorkingDir"] == "/root"
    assert {"PYTHONPATH=/root", "MODE=test", f"_F_IMG_ID={spec.id}"} <= set(config["Env"])


def test_no_reachable_index_is_one_clear_error_before_any_build(
    docker_engine, basic_registry, registry_users, tmp_path, monkeypatch, capfd
):
    from rig import free_port

    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    closed = free_port()
    spec = _spec(
        registry=registry.registry, packages=["pandas"], pip_index=f"http://user:s3cret@127.0.0.1:{closed}/simple"
    )
    ImageBuildEngine.build.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as info:
            ImageBuildEngine.build(spec)
    finally:
        ImageBuildEngine.build.cache_clear()
    message = str(info.value)
    assert f"a reachable Python package index (http://127.0.0.1:{closed}/simple)" in message
    assert f"cannot connect to 127.0.0.1:{closed}" in message
    assert "bake the packages into a base_image" in message and "point pip_index at a mirror" in message
    assert "s3cret" not in message
    assert message.count("\n- ") == 1  # the daemon is fine: one thing missing
    assert "Run command:" not in capfd.readouterr().out  # nothing was built
