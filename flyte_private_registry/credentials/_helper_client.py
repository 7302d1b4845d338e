"""The docker credential-helper protocol: run ``docker-credential-<name> get`` exactly as the docker CLI does."""

from __future__ import annotations

import json
import shutil
import subprocess

from .._reference import HELPER_PREFIX, NOT_FOUND
from ._base import Credential, Miss, Secret

_TIMEOUT_SECONDS = 30.0


def json_kind(value: object) -> str:
    """How a JSON value is called in messages (JSON's names, not Python's), never the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def run_helper_get(helper: str, server: str, *, source: str) -> Credential | Miss:
    """Ask ``helper`` for ``server``; a helper that is absent, fails or has nothing is a :class:`Miss`."""
    program = HELPER_PREFIX + helper
    path = shutil.which(program)
    if path is None:
        return Miss(source, f"{program} is not on PATH")
    try:
        done = subprocess.run(
            [path, "get"],
            input=server,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",  # a helper printing garbage is a Miss below, not a UnicodeDecodeError here
            timeout=_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Miss(source, f"{program} get did not answer within {_TIMEOUT_SECONDS:.0f}s")
    except (OSError, ValueError) as err:  # not executable, bad interpreter line, NUL in a name
        return Miss(source, f"{program} could not be run: {type(err).__name__}")
    if done.returncode != 0:
        if NOT_FOUND in done.stdout.lower() or NOT_FOUND in done.stderr.lower():
            return Miss(source, f"{program} has no entry for {server}")
        # Quote the helper's error line, never something that looks like a credential payload.
        lines = [line for line in (done.stderr.strip() or done.stdout.strip()).splitlines() if "{" not in line]
        first = lines[0][:200] if lines else f"exit status {done.returncode}"
        return Miss(source, f"{program} get failed: {first}")
    try:
        payload = json.loads(done.stdout)
    except (ValueError, RecursionError):
        return Miss(source, f"{program} get answered something that is not helper JSON")
    if not isinstance(payload, dict):
        return Miss(source, f"{program} get answered {json_kind(payload)}, expected a JSON object")
    username, secret = payload.get("Username"), payload.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        # Name the field and its type, never its value: it may be the secret itself.
        key, value = ("Username", username) if not isinstance(username, str) else ("Secret", secret)
        got = "is missing" if value is None else f"is {json_kind(value)}"
        return Miss(source, f"{program} get answered helper JSON whose {key} {got}, expected a string")
    if not secret:
        return Miss(source, f"{program} has an empty secret for {server}")
    token = username == "<token>"
    return Credential(
        username="<token>" if token else username,
        password=Secret(secret),
        source=source,
        identity_token=token,
    )
