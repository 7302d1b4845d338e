"""kubelet's credential matching, as the pre-flight predicts it (pkg/credentialprovider/keyring.go)."""

import pytest
from pydantic import SecretStr

from flyte_private_registry.credentials import Credential
from flyte_private_registry.pull._dockerconfigjson import build, parse
from flyte_private_registry.pull._kubelet import Keyring, normalize_key, repo_to_pull, urls_match


@pytest.mark.parametrize(
    ("key", "index"),
    [
        ("harbor.example.com", "harbor.example.com"),
        ("https://harbor.example.com/v2/", "harbor.example.com"),
        ("http://harbor.example.com:5000", "harbor.example.com:5000"),
        ("https://harbor.example.com/v1/ml", "harbor.example.com/ml"),
        ("harbor.example.com/ml", "harbor.example.com/ml"),
        ("https://index.docker.io/v1/", "index.docker.io"),
    ],
)
def test_keys_are_normalized_like_kubelet(key, index):
    assert normalize_key(key) == index


@pytest.mark.parametrize(
    ("glob", "target", "matches"),
    [
        ("harbor.example.com", "harbor.example.com/ml/app", True),
        ("*.example.com", "harbor.example.com/ml/app", True),
        ("*.example.com", "example.com/app", False),  # label count differs
        ("*.*.com", "harbor.example.com/app", True),
        ("harbor.example.com:5000", "harbor.example.com/app", False),  # port must match
        ("harbor.example.com", "harbor.example.com:5000/app", False),
        ("127.0.0.1:5000", "127.0.0.1:5000/ml/app", True),
        ("harbor.example.com/ml", "harbor.example.com/ml/app", True),
        ("harbor.example.com/ml", "harbor.example.com/vision/app", False),
        ("harbor.example.com/ml", "harbor.example.com/mlops/app", True),  # a string prefix, as in kubelet
        ("harbor.example.com", "other.example.com/app", False),
    ],
)
def test_urls_match(glob, target, matches):
    assert urls_match(glob, target) is matches


def test_most_specific_first_and_every_match_is_tried():
    keyring: Keyring[str] = Keyring()
    keyring.add_all([("quay.io", "org-wide"), ("quay.io/acme", "team"), ("https://quay.io/v2/", "second org-wide")])
    found = keyring.lookup("quay.io/acme/app:v1")
    assert [(m.index, m.value) for m in found] == [
        ("quay.io/acme", "team"),
        ("quay.io", "org-wide"),
        ("quay.io", "second org-wide"),
    ]
    assert [m.value for m in keyring.lookup("quay.io/other/app")] == ["org-wide", "second org-wide"]


def test_docker_hub_images_use_the_index_key():
    keyring: Keyring[str] = Keyring()
    keyring.add("https://index.docker.io/v1/", "hub")
    for image in ("busybox", "acme/app:v1", "docker.io/acme/app", "index.docker.io/acme/app"):
        assert [m.value for m in keyring.lookup(image)] == ["hub"], image
    assert keyring.lookup("ghcr.io/acme/app") == []
    assert repo_to_pull("busybox:1.36") == "docker.io/library/busybox"


@pytest.mark.parametrize(
    ("host", "image"),
    [
        ("docker.io", "acme/trainer:v1"),
        ("harbor.example.com", "harbor.example.com/ml/trainer:v1"),
        ("127.0.0.1:5000", "127.0.0.1:5000/ml/trainer@sha256:" + "a" * 64),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/x:1"),
    ],
)
def test_what_we_write_is_what_kubelet_finds(host, image):
    payload = build({host: Credential("robot", SecretStr("pw"), source="test")})
    keyring: Keyring[str] = Keyring()
    for entry in parse(payload):
        keyring.add(entry.key, entry.username)
    assert [m.value for m in keyring.lookup(image)] == ["robot"]


def test_auth_field_wins_and_bad_entries_are_skipped():
    entries = parse(
        b'{"auths": {"a.example.com": {"username": "x", "password": "y", "auth": "dXNlcjpwOnc="},'
        b' "b.example.com": {"auth": "not base64!"}, "c.example.com": {"username": "u", "password": "p"}}}'
    )
    assert [(e.key, e.username, e.password.get_secret_value()) for e in entries] == [
        ("a.example.com", "user", "p:w"),
        ("c.example.com", "u", "p"),
    ]
    assert "p:w" not in repr(entries)
    assert parse(b'{"a.example.com": {"username": "u", "password": "p"}}', legacy=True)[0].username == "u"
    with pytest.raises(ValueError):
        parse(b'{"not": "auths"}')
