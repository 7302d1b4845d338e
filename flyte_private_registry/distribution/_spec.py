"""Facts of the OCI distribution spec that every part of the client needs: media types and digest syntax.

Apart and tiny because the quick path's warm HEAD needs these and nothing else of :mod:`._auth`.
"""

from __future__ import annotations

import re

#: The full Accept list: a narrower one makes OCI images look missing (404) or returns another digest.
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
#: Media types of an OCI index / Docker manifest list: one entry per platform.
INDEX_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
