"""Registry prefixes, image references and host normalisation.

Docker Hub's historical names live here and nowhere else: the config key docker expects
(``https://index.docker.io/v1/``), the API host (``registry-1.docker.io``) and the aliases
people type. Everything that compares hosts compares :func:`canonical_host` values.
"""

from __future__ import annotations

import ipaddress
import re

from ._frozen import frozen

DOCKER_HUB = "docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_API_HOST = "registry-1.docker.io"

#: The library's docker credential helper, by its name in ``credHelpers``; docker runs ``docker-credential-<name>``.
HELPER_NAME = "flyte-private-registry"
HELPER_PREFIX = "docker-credential-"
HELPER_PROGRAM = HELPER_PREFIX + HELPER_NAME
#: The exact text docker's helper client treats as "no credentials" (anything else is an error).
NOT_FOUND = "credentials not found in native keychain"

#: The names docker itself folds into Docker Hub (its "official index"). ``registry-1.docker.io``
#: is the API host, but an image written with it is, to docker and kubelet, a registry of its own.
_DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io"})

_LABEL = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
# Every pattern is matched with ``fullmatch`` and ``re.ASCII``: ``$`` would accept a trailing
# newline and ``\w`` any Unicode letter, neither of which docker or the registry accepts.
_HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[(?P<ipv6>[0-9a-f:.]+)\])(?::(?P<port>[0-9]{{1,5}}))?", re.ASCII)
#: The distribution spec's path component: lower-case alphanumerics joined by '.', '_', '__' or dashes.
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}", re.ASCII)

_PREFIX_FORMS = (
    "expected host[:port][/path], for example 'harbor.example.com/ml', 'localhost:5000', "
    "'ghcr.io/acme', 'docker.io/acme' or '123456789012.dkr.ecr.us-east-1.amazonaws.com/team'"
)


class InvalidReference(ValueError):
    """A registry prefix or image reference that docker would not accept either."""


def canonical_host(host: str) -> str:
    """Fold Docker Hub aliases to ``docker.io`` and lower-case, so hosts compare equal."""
    host = host.lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def is_docker_hub(host: str) -> bool:
    return canonical_host(host) == DOCKER_HUB


def api_host(host: str) -> str:
    """The host that serves the v2 API (Docker Hub's differs from its name)."""
    return DOCKER_HUB_API_HOST if is_docker_hub(host) else canonical_host(host)


def docker_config_key(host: str) -> str:
    """The ``auths``/``credHelpers`` key the docker CLI looks up for ``host``."""
    return DOCKER_HUB_CONFIG_KEY if is_docker_hub(host) else canonical_host(host)


def server_to_host(server: str) -> str:
    """Canonical host of a docker config key or helper ServerURL (``https://h:1/v1/`` -> ``h:1``).

    Never raises for a string: config keys are whatever the user's file holds, and a key that
    names no host simply matches nothing.
    """
    server = server.strip().lower()
    server = re.sub(r"^[a-z][a-z0-9+.-]*://", "", server)
    return canonical_host(server.split("/", 1)[0])


def hostname(host: str) -> str:
    """``host[:port]`` without the port (brackets of IPv6 literals removed)."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host[1:]
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_loopback(host: str) -> bool:
    """Docker treats these as insecure registries by default; so do we."""
    name = hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def looks_like_host(component: str) -> bool:
    """Docker's rule: a first path component with '.' or ':' (or ``localhost``) is a host."""
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


#: Docker's limit on ``host/repository`` (reference.NameTotalLengthMax).
_NAME_MAX = 255


def _require_ascii_text(value: object, what: str) -> str:
    """The value as a string, or :class:`InvalidReference` saying why it cannot be one of ours.

    Surrounding whitespace is refused rather than stripped: ``"regcred\n"`` from a template or a
    heredoc is a mistake docker and Kubernetes would refuse later, with a worse message.
    """
    if not isinstance(value, str):
        raise InvalidReference(f"{what} must be a string, got {type(value).__name__} {value!r}")
    if not value.isascii():
        bad = next(ch for ch in value if not ch.isascii())
        raise InvalidReference(
            f"{what} {value!r} contains the non-ASCII character {bad!r}; registry names are ASCII only"
        )
    if value != value.strip():
        raise InvalidReference(f"{what} {value!r} has leading or trailing whitespace; remove it")
    return value


def _check_host(host: str, original: str) -> str:
    match = _HOST_RE.fullmatch(host)
    if not match:
        raise InvalidReference(f"malformed registry host {host!r} in {original!r}: {_PREFIX_FORMS}")
    literal = match.group("ipv6")
    if literal is not None:
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise InvalidReference(f"{literal!r} in {original!r} is not an IPv6 address") from None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidReference(f"port {port} of {original!r} is out of range 1-65535")
    return host


def _check_path(parts: list[str], original: str) -> str:
    for part in parts:
        if _PATH_COMPONENT_RE.fullmatch(part):
            continue
        fix = (
            f"; use lower case ({part.lower()!r}), as the distribution spec requires"
            if _PATH_COMPONENT_RE.fullmatch(part.lower())
            else ""
        )
        raise InvalidReference(
            f"malformed repository path component {part!r} in {original!r}: components are "
            f"lower-case ASCII letters and digits, separated by '.', '_', '__' or '-'{fix}"
        )
    return "/".join(parts)


@frozen()
class RegistryPrefix:
    """``host[:port][/path]``: where a team's images live and what credentials are for."""

    host: str
    path: str = ""

    @classmethod
    def parse(cls, value: str, *, require_host: bool = True) -> RegistryPrefix:
        """Parse a prefix; ``require_host=False`` accepts ImageSpec's ``"acme"`` (Docker Hub) form."""
        original = value
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidReference(f"empty registry prefix: {_PREFIX_FORMS}")
        # ASCII first: lower() folds some non-ASCII letters (the Kelvin sign) into ASCII ones.
        value = _require_ascii_text(value, "registry prefix").lower()
        if "://" in value:
            raise InvalidReference(
                f"registry prefix {original!r} has a URL scheme; drop it "
                f"(use {value.split('://', 1)[1].rstrip('/')!r}): {_PREFIX_FORMS}"
            )
        if "@" in value:
            raise InvalidReference(f"registry prefix {original!r} must not contain '@' or credentials")
        parts = value.rstrip("/").split("/")
        if looks_like_host(parts[0]):
            host, rest = _check_host(parts[0], original), parts[1:]
        elif require_host:
            raise InvalidReference(
                f"registry prefix {original!r} does not start with a host; "
                f"for Docker Hub write 'docker.io/{value}': {_PREFIX_FORMS}"
            )
        else:
            host, rest = DOCKER_HUB, parts
        return cls(host=host, path=_check_path(rest, original) if rest else "")

    @property
    def canonical_host(self) -> str:
        return canonical_host(self.host)

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.path else self.host

    def covers(self, host: str, repository: str) -> bool:
        """True when ``host/repository`` lies under this prefix (whole path components only)."""
        if canonical_host(host) != self.canonical_host:
            return False
        if not self.path:
            return True
        return repository == self.path or repository.startswith(self.path + "/")


@frozen()
class ImageReference:
    """A parsed ``host/repository[:tag][@digest]`` with Docker Hub defaults applied."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, value: str) -> ImageReference:
        """Parse ``[host/]repository[:tag][@digest]``; anything docker would refuse is :class:`InvalidReference`."""
        original = value
        value = _require_ascii_text(value, "image reference")
        digest = None
        if "@" in value:
            value, digest = value.split("@", 1)
            if not _DIGEST_RE.fullmatch(digest):
                raise InvalidReference(
                    f"malformed digest {digest!r} in image {original!r}: expected algorithm:hex, e.g. 'sha256:' "
                    "followed by 64 hex digits"
                )
        tag = None
        last = value.rsplit("/", 1)[-1]
        if ":" in last:
            value, tag = value.rsplit(":", 1)
            if not _TAG_RE.fullmatch(tag):
                raise InvalidReference(
                    f"malformed tag {tag!r} in image {original!r}: tags are 1-128 ASCII letters, digits, "
                    "'_', '.' and '-', not starting with '.' or '-'"
                )
        parts = value.split("/")
        if len(parts) > 1 and looks_like_host(parts[0].lower()):
            host, rest = _check_host(parts[0].lower(), original), parts[1:]
        else:
            host, rest = DOCKER_HUB, parts
        if is_docker_hub(host) and len(rest) == 1:
            rest = ["library", *rest]
        repository = _check_path(rest, original)
        if len(host) + 1 + len(repository) > _NAME_MAX:
            raise InvalidReference(f"image name in {original!r} is longer than docker's {_NAME_MAX} characters")
        return cls(host=host, repository=repository, tag=tag, digest=digest)

    @property
    def reference(self) -> str:
        """What the manifest endpoint takes: the digest if pinned, else the tag (default ``latest``)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


# -- Kubernetes object names ---------------------------------------------------------------------
#: RFC 1123 label (namespaces) and subdomain (Secrets, ServiceAccounts, PodTemplates), ASCII only.
_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?", re.ASCII)
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*", re.ASCII)


def kubernetes_name_problem(value: object, *, label: bool = False) -> str | None:
    """Why ``value`` cannot name a Kubernetes object (``None`` when it can).

    ``label=True`` applies the stricter rule for namespaces (RFC 1123 label, 63 characters);
    otherwise the rule for Secrets, ServiceAccounts and PodTemplates (RFC 1123 subdomain, 253).
    The whole string must match: a trailing newline is a problem, not a name.
    """
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    limit, pattern = (63, _DNS1123_LABEL) if label else (253, _DNS1123_SUBDOMAIN)
    if not value:
        return "is empty"
    if len(value) > limit:
        return f"is longer than {limit} characters"
    if pattern.fullmatch(value) is None:
        allowed = "digits and '-'" if label else "digits, '-' and '.'"
        return f"may hold only lower-case ASCII letters, {allowed}, starting and ending alphanumeric"
    return None
