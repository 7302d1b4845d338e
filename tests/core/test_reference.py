"""Registry prefixes and image references, table-driven, including the bad ones."""

import pytest

from flyte_private_registry._reference import (
    DOCKER_HUB_CONFIG_KEY,
    ImageReference,
    InvalidReference,
    RegistryPrefix,
    api_host,
    docker_config_key,
    hostname,
    is_loopback,
    kubernetes_name_problem,
    server_to_host,
)


@pytest.mark.parametrize(
    ("text", "host", "path"),
    [
        ("harbor.example.com/ml", "harbor.example.com", "ml"),
        ("Harbor.Example.com/ML/Team", "harbor.example.com", "ml/team"),
        ("localhost:5000", "localhost:5000", ""),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b"),
        ("ghcr.io/acme/", "ghcr.io", "acme"),
        ("docker.io/acme", "docker.io", "acme"),
        ("[::1]:5000/x", "[::1]:5000", "x"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "team",
        ),
        ("registry.gitlab.com/group/sub/project", "registry.gitlab.com", "group/sub/project"),
    ],
)
def test_prefix_parses(text, host, path):
    prefix = RegistryPrefix.parse(text)
    assert (prefix.host, prefix.path) == (host, path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty registry prefix"),
        ("https://harbor.example.com/ml", "drop it (use 'harbor.example.com/ml')"),
        ("acme", "for Docker Hub write 'docker.io/acme'"),
        ("harbor.example.com:99999/ml", "out of range"),
        ("harbor_example.com/ml", "malformed registry host"),
        ("harbor.example.com/ML Team", "malformed repository path component"),
        ("alice:pw@harbor.example.com", "must not contain '@'"),
        ("harbor.example.com//x", "malformed repository path component ''"),
    ],
)
def test_bad_prefix_names_problem_and_forms(text, needle):
    with pytest.raises(InvalidReference) as info:
        RegistryPrefix.parse(text)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_imagespec_style_registry_without_host_means_docker_hub():
    assert RegistryPrefix.parse("acme", require_host=False) == RegistryPrefix("docker.io", "acme")


@pytest.mark.parametrize(
    ("prefix", "host", "repository", "covered"),
    [
        ("harbor.example.com/ml", "harbor.example.com", "ml/trainer", True),
        ("harbor.example.com/ml", "harbor.example.com", "ml", True),
        ("harbor.example.com/ml", "harbor.example.com", "mlops/trainer", False),
        ("harbor.example.com/ml", "other.example.com", "ml/trainer", False),
        ("harbor.example.com", "HARBOR.example.com", "anything/at/all", True),
        ("docker.io/acme", "index.docker.io", "acme/x", True),
        ("docker.io/acme", "registry-1.docker.io", "acme/x", False),  # docker keys that host separately
    ],
)
def test_prefix_covers_whole_components(prefix, host, repository, covered):
    assert RegistryPrefix.parse(prefix).covers(host, repository) is covered


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", None, None),
        ("acme/app:1.0", "docker.io", "acme/app", "1.0", None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        ("ghcr.io/acme/app:v1", "ghcr.io", "acme/app", "v1", None),
        ("h.io:8443/a/b:t@sha256:" + "a" * 64, "h.io:8443", "a/b", "t", "sha256:" + "a" * 64),
    ],
)
def test_image_reference(text, host, repository, tag, digest):
    ref = ImageReference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)


@pytest.mark.parametrize("text", ["ghcr.io/Acme/app:v1", "ghcr.io/acme/app:bad tag", "ghcr.io/a@sha256:12"])
def test_bad_image_reference(text):
    with pytest.raises(InvalidReference):
        ImageReference.parse(text)


def test_docker_hub_quirks_live_in_one_place():
    assert docker_config_key("docker.io") == DOCKER_HUB_CONFIG_KEY == "https://index.docker.io/v1/"
    assert docker_config_key("index.docker.io") == DOCKER_HUB_CONFIG_KEY
    assert docker_config_key("harbor.example.com:8443") == "harbor.example.com:8443"
    assert api_host("docker.io") == "registry-1.docker.io"
    assert server_to_host("https://index.docker.io/v1/") == "docker.io"
    assert server_to_host("https://Harbor.example.com:8443/v2/") == "harbor.example.com:8443"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:5000", True),
        ("127.0.0.42:443", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("harbor.example.com", False),
    ],
)
def test_loopback_hosts_are_insecure_like_docker(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("harbor.example.com\n", r"'harbor.example.com\n' has leading or trailing whitespace; remove it"),
        ("harbor.example.com\n/ml", r"malformed registry host 'harbor.example.com\n'"),
        ("harbor.example.com/ml\n/x", r"malformed repository path component 'ml\n'"),
        ("harbor.example.com\n:5000/x", r"malformed registry host 'harbor.example.com\n:5000'"),
        ("harbor.example.com/\u212aelvin", "non-ASCII character '\u212a'"),  # Kelvin sign: lower() gives 'k'
        ("h\u00e4rbor.example.com/ml", "non-ASCII character '\u00e4'"),
        ("[zz::1]:5000/x", "malformed registry host"),
        ("[:::::]:5000/x", "is not an IPv6 address"),
        ("https://harbor.example.com/ml", "drop it"),
    ],
)
def test_prefix_names_are_whole_string_ascii(text, needle):
    with pytest.raises(InvalidReference) as info:
        RegistryPrefix.parse(text)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ghcr.io/acme/app:v1\n", "has leading or trailing whitespace"),
        ("ghcr.io/acme/app:v\u00e9", "non-ASCII character"),
        ("ghcr.io/acme/app:\u0661\u0662", "non-ASCII character"),  # Arabic-Indic digits are \w and \d in Unicode
        ("ghcr.io/acme/app:.v1", "malformed tag '.v1'"),
        ("ghcr.io/acme/app:" + "a" * 129, "tags are 1-128"),
        ("ghcr.io/acme\n/app:v1", r"malformed repository path component 'acme\n'"),
        ("ghcr.io/Acme/app:v1", "use lower case ('acme')"),
        ("ghcr.io/acme/app@sha256:" + "a" * 63 + "\n", "has leading or trailing whitespace"),
        ("ghcr.io/acme/app@sha256:abc", "malformed digest 'sha256:abc'"),
        ("ghcr.io/" + "a" * 250 + ":v1", "longer than docker's 255 characters"),
        (5, "image reference must be a string, got int 5"),
    ],
)
def test_image_reference_names_are_whole_string_ascii(text, needle):
    with pytest.raises(InvalidReference) as info:
        ImageReference.parse(text)
    assert needle in str(info.value)


def test_prefix_of_the_wrong_type_is_an_invalid_reference():
    with pytest.raises(InvalidReference, match="registry prefix must be a string, got int 5"):
        RegistryPrefix.parse(5)


def test_hostname_of_an_unclosed_ipv6_literal_does_not_raise():
    assert hostname("[::1") == "::1"
    assert is_loopback("[::1") is True
    assert is_loopback("[zz") is False


@pytest.mark.parametrize(
    ("value", "label", "problem"),
    [
        ("regcred\n", False, "lower-case ASCII letters, digits, '-' and '.'"),
        ("ns\n", True, "lower-case ASCII letters, digits and '-'"),
        ("r\u00e9gcred", False, "lower-case ASCII letters"),
        ("a" * 64, True, "longer than 63"),
        (5, False, "must be a string, not int"),
    ],
)
def test_kubernetes_names_match_the_whole_string(value, label, problem):
    found = kubernetes_name_problem(value, label=label)
    assert found is not None and problem in found
