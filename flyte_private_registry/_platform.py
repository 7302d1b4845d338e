"""Image platforms (``os/architecture[/variant]``): parsed once, matched the way the kubelet's runtime does.

Core, because a declaration validates ``PrivateRegistry(platforms=...)`` when it is made; the
check against a registry's manifest lives in ``push/_pinning.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import ConfigurationError
from ._frozen import frozen

_PART = re.compile(r"[a-z0-9][a-z0-9._-]*", re.ASCII)
#: What an index lists for build attestations (buildx): not a platform anything runs on.
UNKNOWN = "unknown"


@frozen(order=True)
class Platform:
    """``linux/arm64/v8``; a wanted platform without a variant accepts any variant."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/") if isinstance(text, str) else []
        if not 2 <= len(parts) <= 3 or not all(_PART.fullmatch(p) for p in parts):
            raise ConfigurationError(
                f"platform {text!r} is not os/architecture[/variant], e.g. 'linux/amd64' or 'linux/arm64/v8'"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Platform | None:
        """An index entry's ``platform`` or an image config: ``os``, ``architecture``, ``variant``."""
        os_, arch = data.get("os"), data.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
            return None
        variant = data.get("variant")
        return cls(os_.lower(), arch.lower(), variant.lower() if isinstance(variant, str) and variant else None)

    def satisfied_by(self, found: Platform) -> bool:
        if (self.os, self.architecture) != (found.os, found.architecture):
            return False
        if self.variant is None:
            return True
        # arm64's only variant is v8, and registries often leave it out
        return self.variant == found.variant or (self.architecture == "arm64" and found.variant is None)

    @property
    def unknown(self) -> bool:
        return self.os == UNKNOWN or self.architecture == UNKNOWN

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platforms(value: str | Iterable[str]) -> tuple[Platform, ...]:
    """``"linux/amd64,linux/arm64"`` or a list of such strings; empty means "do not check"."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ConfigurationError(f"platforms must be strings such as 'linux/amd64', got {items!r}")
    return tuple(dict.fromkeys(Platform.parse(item) for item in items if item.strip()))
