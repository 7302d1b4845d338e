"""The docker credential-helper protocol: run ``docker-credential-<name> get`` exactly as the docker CLI does."""

from __future__ import annotations

import json
import shutil
import subprocess

from pydantic import SecretStr

from .._reference import HELPER_PREFIX, NOT_FOUND
from ._base import Credential, Miss

_TIMEOUT_SECONDS = 30.0


def run_helper_get(helper: str, server: str, *, source: str) -> Credential | Miss:
    """Ask ``helper`` for ``server``; a helper that is absent, fails or has nothing is a :class:`Miss`."""
    program = HELPER_PREFIX + helper
    path = shutil.which(program)
    if path is None:
        return Miss(source, f"{program} is not on PATH")
    try:
        done = subprocess.run(
            [path, "get"], input=server, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return Miss(source, f"{program} get did not answer within {_TIMEOUT_SECONDS:.0f}s")
    if done.returncode != 0:
        if NOT_FOUND in done.stdout.lower() or NOT_FOUND in done.stderr.lower():
            return Miss(source, f"{program} has no entry for {server}")
        # Quote the helper's error line, never something that looks like a credential payload.
        lines = [line for line in (done.stderr.strip() or done.stdout.strip()).splitlines() if "{" not in line]
        first = lines[0][:200] if lines else f"exit status {done.returncode}"
        return Miss(source, f"{program} get failed: {first}")
    try:
        payload = json.loads(done.stdout)
        username, secret = payload["Username"], payload["Secret"]
    except (ValueError, KeyError, TypeError):
        return Miss(source, f"{program} get answered something that is not helper JSON")
    if not secret:
        return Miss(source, f"{program} has an empty secret for {server}")
    token = username == "<token>"
    return Credential(
        username="<token>" if token else username,
        password=SecretStr(secret),
        source=source,
        identity_token=token,
    )
