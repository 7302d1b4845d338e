"""The other loaded images are checked alongside while flytekit serializes (push/_lookahead.py).

Real rig: the TLS + Bearer-token registry, whose access log counts every request, and the token
server, which counts every token request. flytekit's own serialization path is driven as
``pyflyte package`` drives it: tasks loaded, then ``task.get_image(settings)`` one task at a time
under the run's serialization settings (``update_image_spec_copy_handling``, then
``ImageBuildEngine.build``). The tags are flytekit's hashes, not fixed tags.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flytekit import task
from flytekit.configuration import FastSerializationSettings, ImageConfig, SerializationSettings
from flytekit.constants import CopyFileDetection
from flytekit.core.context_manager import FlyteContextManager
from flytekit.image_spec.image_spec import ImageBuildEngine, ImageSpec
from helpers import forget_registry_cache, push_oci_manifest
from pydantic import SecretStr
from rig import FaultRegistry, LatencyProxy, Registry
from rig.slow_connect.sitecustomize import slowed

from flyte_private_registry import PrivateRegistry
from flyte_private_registry.credentials import Credential
from flyte_private_registry.push import _lookahead, _platform_cache

pytestmark = pytest.mark.integration

TOKEN = "tok-" + "7a" * 16

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/[^ ]*) HTTP/1\.1" (?P<status>\d{3})')


class _Log:
    """(method, path) of the registry's v2 requests from now on."""

    def __init__(self, registry: Registry) -> None:
        self.path, self.offset = registry.log_path, registry.log_path.stat().st_size

    def requests(self) -> list[tuple[str, str]]:
        text = self.path.read_bytes()[self.offset :].decode("utf-8", "replace")
        return [(m["method"], m["path"]) for m in _ACCESS.finditer(text)]

    def of(self, repository: str) -> list[tuple[str, str]]:
        """(method, ``manifests`` or ``blobs``) for one repository."""
        return [(m, p.split("/")[-2]) for m, p in self.requests() if p.startswith(f"/v2/{repository}/")]

    def wait_for(self, repositories: list[str], count: int, seconds: float = 10.0) -> bool:
        """Whether each repository has ``count`` requests within ``seconds`` (the log is written per answer)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(len(self.of(r)) >= count for r in repositories):
                return True
            time.sleep(0.05)
        return False


class _Run:
    """One workflow module's worth of tasks on ImageSpecs under a fresh prefix, each image pushed."""

    def __init__(
        self, registry: Registry, password: str, ca_file: Path, count: int, push: bool = True, host: str | None = None
    ) -> None:
        self.registry, self.ca_file = registry, ca_file
        run = uuid.uuid4().hex[:8]
        self.prefix = f"{host or registry.host}/la-{run}"  # host: another way to reach the registry
        self.specs = [ImageSpec(name=f"app{i}", registry=self.prefix, env={"I": str(i)}) for i in range(count)]
        self.tasks = [_task(spec, f"la_{run}_{i}") for i, spec in enumerate(self.specs)]
        self.repositories = [f"la-{run}/app{i}" for i in range(count)]
        # flytekit's tag, worked out on an equal spec so the real ones are tagged only when flytekit asks
        self.tags = [ImageSpec(name=s.name, registry=s.registry, env=s.env).tag for s in self.specs]
        credential = Credential("alice", SecretStr(password), source="test")
        self.digests = [
            push_oci_manifest(registry, credential, ca_file, repository, tag, label=repository) if push else ""
            for repository, tag in zip(self.repositories, self.tags, strict=True)
        ]
        self.password = password
        forget_registry_cache()  # a first run: nothing remembered (the pushes above cached a token)

    def declare(self) -> PrivateRegistry:
        """A new declaration starts a new builder session: what a new ``pyflyte`` process has."""
        return PrivateRegistry(self.prefix, username="alice", password=self.password, ca_file=self.ca_file)

    @contextlib.contextmanager
    def first_asked(self, count: int = 2) -> Iterator[tuple[_Log, SerializationSettings, str]]:
        """Serializing, once flytekit asked about the first image and ``count`` requests for each other one came in.

        Nobody has asked about the others yet: those requests were made alongside.
        """
        self.declare()
        log = _Log(self.registry)
        settings = _settings()
        with _serializing(settings):
            first = self.tasks[0].get_image(settings)
            assert log.wait_for(self.repositories[1:], count), log.requests()
            yield log, settings, first

    def expected(self, index: int) -> str:
        return f"{self.prefix}/app{index}:{self.tags[index]}@{self.digests[index]}"


def _task(spec: ImageSpec, name: str):
    def fn(x: int) -> int:
        return x

    fn.__name__ = fn.__qualname__ = name
    return task(container_image=spec)(fn)


def _settings(*, fast: bool = True, source_root: str | None = None) -> SerializationSettings:
    return SerializationSettings(
        image_config=ImageConfig.auto_default_image(),
        source_root=source_root,
        fast_serialization_settings=FastSerializationSettings(enabled=fast),
    )


def _serializing(settings: SerializationSettings):
    return FlyteContextManager.with_context(FlyteContextManager.current_context().with_serialization_settings(settings))


@pytest.fixture(autouse=True)
def _fresh_process() -> Iterator[None]:
    """What a new process knows: nothing in memory, flytekit's build cache empty."""
    ImageBuildEngine.build.cache_clear()
    _platform_cache.forget()
    yield
    ImageBuildEngine.build.cache_clear()


@pytest.fixture
def rig(token_registry, token_server, registry_users, ca) -> _Run:
    return _Run(token_registry, registry_users.alice_password, ca.ca_file, 4)


def test_a_first_run_checks_the_other_images_alongside_and_each_image_once(rig, token_registry, token_server):
    token_server.clear_requests()
    with rig.first_asked() as (log, settings, first):
        rest = [t.get_image(settings) for t in rig.tasks[1:]]

    assert [first, *rest] == [rig.expected(i) for i in range(4)]
    for repository in rig.repositories:  # one GET whose body the platform check used, one config read
        assert log.of(repository) == [("GET", "manifests"), ("GET", "blobs")], repository
    tokens = token_server.requests_by("alice")
    assert len(tokens) == 1, tokens  # the helpers use the first check's token, never one of their own
    assert sorted(tokens[0].scopes) == sorted(f"repository:{r}:pull" for r in rig.repositories)
    assert sum(1 for m, p in log.requests() if p == "/v2/") == 1


def test_a_later_run_heads_the_others_alongside_with_no_token_request(rig, token_registry, token_server):
    settings = _settings()
    rig.declare()
    with _serializing(settings):
        [t.get_image(settings) for t in rig.tasks]

    ImageBuildEngine.build.cache_clear()
    _platform_cache.forget()
    for spec in rig.specs:  # flytekit's tag is per spec object and process: a new process works it out again
        vars(spec).pop("tag", None)
    token_server.clear_requests()
    with rig.first_asked(1) as (log, settings, first):
        rest = [t.get_image(settings) for t in rig.tasks[1:]]

    assert [first, *rest] == [rig.expected(i) for i in range(4)]
    assert all(log.of(r) == [("HEAD", "manifests")] for r in rig.repositories), log.requests()
    assert token_server.requests == []


def test_a_wrong_guess_costs_requests_never_a_wrong_answer(rig, token_registry, registry_users, ca):
    """The spec changes after the guess: the tag flytekit then asks about is checked as usual."""
    changed = ImageSpec(name="app1", registry=rig.prefix, env={"I": "changed"})
    credential = Credential("alice", SecretStr(registry_users.alice_password), source="test")
    digest = push_oci_manifest(token_registry, credential, ca.ca_file, rig.repositories[1], changed.tag, label="new")
    with rig.first_asked() as (log, settings, _):
        rig.specs[1].env = {"I": "changed"}  # e.g. a module that sets the spec up after import
        image = rig.tasks[1].get_image(settings)

    assert image == f"{rig.prefix}/app1:{changed.tag}@{digest}"
    paths = [p for m, p in log.requests() if m == "GET" and p.startswith(f"/v2/{rig.repositories[1]}/manifests/")]
    assert paths == [f"/v2/{rig.repositories[1]}/manifests/{t}" for t in (rig.tags[1], changed.tag)]


@pytest.mark.parametrize("far", [False, True], ids=["near", "far"])
def test_a_registry_across_a_network_is_checked_on_more_connections(
    token_registry, token_server, registry_users, ca, monkeypatch, far
):
    """A helper's connect that waits a round trip brings more helpers; a registry nearby keeps three.

    The registry is reached through a LatencyProxy (20 ms round trips when far). A userspace proxy
    cannot delay the kernel's TCP handshake, so the connect's own round trip is a stand-in: a
    sleep in ``socket.create_connection`` for the proxy's port (rig/slow_connect, as benchmark
    processes get it).
    """
    with LatencyProxy.start(("127.0.0.1", token_registry.port), 0.01 if far else 0.0) as proxy:
        if far:
            monkeypatch.setattr(socket, "create_connection", slowed({proxy.port}, 0.02))
        run = _Run(token_registry, registry_users.alice_password, ca.ca_file, 10, host=proxy.address)
        token_server.clear_requests()
        run.declare()
        settings = _settings()
        with _serializing(settings):
            images = [t.get_image(settings) for t in run.tasks]

    assert images == [run.expected(i) for i in range(10)]
    assert len(token_server.requests_by("alice")) == 1  # the helpers waited for the first check's token
    helpers = proxy.connections - 1  # the first check's own connection served its ping and its reads
    if far:
        assert _lookahead.WORKERS < helpers <= _lookahead.FAR_WORKERS
    else:
        assert helpers == _lookahead.WORKERS


def test_an_answer_older_than_the_freshness_limit_is_not_taken(rig, monkeypatch):
    monkeypatch.setattr(_lookahead, "FRESH_SECONDS", 0.0)
    with rig.first_asked() as (log, settings, _):
        assert rig.tasks[1].get_image(settings) == rig.expected(1)

    # read alongside (manifest, config), then checked again when asked: the platforms are cached by digest
    assert log.of(rig.repositories[1]) == [("GET", "manifests"), ("GET", "blobs"), ("GET", "manifests")]


@pytest.mark.parametrize("case", ["not-serializing", "tag-hashes-files"])
def test_nothing_is_guessed_without_the_settings_or_when_the_tag_hashes_files(
    rig, token_registry, registry_users, ca, tmp_path, case: str
):
    """Outside serialization nothing says how flytekit will tag; with copy handling the tag hashes files."""
    rig.declare()
    log = _Log(token_registry)
    if case == "not-serializing":
        ImageBuildEngine.build(rig.specs[0])
    else:
        # non-fast registration: flytekit copies the loaded modules into each image and hashes them into its tag
        settings = _settings(fast=False, source_root=str(tmp_path))
        twin = ImageSpec(name="app0", registry=rig.prefix, env={"I": "0"}, source_root=str(tmp_path))
        twin.source_copy_mode = CopyFileDetection.LOADED_MODULES
        credential = Credential("alice", SecretStr(registry_users.alice_password), source="test")
        digest = push_oci_manifest(token_registry, credential, ca.ca_file, rig.repositories[0], twin.tag, label="f")
        log = _Log(token_registry)
        with _serializing(settings):
            assert rig.tasks[0].get_image(settings) == f"{rig.prefix}/app0:{twin.tag}@{digest}"
    assert log.of(rig.repositories[0]), log.requests()
    assert not log.wait_for(rig.repositories[1:2], 1, seconds=1.0), log.requests()
    assert all(log.of(r) == [] for r in rig.repositories[1:])


def test_a_failing_helper_leaves_no_traceback_and_the_image_is_checked_as_usual(
    rig, token_registry, monkeypatch, capfd
):
    """A bug in a helper thread (simulated: ``_check`` raises) costs only the usual check."""
    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)

    def broken(*args: object) -> str:
        raise RuntimeError("helper bug")

    monkeypatch.setattr(_lookahead, "_check", broken)
    rig.declare()
    log = _Log(token_registry)
    settings = _settings()
    with _serializing(settings):
        started = time.monotonic()
        images = [t.get_image(settings) for t in rig.tasks]
        took = time.monotonic() - started
    assert images == [rig.expected(i) for i in range(4)]
    assert took < 5, took  # nobody waits for an answer that will not come
    assert hooked == []
    assert "Traceback" not in capfd.readouterr().err
    for repository in rig.repositories:
        assert log.of(repository) == [("GET", "manifests"), ("GET", "blobs")], repository


def test_missing_images_are_built_as_before(token_registry, token_server, registry_users, ca):
    """Nothing pushed: every image is found missing (one found 404 stops the guesses not yet started)."""
    from flyte_private_registry.push._builder import BUILDER_NAME

    run = _Run(token_registry, registry_users.alice_password, ca.ca_file, 4, push=False)
    run.declare()
    builder = ImageBuildEngine.get_registry()[BUILDER_NAME][0]
    settings = _settings()
    log = _Log(token_registry)
    with _serializing(settings):
        answers = []
        for spec in run.specs:
            from flytekit.core.python_auto_container import update_image_spec_copy_handling

            update_image_spec_copy_handling(spec, settings)
            answers.append(builder.should_build(spec))
    assert answers == [True] * 4
    for repository in run.repositories:  # whoever asked, every image is checked and found missing
        assert log.of(repository), repository


def test_a_refused_password_is_explained_once_and_nothing_is_guessed(rig, token_registry, token_server):
    """The login comes before any guess: a refusal raises the usual error, and no helper starts."""
    from flyte_private_registry import AuthenticationError

    PrivateRegistry(rig.prefix, username="alice", password="not-her-password", ca_file=rig.ca_file)
    token_server.clear_requests()
    log = _Log(token_registry)
    settings = _settings()
    with _serializing(settings), pytest.raises(AuthenticationError) as refused:
        rig.tasks[0].get_image(settings)
    assert "alice" in str(refused.value) and "not-her-password" not in str(refused.value)
    time.sleep(0.5)
    assert all(log.of(r) == [] for r in rig.repositories[1:]), log.requests()


# -- a misbehaving registry: the same outcome with the helpers as without -----------------------------
FAULTS = [  # (id, the fault, how the first image ends)
    ("ok", {"fault": "ok", "auth": "bearer"}, "HOST/team/app0:v1@sha256:"),
    ("5xx", {"fault": "5xx-then-ok", "times": 3}, "HOST/team/app0:v1@sha256:"),
    ("429", {"fault": "429-then-ok", "times": 3, "retry_after": "0"}, "HOST/team/app0:v1@sha256:"),
    ("reset", {"fault": "reset", "times": 3}, "HOST/team/app0:v1@sha256:"),
    ("echo-bearer", {"fault": "echo-bearer", "auth": "bearer"}, "AuthenticationError"),
]


def _outcomes(options: dict, password: str, ca, tmp: Path) -> list[str]:
    """Each task's image, or the library error that stopped the run, against a fresh fault registry."""
    from flyte_private_registry import FlytePrivateRegistryError

    ImageBuildEngine.build.cache_clear()
    _platform_cache.forget()
    forget_registry_cache()
    run = uuid.uuid4().hex[:8]
    with FaultRegistry("alice", password, token=TOKEN, ca=ca, **options) as reg:
        prefix = f"{reg.host}/team"
        tasks = [_task(ImageSpec(name=f"app{i}", registry=prefix, tag_format="v1"), f"f_{run}_{i}") for i in range(3)]
        PrivateRegistry(prefix, username="alice", password=password, ca_file=ca.ca_file, platforms=[])
        settings, out = _settings(), []
        with _serializing(settings):
            for t in tasks:
                try:
                    out.append(t.get_image(settings).replace(reg.host, "HOST"))
                except FlytePrivateRegistryError as err:
                    out.append(type(err).__name__)
                    break
    return out


@pytest.mark.parametrize(("options", "first"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_a_misbehaving_registry_ends_as_it_does_without_the_helpers(
    options, first, canary_password, ca, tmp_path, monkeypatch, capfd
):
    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    with monkeypatch.context() as alone:
        alone.setattr(_lookahead, "WORKERS", 0)  # no helper thread: every image is checked when asked
        before = _outcomes(options, canary_password, ca, tmp_path)
    after = _outcomes(options, canary_password, ca, tmp_path)
    assert after == before
    assert before[0].startswith(first), before
    assert hooked == [] and "Traceback" not in capfd.readouterr().err
