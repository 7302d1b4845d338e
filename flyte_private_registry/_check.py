"""``check``: can this machine push to (and read) a registry, step by step, without building anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import AuthenticationError, AuthorizationError, ConfigurationError, RegistryError, RegistryUnavailable
from ._lookup import lookup, parse_target, registry_for
from ._reference import RegistryPrefix

#: A scope needs a repository; for a bare host we ask about one that need not exist.
_PROBE_REPOSITORY = "flyte-private-registry-check"


@dataclass(frozen=True)
class CheckStep:
    """One finding. ``ok`` is ``None`` when it cannot be known (Basic auth has no scopes)."""

    name: str
    ok: bool | None
    detail: str


@dataclass
class CheckReport:
    target: str
    registry: str
    declared: bool
    provider: str
    steps: list[CheckStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok is not False for step in self.steps)

    @property
    def failure(self) -> str | None:
        """``None``, or what went wrong: ``configuration``, ``reachable`` (network) or a check's name."""
        failed = [step.name for step in self.steps if step.ok is False]
        return failed[0] if failed else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _target_parts(target: str) -> tuple[str, str | None]:
    """(repository to ask about, reference or None).

    A prefix is probed through a repository beneath it (``ml/flyte-private-registry-check``):
    token services grant push on repositories under a project or namespace, not on the
    namespace itself.
    """
    parsed = parse_target(target)
    if isinstance(parsed, RegistryPrefix):
        return probe_repository(parsed), None
    return parsed.repository, parsed.digest or parsed.tag


def probe_repository(prefix: RegistryPrefix) -> str:
    """A repository under ``prefix`` to ask a token service about (it need not exist)."""
    return f"{prefix.path}/{_PROBE_REPOSITORY}" if prefix.path else _PROBE_REPOSITORY


def check(target: str, *, push: bool = True) -> CheckReport:
    """Resolve credentials, log in, check push scope and (for an image with a tag) that it exists."""
    registry = registry_for(target)
    report = CheckReport(target, registry.registry, lookup(target) is not None, registry.provider.describe())
    repository, reference = _target_parts(target)
    steps = report.steps
    try:
        resolution = registry.resolve()
    except ConfigurationError as err:
        steps.append(CheckStep("configuration", False, str(err)))
        return report
    cred = resolution.credential
    if cred is None:
        steps.append(CheckStep("credentials", None, "no source had credentials; trying anonymously"))
    else:
        steps.append(CheckStep("credentials", True, f"user {cred.username!r} from {cred.source}"))

    client = registry.client(actions=("pull", "push") if push else ("pull",), resolution=resolution)
    with client:
        try:
            result = client.login(repository)
        except AuthorizationError as err:
            steps.append(CheckStep("login", True, "credentials accepted"))
            steps.append(CheckStep("push scope" if push else "pull scope", False, str(err)))
            return report
        except AuthenticationError as err:  # includes a 401 without a challenge: a refusal, never "auth none"
            steps.append(CheckStep("login", False, str(err)))
            return report
        except RegistryError as err:
            steps.append(CheckStep("reachable", False, str(err)))
            return report
        steps.append(CheckStep("login", True, f"{result.scheme} auth accepted at {registry.host}"))
        if push:
            if result.granted is None:
                steps.append(CheckStep("push scope", None, f"{result.scheme} auth does not tell; known only at push"))
            else:
                steps.append(CheckStep("push scope", True, f"granted {sorted(result.granted)} on {repository}"))
        if reference is not None:
            try:
                digest = client.manifest_digest(repository, reference)
            except RegistryUnavailable as err:  # the tag was never judged: a server or network problem
                steps.append(CheckStep("reachable", False, str(err)))
                return report
            except RegistryError as err:
                steps.append(CheckStep("tag exists", False, str(err)))
                return report
            if digest is None:
                steps.append(CheckStep("tag exists", False, f"{repository}:{reference} is not in {registry.host}"))
            else:
                steps.append(CheckStep("tag exists", True, f"{repository}:{reference} is {digest or 'present'}"))
    return report
