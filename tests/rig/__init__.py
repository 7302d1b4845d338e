"""Integration test rig: real dockerd, registries, token server, TLS and a private /etc/hosts mapping.

Import as ``from rig import DockerEngine`` with ``tests/`` on ``sys.path`` (tests/conftest.py
does that; scripts under benchmarks/ use ``sys.path.insert(0, "tests")``).
"""

from ._process import MissingBinaryError, RigError
from .docker_engine import DockerCommandError, DockerEngine
from .fault_registry import FaultRegistry
from .hosts import hosts_entries
from .latency import LatencyProxy
from .ports import free_port, wait_for_port
from .registry import Registry
from .tls import CertificateAuthority, SigningKey, libtrust_key_id, make_signing_key
from .token_server import TokenRequest, TokenServer, UserSpec, parse_scopes

__all__ = [
    "CertificateAuthority",
    "DockerCommandError",
    "DockerEngine",
    "FaultRegistry",
    "LatencyProxy",
    "MissingBinaryError",
    "Registry",
    "RigError",
    "SigningKey",
    "TokenRequest",
    "TokenServer",
    "UserSpec",
    "free_port",
    "hosts_entries",
    "libtrust_key_id",
    "make_signing_key",
    "parse_scopes",
    "wait_for_port",
]
