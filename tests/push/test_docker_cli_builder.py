"""The ``docker-cli`` builder against flytekit's default builder, field by field (installs: test_docker_cli_installs).

The reference is flytekit's own ``create_docker_context`` (it only writes files, so it runs
offline): for the same ImageSpec, the files that both Dockerfiles' COPY instructions put under
``/root`` must be the same. The last test builds for real on the rig's dockerd, pushes through the
private-registry wrapper into ``basic_registry``, pulls the image back and reads the files in a
container.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import posixpath
import shlex
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.constants import CopyFileDetection
from flytekit.core.python_auto_container import update_image_spec_copy_handling
from flytekit.image_spec.default_builder import create_docker_context as flytekit_create_docker_context
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from helpers import prepend_path

from flyte_private_registry import PrivateRegistry
from flyte_private_registry.push._docker_cli_builder import (
    HONOURED,
    IGNORED,
    REFUSED,
    DockerCLIBuilder,
    create_docker_context,
)

# -- helpers ------------------------------------------------------------------------------------


def _copy_instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(source in context, destination) of every COPY, shell form (flytekit's) or JSON form (ours)."""
    result = []
    for line in dockerfile.splitlines():
        if not line.startswith("COPY "):
            continue
        rest = line[len("COPY ") :].strip()
        args = json.loads(rest) if rest.startswith("[") else [a for a in shlex.split(rest) if not a.startswith("--")]
        assert len(args) == 2, line
        result.append((args[0], args[1]))
    return result


def _image_root(context: Path) -> dict[str, bytes]:
    """The files the context's Dockerfile COPYs into the image, by image path (docker's COPY rules)."""
    tree: dict[str, bytes] = {}
    for source, destination in _copy_instructions((context / "Dockerfile").read_text()):
        path = context / source
        assert path.exists(), f"COPY source {source} is missing from the context"
        if path.is_dir():  # a directory's contents go into the destination directory
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                tree[posixpath.normpath(posixpath.join(destination, file.relative_to(path).as_posix()))] = (
                    file.read_bytes()
                )
        else:
            target = posixpath.join(destination, path.name) if destination.endswith("/") else destination
            tree[posixpath.normpath(target)] = path.read_bytes()
    return tree


def _ours(spec: ImageSpec, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    context = tmp_path / f"ours-{uuid.uuid4().hex[:6]}"
    context.mkdir()
    create_docker_context(spec, context)
    return (context / "Dockerfile").read_text(), _image_root(context)


def _flytekit(spec: ImageSpec, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    context = tmp_path / f"flytekit-{uuid.uuid4().hex[:6]}"
    context.mkdir()
    flytekit_create_docker_context(spec, context)
    return (context / "Dockerfile").read_text(), _image_root(context)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def docker_log(tmp_path, monkeypatch):
    """A `docker` first on PATH that records its arguments and succeeds; returns the log file."""
    bin_dir = tmp_path / "fake-docker-bin"
    bin_dir.mkdir()
    log = tmp_path / "docker-calls.log"
    script = bin_dir / "docker"
    script.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(log))}\nexit 0\n')
    script.chmod(0o755)
    prepend_path(monkeypatch, bin_dir)
    return log


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The build's working directory (copy entries are relative to it), with files and directories."""
    path = tmp_path / "work"
    _write(
        path,
        {
            "top.txt": "top\n",
            "conf/settings.toml": "[settings]\nmode = 'offline'\n",
            "data/nested/deep.csv": "a,b\n1,2\n",
            "data/nested/more/rows.csv": "3,4\n",
            "assets/a.txt": "asset a\n",
            "assets/sub/b.txt": "asset b\n",
        },
    )
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A source root with a package, a script and files no module loads; the package and script are imported."""
    root = tmp_path / "project"
    package = f"fprpkg_{uuid.uuid4().hex[:8]}"
    script = f"fprscript_{uuid.uuid4().hex[:8]}"
    _write(
        root,
        {
            f"{package}/__init__.py": "",
            f"{package}/mod.py": "VALUE = 42\n",
            f"{package}/unused.py": "NEVER = 'imported'\n",
            f"{script}.py": f"from {package}.mod import VALUE\n",
            "notes.txt": "not a module\n",
        },
    )
    monkeypatch.syspath_prepend(str(root))
    importlib.import_module(script)
    yield root, package, script
    for name in [n for n in sys.modules if n.startswith((package, script))]:
        del sys.modules[name]


def _spec(**kwargs) -> ImageSpec:
    kwargs.setdefault("name", f"app-{uuid.uuid4().hex[:8]}")
    kwargs.setdefault("registry", "127.0.0.1:5000/team")
    return ImageSpec(**kwargs)


# -- copy: the same layout as flytekit -----------------------------------------------------------


def test_copy_of_files_and_directories_lands_where_flytekit_puts_it(workdir, tmp_path):
    spec = _spec(
        base_image="rig/busybox:latest",
        copy=["top.txt", "conf/settings.toml", "assets", "data/nested/", "./data/nested/deep.csv"],
    )
    dockerfile, ours = _ours(spec, tmp_path)
    flytekit_dockerfile, theirs = _flytekit(spec, tmp_path)

    assert ours == {
        "/root/top.txt": b"top\n",
        "/root/conf/settings.toml": b"[settings]\nmode = 'offline'\n",
        "/root/assets/a.txt": b"asset a\n",
        "/root/assets/sub/b.txt": b"asset b\n",
        "/root/data/nested/deep.csv": b"a,b\n1,2\n",
        "/root/data/nested/more/rows.csv": b"3,4\n",
    }
    assert ours == theirs
    # the same destinations, in the same order, as flytekit writes them
    assert [d for _, d in _copy_instructions(dockerfile)] == [d for _, d in _copy_instructions(flytekit_dockerfile)]
    assert dockerfile.startswith("FROM rig/busybox:latest\n")


@pytest.mark.parametrize("entry", ["/etc/passwd", "../outside.txt", "conf/../../outside.txt"])
def test_copy_refuses_absolute_and_parent_paths_like_flytekit(workdir, tmp_path, entry):
    (tmp_path / "outside.txt").write_text("outside\n")
    spec = _spec(copy=[entry])
    with pytest.raises(ValueError, match=r"Absolute paths or paths with '\.\.' are not allowed"):
        _flytekit(spec, tmp_path)
    with pytest.raises(ValueError, match=r"Absolute paths or paths with '\.\.' are not allowed"):
        _ours(spec, tmp_path)


def test_a_copy_entry_cannot_collide_with_the_context_own_files(workdir, tmp_path):
    """flytekit stages `copy` entries at the context root, next to its Dockerfile and src/; we do not."""
    _write(workdir, {"Dockerfile": "FROM user-own-dockerfile\n", "source/x.txt": "x\n", "copy/y.txt": "y\n"})
    spec = _spec(copy=["Dockerfile", "source", "copy"])
    dockerfile, ours = _ours(spec, tmp_path)
    assert dockerfile.startswith("FROM scratch\n")
    assert ours == {
        "/root/Dockerfile": b"FROM user-own-dockerfile\n",
        "/root/source/x.txt": b"x\n",
        "/root/copy/y.txt": b"y\n",
    }


# -- source_root + source_copy_mode --------------------------------------------------------------


def test_pyflyte_source_root_copies_the_loaded_modules_like_flytekit(project, workdir, tmp_path):
    root, package, script = project
    spec = _spec(base_image="rig/busybox:latest", copy=["conf/settings.toml"])
    # what pyflyte does during non-fast serialization (`pyflyte package`, `pyflyte register --copy none` ...)
    update_image_spec_copy_handling(
        spec, SerializationSettings(image_config=ImageConfig.auto_default_image(), source_root=str(root))
    )
    assert (spec.source_root, spec.source_copy_mode) == (str(root), CopyFileDetection.LOADED_MODULES)

    dockerfile, ours = _ours(spec, tmp_path)
    _, theirs = _flytekit(spec, tmp_path)
    assert ours == {
        f"/root/{package}/__init__.py": b"",
        f"/root/{package}/mod.py": b"VALUE = 42\n",
        f"/root/{script}.py": f"from {package}.mod import VALUE\n".encode(),
        "/root/conf/settings.toml": b"[settings]\nmode = 'offline'\n",
    }
    assert ours == theirs
    # source first, then copy entries (a copy entry overrides a source file of the same path), then commands
    assert [d for _, d in _copy_instructions(dockerfile)] == ["/root", "/root/conf/"]


def test_source_copy_mode_all_applies_flytekit_ignore_groups(project, workdir, tmp_path):
    root, package, _ = project
    _write(
        root,
        {
            ".gitignore": "build/\n",
            ".dockerignore": "secrets.env\n",
            "secrets.env": "TOKEN=do-not-ship\n",
            "build/artifact.bin": "binary\n",
            f"{package}/__pycache__/mod.cpython-311.pyc": "bytecode",
        },
    )
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    spec = _spec(base_image="rig/busybox:latest", source_root=str(root), source_copy_mode=CopyFileDetection.ALL)
    _, ours = _ours(spec, tmp_path)
    _, theirs = _flytekit(spec, tmp_path)
    assert ours == theirs
    assert f"/root/{package}/unused.py" in ours and "/root/notes.txt" in ours
    ignored = ("/root/secrets.env", "/root/build/artifact.bin", f"/root/{package}/__pycache__/mod.cpython-311.pyc")
    assert not set(ignored) & set(ours)


def test_no_copy_mode_copies_no_source(project, tmp_path):
    root, _, _ = project
    spec = _spec(source_root=str(root), source_copy_mode=CopyFileDetection.NO_COPY)
    dockerfile, ours = _ours(spec, tmp_path)
    assert ours == {} and "COPY" not in dockerfile


# -- other fields --------------------------------------------------------------------------------


def test_env_entrypoint_and_commands_as_flytekit_runs_them(tmp_path):
    spec = _spec(
        base_image="rig/busybox:latest",
        env={"B": "two words", "A": "1"},
        entrypoint=[],
        commands=["cd /opt", "touch here"],
    )
    dockerfile, _ = _ours(spec, tmp_path)
    assert dockerfile == textwrap.dedent(
        f"""\
        FROM rig/busybox:latest
        ENV PYTHONPATH="/root"
        ENV B="two words"
        ENV A="1"
        ENTRYPOINT []
        RUN cd /opt && touch here
        WORKDIR /root
        ENV _F_IMG_ID="{spec.id}"
        """
    )


REFUSED_VALUES = {
    "pip_secret_mounts": [(".netrc", "/root/.netrc")],
    "conda_packages": ["numpy"],
    "conda_channels": ["nvidia"],
    "cuda": "12.1",
    "cudnn": "8",
}


# ImageSpec's fields in flytekit 1.16.31; a later flytekit's new fields are refused when set (tested below).
IMAGESPEC_FIELDS_1_16_31 = {
    "name", "python_version", "builder", "source_root", "env", "registry", "packages", "conda_packages",
    "conda_channels", "requirements", "apt_packages", "cuda", "cudnn", "base_image", "platform", "pip_index",
    "pip_extra_index_url", "pip_secret_mounts", "pip_extra_args", "registry_config", "entrypoint", "commands",
    "tag_format", "source_copy_mode", "copy", "python_exec", "runtime_packages", "builder_options", "builder_config",
}  # fmt: skip


def test_every_imagespec_field_is_classified_once():
    installed = {field.name for field in dataclasses.fields(ImageSpec)}
    assert not IMAGESPEC_FIELDS_1_16_31 - installed
    groups = [HONOURED, set(IGNORED), set(REFUSED)]
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "a field is in two groups"
    assert set().union(*groups) == IMAGESPEC_FIELDS_1_16_31
    assert set(REFUSED_VALUES) == set(REFUSED)


@pytest.mark.parametrize("field", sorted(REFUSED_VALUES))
def test_a_field_needing_buildkit_or_conda_is_refused_before_any_docker_command(field, workdir, docker_log):
    (workdir / "requirements.txt").write_text("numpy\n")
    spec = _spec(copy=["top.txt"], **{field: REFUSED_VALUES[field]})
    with pytest.raises(ValueError) as info:
        DockerCLIBuilder().build_image(spec)
    message = str(info.value)
    assert f"cannot honour {field} (" in message
    assert 'PrivateRegistry(..., builder="default")' in message and "FLYTE_PRIVATE_REGISTRY_BUILDER=default" in message
    assert "base_image" in message
    assert not docker_log.exists(), docker_log.read_text()


def test_all_refused_fields_are_named_in_one_error(workdir, docker_log):
    spec = _spec(conda_packages=["numpy"], cuda="12.1", pip_secret_mounts=[(".netrc", "/root/.netrc")])
    with pytest.raises(ValueError, match=r"conda_packages \(.*cuda \(.*pip_secret_mounts \("):
        DockerCLIBuilder().build_image(spec)
    assert not docker_log.exists()


@dataclasses.dataclass
class _FutureImageSpec(ImageSpec):
    """An ImageSpec from a later flytekit, with a field this builder has never heard of."""

    gpu_arch: str | None = None
    reproducible: bool = False


def test_an_unknown_field_is_refused_unless_left_at_its_default(workdir, docker_log, tmp_path):
    _ours(_FutureImageSpec(name="future", copy=["top.txt"]), tmp_path)  # defaults: fine
    with pytest.raises(ValueError, match=r"does not know the ImageSpec field\(s\) gpu_arch, reproducible"):
        DockerCLIBuilder().build_image(_FutureImageSpec(name="future", gpu_arch="sm90", reproducible=True))
    assert not docker_log.exists()


def test_ignored_fields_do_not_change_the_build(workdir, docker_log, tmp_path):
    plain = _spec(name="same", copy=["top.txt"], base_image="rig/busybox:latest")
    decorated = dataclasses.replace(
        plain,
        builder="docker-cli",
        tag_format="{spec_hash}-dev",
        runtime_packages=["pandas"],
        builder_options={"anything": True},
        builder_config={"uv_image": "mirror/uv:1"},
        registry_config="registry.json",
    )

    def without_id(dockerfile: str) -> list[str]:  # _F_IMG_ID is the spec's id, which every field changes
        return [line for line in dockerfile.splitlines() if not line.startswith("ENV _F_IMG_ID=")]

    assert without_id(_ours(decorated, tmp_path)[0]) == without_id(_ours(plain, tmp_path)[0])
    with pytest.warns(UserWarning, match="ignores registry_config"):
        image = DockerCLIBuilder().build_image(decorated)
    assert image == decorated.image_name() and image.endswith("-dev")
    calls = docker_log.read_text().splitlines()
    assert len(calls) == 2, calls
    assert calls[0].startswith(f"build --tag {image} --platform linux/amd64 /")
    assert calls[1] == f"push {image}"


def test_unsupported_fields_via_the_wrapper_fail_before_any_docker_command(
    basic_registry, registry_users, workdir, docker_log, monkeypatch
):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    ImageBuildEngine.build.cache_clear()
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    spec = _spec(registry=registry.registry, copy=["top.txt"], conda_packages=["numpy"])
    assert spec.builder == "private-registry"
    try:
        with pytest.raises(ValueError, match=r"cannot honour conda_packages"):
            ImageBuildEngine.build(spec)
    finally:
        ImageBuildEngine.build.cache_clear()
    assert not docker_log.exists(), docker_log.read_text()


# -- a real build ---------------------------------------------------------------------------------


def test_real_build_push_pull_and_run(
    docker_engine, busybox_image, basic_registry, registry_users, project, workdir, tmp_path, monkeypatch
):
    root, package, script = project
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_BUILDER", "docker-cli")
    registry = PrivateRegistry(f"{basic_registry.host}/team", username="alice", password=registry_users.alice_password)
    spec = _spec(
        registry=registry.registry,
        base_image=busybox_image,  # local to the engine: the classic builder uses it without pulling
        copy=["top.txt", "conf/settings.toml", "assets", "data/nested"],
        env={"GREETING": "hello"},
        # one shell: the `cd` holds for the next command, as with flytekit's default builder
        commands=["cd /root/assets", 'echo "$GREETING from $(cat sub/b.txt)" > made-by-commands.txt'],
    )
    update_image_spec_copy_handling(
        spec, SerializationSettings(image_config=ImageConfig.auto_default_image(), source_root=str(root))
    )
    assert spec.builder == "private-registry"
    image = spec.image_name()
    ImageBuildEngine.build.cache_clear()
    try:
        ImageBuildEngine.build(spec)
    finally:
        ImageBuildEngine.build.cache_clear()

    # drop the local copy and pull what the registry holds
    docker_engine.docker("rmi", image)
    login_env = {"DOCKER_CONFIG": str(tmp_path / "puller")}
    password = registry_users.alice_password
    docker_engine.docker("login", "-u", "alice", "--password-stdin", basic_registry.host, input=password, env=login_env)
    docker_engine.docker("pull", image, env=login_env)

    expected = {
        "/root/top.txt": "top\n",
        "/root/conf/settings.toml": "[settings]\nmode = 'offline'\n",
        "/root/assets/a.txt": "asset a\n",
        "/root/assets/sub/b.txt": "asset b\n",
        "/root/data/nested/deep.csv": "a,b\n1,2\n",
        "/root/data/nested/more/rows.csv": "3,4\n",
        f"/root/{package}/mod.py": "VALUE = 42\n",
        f"/root/{script}.py": f"from {package}.mod import VALUE\n",
        "/root/assets/made-by-commands.txt": "hello from asset b\n",
    }
    for path, content in expected.items():
        ran = docker_engine.docker("run", "--rm", "--network", "none", image, "cat", path, check=False)
        assert (ran.returncode, ran.stdout) == (0, content), f"{path}: {ran.stderr}"
    for absent in (f"/root/{package}/unused.py", "/root/notes.txt", "/root/settings.toml", "/root/nested"):
        ran = docker_engine.docker("run", "--rm", "--network", "none", image, "test", "-e", absent, check=False)
        assert ran.returncode == 1, f"{absent} should not be in the image"
