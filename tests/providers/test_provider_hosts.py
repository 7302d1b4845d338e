"""Which provider a bare host implies: the cheap pre-filter never changes the answer, only what is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flyte_private_registry import providers

HOSTS = [
    "ghcr.io",
    "GHCR.IO",
    "registry.gitlab.com",
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
    "registry.docker.io",
    "auth.docker.io",
    "gcr.io",
    "eu.gcr.io",
    "asia.gcr.io",
    "europe-docker.pkg.dev",
    "us-central1-docker.pkg.dev",
    "northamerica-northeast1-docker.pkg.dev",
    "contoso.azurecr.io",
    "myregistry.azurecr.cn",
    "myregistry.azurecr.us",
    "myregistry-abcdef1234.azurecr.io",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
    "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
    "public.ecr.aws",
    "127.0.0.1:5000",
    "localhost:5000",
    "[::1]:5000",
    "harbor.example.com",
    "registry.example.com:8443",
    "gitlab.example.com",  # not gitlab.com's registry: generic
    "docker.example.com",
    "notgcr.io",
    "azurecr.io",
    "pkg.dev",
]


def _claim(classes: list, host: str) -> object | None:
    """What provider_for_host does with a list of classes: the first ``from_host`` that answers."""
    for cls in classes:
        infer = getattr(cls, "from_host", None)
        found = infer(host) if infer is not None else None
        if found is not None:
            return found
    return None


@pytest.mark.parametrize("host", HOSTS)
def test_the_prefilter_gives_the_answer_of_walking_every_provider(host):
    walked = _claim(list(providers._providers().values()), host)
    filtered = _claim(providers._classes_for(host, providers._ecr_hosts.is_ecr_host(host)), host)
    assert type(filtered) is type(walked), host
    assert (filtered.options() if filtered is not None else None) == (walked.options() if walked is not None else None)
    assert walked is not None or host in GENERIC  # the list covers every provider and generic hosts


#: Hosts no provider claims (generic): self-hosted ones, and names that only look like a provider's.
GENERIC = {
    "127.0.0.1:5000",
    "localhost:5000",
    "[::1]:5000",
    "harbor.example.com",
    "registry.example.com:8443",
    "gitlab.example.com",
    "docker.example.com",
    "registry.docker.io",
    "auth.docker.io",
    "notgcr.io",
    "azurecr.io",
    "pkg.dev",
}


_PROBE = """
import json, sys
from flyte_private_registry.providers import provider_for_host
from flyte_private_registry.providers._ecr_hosts import _private_host
kinds = [type(provider_for_host(h)).__name__ for h in sys.argv[1:]]
loaded = sorted(m.rsplit(".", 1)[-1] for m in sys.modules if m.startswith("flyte_private_registry.providers._"))
print(json.dumps({"kinds": kinds, "loaded": loaded, "ecr_pattern": _private_host.cache_info().misses}))
"""


def _fresh(*hosts: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *hosts], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout)


def test_a_self_hosted_registry_loads_no_provider_module():
    found = _fresh("127.0.0.1:5000", "harbor.example.com")
    assert found["kinds"] == ["GenericProvider", "GenericProvider"]
    assert found["loaded"] == ["_base", "_ecr_hosts"]
    assert found["ecr_pattern"] == 0  # the ECR host pattern (~4 ms to compile) is not even compiled


def test_an_ecr_host_compiles_the_pattern_once():
    found = _fresh("123456789012.dkr.ecr.us-east-1.amazonaws.com", "210987654321.dkr.ecr.eu-west-1.amazonaws.com")
    assert found["kinds"] == ["EcrProvider", "EcrProvider"]
    assert found["ecr_pattern"] == 1


@pytest.mark.parametrize("host", [*HOSTS, " 123456789012.DKR.ECR.us-east-1.amazonaws.com ", "x.dkr.example.com"])
def test_the_quick_ecr_refusal_agrees_with_the_pattern(host):
    """``is_ecr_host`` skips the pattern for hosts without ``.dkr``; its answer must be the pattern's."""
    from flyte_private_registry.providers._ecr_hosts import ECR_PUBLIC_HOST, _private_host, is_ecr_host

    name = host.strip().lower()
    by_pattern = name == ECR_PUBLIC_HOST or (":" not in name and _private_host().match(name) is not None)
    assert is_ecr_host(host) is by_pattern


def test_a_provider_host_loads_that_provider_only():
    found = _fresh("ghcr.io")
    assert found["kinds"] == ["GhcrProvider"]
    assert "_github" in found["loaded"] and not {"_gitlab", "_gar", "_acr", "_dockerhub", "_ecr"} & set(found["loaded"])
