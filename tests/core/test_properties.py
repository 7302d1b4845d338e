"""Property-based tests: whatever a user's files or arguments hold, only documented outcomes come out.

Parsers give a value or ``InvalidReference``; docker configs and helper output give a ``Credential``
or a ``Miss``; declarations give a ``PrivateRegistry`` or a ``ConfigurationError``. Anything else
(a ``TypeError``, an ``AttributeError``, pydantic's ``ValidationError``) fails the test.
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flyte_private_registry import ConfigurationError, PrivateRegistry
from flyte_private_registry._config import _REGISTRY_KEYS, ENV_REGISTRIES, build_registry, load_configured
from flyte_private_registry._declaration import not_declaring
from flyte_private_registry._reference import (
    ImageReference,
    InvalidReference,
    RegistryPrefix,
    canonical_host,
    docker_config_key,
    hostname,
    is_loopback,
    kubernetes_name_problem,
    looks_like_host,
    server_to_host,
)
from flyte_private_registry.credentials import Credential, DockerConfigKeychain, Miss
from flyte_private_registry.credentials._base import decode_basic, encode_basic
from flyte_private_registry.credentials._docker_config import config_problems, describe_config
from flyte_private_registry.credentials._helper_client import run_helper_get
from flyte_private_registry.providers import PROVIDERS

# The autouse fixtures in conftest (catalog reset, DOCKER_CONFIG guard) need no reset between examples.
# No example database: the tree is shared, and a failure prints its example anyway.
PROPERTIES = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None, database=None
)

HOST = RegistryPrefix.parse("harbor.example.com/ml")

# -- strategies ---------------------------------------------------------------------------------------------------
#: Text biased towards the characters registry names are made of, plus the ones that used to slip through.
NAME_CHARS = string.ascii_letters + string.digits + ".-_:/@[]" + "\n\t \u00e9\u212a\u0661\uff21"
name_text = st.text(alphabet=NAME_CHARS, max_size=40) | st.text(max_size=20)

json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)
#: TOML adds dates and times to what JSON can say.
toml_value = json_value | st.dates() | st.datetimes() | st.times()

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
host = st.builds(
    lambda labels, port: ".".join(labels) + (f":{port}" if port else ""),
    st.lists(label, min_size=2, max_size=3),
    st.none() | st.integers(1, 65535),
)
component = st.from_regex(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", fullmatch=True).filter(lambda c: len(c) < 30)
path = st.lists(component, min_size=0, max_size=3).map("/".join)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
env_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
k8s_name = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)
non_ascii = st.characters(min_codepoint=128, max_codepoint=0x2FFFF, exclude_categories=("Cs",))
whitespace = st.sampled_from(["\n", "\r\n", " ", "\t", "\x0b", "\x0c"])


# -- references and hosts -----------------------------------------------------------------------------------------
@PROPERTIES
@given(name_text, st.booleans())
def test_prefix_parse_gives_a_prefix_or_invalid_reference(text: str, require_host: bool) -> None:
    try:
        prefix = RegistryPrefix.parse(text, require_host=require_host)
    except InvalidReference:
        return
    rendered = str(prefix)
    assert rendered.isascii() and rendered == rendered.strip() and rendered == rendered.lower()
    assert RegistryPrefix.parse(rendered, require_host=require_host) == prefix  # a round trip changes nothing


@PROPERTIES
@given(name_text)
def test_image_reference_parse_gives_a_reference_or_invalid_reference(text: str) -> None:
    try:
        ref = ImageReference.parse(text)
    except InvalidReference:
        return
    rendered = str(ref)
    assert rendered.isascii() and not any(ch.isspace() for ch in rendered)
    assert ImageReference.parse(rendered) == ref


@PROPERTIES
@given(st.one_of(st.integers(), st.none(), st.lists(st.text()), st.binary()))
def test_parsers_refuse_non_strings_with_invalid_reference(value: Any) -> None:
    with pytest.raises(InvalidReference):
        ImageReference.parse(value)
    with pytest.raises(InvalidReference):
        RegistryPrefix.parse(value)


@PROPERTIES
@given(name_text)
def test_host_helpers_never_raise_for_text(text: str) -> None:
    assert isinstance(looks_like_host(text), bool)
    assert isinstance(server_to_host(text), str)
    assert isinstance(canonical_host(text), str)
    assert isinstance(docker_config_key(text), str)
    assert isinstance(hostname(text), str)
    assert isinstance(is_loopback(text), bool)


@PROPERTIES
@given(host, path, st.none() | tag)
def test_valid_references_parse_and_any_stray_character_is_refused(h: str, p: str, t: str | None) -> None:
    prefix_text = f"{h}/{p}" if p else h
    assert str(RegistryPrefix.parse(prefix_text)) == prefix_text
    image = f"{h}/{p or 'app'}" + (f":{t}" if t else "")
    assert ImageReference.parse(image).tag == t
    for bad in (prefix_text + "\n", prefix_text.replace(".", ".\n", 1), prefix_text + "\u00e9"):
        with pytest.raises(InvalidReference):
            RegistryPrefix.parse(bad)
    for bad in (image + "\n", image + "\u0661", image.replace("/", "\n/", 1)):
        with pytest.raises(InvalidReference) as info:
            ImageReference.parse(bad)
        assert "\\n" in str(info.value) or "non-ASCII" in str(info.value)  # the stray character is visible


@PROPERTIES
@given(host, tag, non_ascii)
def test_non_ascii_tags_are_refused(h: str, t: str, extra: str) -> None:
    with pytest.raises(InvalidReference):
        ImageReference.parse(f"{h}/app:{t}{extra}")


# -- names: env vars and Kubernetes --------------------------------------------------------------------------------
@PROPERTIES
@given(env_name, whitespace | non_ascii)
def test_env_var_names_with_whitespace_or_non_ascii_are_refused(name: str, extra: str) -> None:
    with not_declaring():
        PrivateRegistry("harbor.example.com/ml", username_env=name, password_env="P")
        for bad in (name + extra, extra + name):
            with pytest.raises(ConfigurationError) as info:
                PrivateRegistry("harbor.example.com/ml", username_env=bad, password_env="P")
            assert repr(bad) in str(info.value)


@PROPERTIES
@given(k8s_name, whitespace | non_ascii, st.booleans())
def test_kubernetes_names_with_whitespace_or_non_ascii_are_refused(name: str, extra: str, as_label: bool) -> None:
    assert kubernetes_name_problem(name, label=as_label) is None
    assert kubernetes_name_problem(name + extra, label=as_label) is not None
    with not_declaring():
        PrivateRegistry("harbor.example.com/ml", pull_secret=name)
        with pytest.raises(ConfigurationError) as info:
            PrivateRegistry("harbor.example.com/ml", pull_secret=name + extra)
    assert repr(name + extra) in str(info.value)


@PROPERTIES
@given(json_value | st.binary())
def test_kubernetes_name_problem_never_raises(value: Any) -> None:
    assert kubernetes_name_problem(value) is None or isinstance(kubernetes_name_problem(value), str)


# -- docker configs --------------------------------------------------------------------------------------------------
KEYS = st.sampled_from(["harbor.example.com", "https://harbor.example.com/v2/", "HARBOR.example.com", "other.io"])
auth_entry = st.fixed_dictionaries(
    {},
    optional={
        "auth": json_value | st.just(encode_basic("u", "p")) | st.just("dXNlcg=="),
        "username": json_value,
        "password": json_value,
        "identitytoken": json_value,
        "email": json_value,
    },
)
docker_config = st.fixed_dictionaries(
    {},
    optional={
        "auths": json_value | st.dictionaries(KEYS, auth_entry | json_value, max_size=3),
        "credHelpers": json_value | st.dictionaries(KEYS, json_value | st.sampled_from(["", "flyte-private-registry"])),
        "credsStore": json_value | st.sampled_from(["", "flyte-private-registry", "../x", "nosuch"]),
    },
)


@contextmanager
def empty_path() -> Iterator[None]:
    """No credential helper of this machine may answer: PATH holds nothing."""
    with tempfile.TemporaryDirectory() as empty, mock.patch.dict(os.environ, {"PATH": empty}):
        yield


@PROPERTIES
@given(docker_config | json_value)
def test_any_docker_config_gives_a_credential_or_a_miss(config: Any) -> None:
    with tempfile.TemporaryDirectory() as directory, empty_path():
        Path(directory, "config.json").write_text(json.dumps(config))
        answer = DockerConfigKeychain(Path(directory)).resolve(HOST)
        assert isinstance(answer, (Credential, Miss))
        if isinstance(answer, Credential):
            assert isinstance(answer.username, str) and isinstance(answer.password.get_secret_value(), str)
        ok, detail = describe_config(Path(directory))
        assert ok in (True, False, None) and isinstance(detail, str)
        if isinstance(config, dict):
            assert all(isinstance(problem, str) for problem in config_problems(config))


@PROPERTIES
@given(st.binary(max_size=200))
def test_any_docker_config_bytes_give_a_credential_or_a_miss(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "config.json").write_bytes(raw)
        assert isinstance(DockerConfigKeychain(Path(directory)).resolve(HOST), (Credential, Miss))


@PROPERTIES
@given(json_value | st.binary())
def test_decode_basic_gives_a_pair_or_none(value: Any) -> None:
    decoded = decode_basic(value)
    assert decoded is None or (isinstance(decoded, tuple) and all(isinstance(part, str) for part in decoded))


@pytest.fixture(scope="module")
def raw_helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``docker-credential-raw``: prints the bytes in ``out`` and exits with the code in ``code``."""
    directory = tmp_path_factory.mktemp("raw-helper")
    script = directory / "docker-credential-raw"
    # Absolute paths: the test runs it with PATH holding only this directory.
    script.write_text(f"#!/bin/sh\n/bin/cat '{directory}/out'\nexit $(/bin/cat '{directory}/code')\n")
    script.chmod(0o755)
    return directory


helper_output = (
    st.binary(max_size=80)
    | json_value.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({}, optional={"Username": json_value, "Secret": json_value, "ServerURL": json_value}).map(
        lambda v: json.dumps(v).encode()
    )
)


@settings(PROPERTIES, max_examples=40)
@given(helper_output, st.sampled_from([0, 0, 1, 3]))
def test_any_helper_output_gives_a_credential_or_a_miss(raw_helper: Path, stdout: bytes, code: int) -> None:
    (raw_helper / "out").write_bytes(stdout)
    (raw_helper / "code").write_text(str(code))
    with mock.patch.dict(os.environ, {"PATH": str(raw_helper)}):
        answer = run_helper_get("raw", "harbor.example.com", source="test")
    assert isinstance(answer, (Credential, Miss))
    if isinstance(answer, Credential):
        assert code == 0 and isinstance(answer.username, str) and answer.password.get_secret_value()
    else:
        assert "not on PATH" not in answer.reason and "could not be run" not in answer.reason  # the helper ran


# -- declarations ------------------------------------------------------------------------------------------------------
registry_value = toml_value | st.sampled_from(
    ["harbor.example.com/ml", "HARBOR_TOKEN", "regcred", "regcred\n", "ecr", "ghcr", "", True, "ca.pem"]
)
entry_keys = st.sampled_from(sorted(_REGISTRY_KEYS | {"provider", "password", "colour", "region", "create_repository"}))
registry_entry = st.dictionaries(entry_keys, registry_value, max_size=6).map(
    lambda d: {"prefix": "harbor.example.com/ml", **d} if "prefix" not in d and len(d) % 2 else d
)


@PROPERTIES
@given(registry_entry | toml_value)
def test_any_config_entry_gives_a_registry_or_a_configuration_error(entry: Any) -> None:
    try:
        registry = build_registry(entry, "c.toml [[registry]] #1")
    except ConfigurationError as err:
        assert str(err).startswith("c.toml [[registry]] #1: ")
        assert "validation error" not in str(err)  # pydantic's wall is turned into one line per field
        return
    assert isinstance(registry, PrivateRegistry)


DECLARATION_KEYS = st.sampled_from(
    [
        "username",
        "password",
        "username_env",
        "password_env",
        "pull_secret",
        "pull_username",
        "pull_password",
        "pull_password_env",
        "insecure",
        "ca_file",
        "builder",
        "keychains",
        "provider",
    ]
)


@PROPERTIES
@given(
    json_value | st.sampled_from(["harbor.example.com/ml", "ghcr.io/acme"]),
    st.dictionaries(DECLARATION_KEYS, registry_value, max_size=5),
)
def test_any_arguments_give_a_registry_or_a_configuration_error(prefix: Any, kwargs: dict[str, Any]) -> None:
    try:
        with not_declaring():
            registry = PrivateRegistry(prefix, **kwargs)
    except ConfigurationError as err:
        assert "validation error" not in str(err)
        return
    assert isinstance(registry, PrivateRegistry)


@PROPERTIES
@given(st.lists(registry_entry | json_value, max_size=3).map(lambda v: json.dumps(v, default=str)) | name_text)
def test_any_env_declaration_gives_registries_or_a_configuration_error(value: str) -> None:
    assume("\x00" not in value)  # an environment variable cannot hold NUL
    with mock.patch.dict(os.environ, {ENV_REGISTRIES: value}):
        try:
            registries = load_configured()
        except ConfigurationError as err:
            assert ENV_REGISTRIES in str(err)
            return
    assert all(isinstance(registry, PrivateRegistry) for registry in registries)


@PROPERTIES
@given(
    st.sampled_from(sorted(PROVIDERS)),
    st.dictionaries(
        st.sampled_from(["region", "profile", "create_repository", "token_cache", "scan_on_push", "project", "x"]),
        toml_value,
        max_size=3,
    ),
)
def test_provider_options_of_any_type_give_a_configuration_error(kind: str, options: dict[str, Any]) -> None:
    entry = {"prefix": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team", "provider": kind, **options}
    try:
        registry = build_registry(entry, "c.toml [[registry]] #1")
    except ConfigurationError as err:
        assert "validation error" not in str(err)
        return
    assert registry.provider.kind == kind
