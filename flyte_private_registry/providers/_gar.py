"""Google Artifact Registry (``<location>-docker.pkg.dev``, and the ``gcr.io`` hosts it now serves).

GAR takes the user ``oauth2accesstoken`` with a one-hour OAuth access token. Sources, in order:
``GOOGLE_OAUTH_ACCESS_TOKEN``, Application Default Credentials through google-auth (the ``gcp``
extra: a key file, workload identity federation, ``gcloud auth application-default login``, the
metadata server), then ``gcloud auth print-access-token``. google-auth is imported only when
asked, and its credentials object is kept so the token is refreshed only when it expires.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from datetime import timezone
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import ConfigurationError
from .._reference import RegistryPrefix, canonical_host
from ..credentials import Credential, Miss, Secret
from ._base import Provider
from ._env import ConventionKeychain, first_error

if TYPE_CHECKING:
    from ..credentials import Keychain
    from ._base import RegistryView

GAR_USER = "oauth2accesstoken"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
INSTALL_HINT = "google-auth is not installed: pip install flyte-private-registry[gcp]"
GCR_HOSTS = frozenset({"gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"})
_GAR_HOST = re.compile(r"^(?P<location>[a-z]+(?:-[a-z]+[0-9]+)?)-docker\.pkg\.dev\Z", re.ASCII)
_LOCATION = re.compile(r"^[a-z]+(?:-[a-z]+[0-9]+)?\Z", re.ASCII)
_PROJECT = re.compile(r"^(?:(?P<domain>[a-z0-9][a-z0-9.-]*[a-z0-9]):)?(?P<id>[a-z][a-z0-9-]{4,28}[a-z0-9])\Z", re.ASCII)
_REPOSITORY = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z", re.ASCII)
_TIMEOUT_SECONDS = 30.0

_ADC: dict[tuple[str | None, ...], Any] = {}
_ADC_LOCK = threading.Lock()


def gar_prefix(location: str, project: str, repository: str) -> str:
    """``<location>-docker.pkg.dev/<project>/<repository>``.

    A domain-scoped project ``example.com:p`` becomes the path ``example.com/p``, as GAR spells it.
    """
    location, project, repository = (str(v).strip().lower() for v in (location, project, repository))
    if not _LOCATION.match(location):
        raise ConfigurationError(
            f"location={location!r} is not an Artifact Registry location: expected a region such as "
            "'us-central1' or 'europe-west4', or a multi-region 'us', 'europe' or 'asia'"
        )
    match = _PROJECT.match(project)
    if not match:
        raise ConfigurationError(
            f"project={project!r} is not a Google Cloud project id: 6-30 lower-case letters, digits and hyphens, "
            "starting with a letter (the id, not the display name or number), e.g. 'my-project'"
        )
    if not _REPOSITORY.match(repository):
        raise ConfigurationError(
            f"repository={repository!r} is not an Artifact Registry repository id: lower-case letters, digits "
            "and hyphens, starting with a letter, e.g. 'ml-images'"
        )
    project_path = f"{match.group('domain')}/{match.group('id')}" if match.group("domain") else match.group("id")
    return f"{location}-docker.pkg.dev/{project_path}/{repository}"


def is_gar_host(host: str) -> bool:
    host = canonical_host(host)
    return host in GCR_HOSTS or _GAR_HOST.match(host) is not None


def clear_token_cache() -> None:
    """Forget the google-auth credentials this process kept."""
    with _ADC_LOCK:
        _ADC.clear()


class GoogleAuthKeychain:
    """Application Default Credentials from google-auth, exchanged for an access token."""

    @property
    def name(self) -> str:
        return "Google Application Default Credentials (google-auth)"

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        try:
            import google.auth
            import google.auth.exceptions
            import google.auth.transport.requests
        except ImportError:
            return Miss(self.name, INSTALL_HINT)
        key = tuple(os.environ.get(v) for v in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "HOME"))
        try:
            with _ADC_LOCK:
                credentials = _ADC.get(key)
                if credentials is None:
                    credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                    _ADC[key] = credentials
                if not credentials.valid:
                    credentials.refresh(google.auth.transport.requests.Request())
                token, expiry = credentials.token, credentials.expiry
        except google.auth.exceptions.DefaultCredentialsError:
            return Miss(
                self.name,
                "no Application Default Credentials (set GOOGLE_APPLICATION_CREDENTIALS, run "
                "`gcloud auth application-default login`, or run on Google Cloud)",
            )
        except google.auth.exceptions.GoogleAuthError as err:
            return Miss(self.name, f"could not get an access token: {type(err).__name__}: {str(err)[:200]}")
        if not token:
            return Miss(self.name, "google-auth returned no access token")
        kind = type(credentials).__module__.rsplit(".", 1)[-1]
        return Credential(
            username=GAR_USER,
            password=Secret(token),
            source=f"{self.name}: {kind} credentials",
            expires_at=expiry.replace(tzinfo=timezone.utc) if expiry and expiry.tzinfo is None else expiry,
        )


class GcloudKeychain:
    """``gcloud auth print-access-token``: the account the user logged in with the gcloud CLI."""

    @property
    def name(self) -> str:
        return "gcloud auth print-access-token"

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            return Miss(self.name, "gcloud is not on PATH")
        try:
            done = subprocess.run(
                [gcloud, "auth", "print-access-token"],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return Miss(self.name, f"gcloud did not answer: {type(err).__name__}")
        token = done.stdout.strip()
        if done.returncode != 0 or not token:
            return Miss(self.name, f"gcloud failed: {first_error(done.stderr) or f'exit status {done.returncode}'}")
        return Credential(username=GAR_USER, password=Secret(token), source=self.name)


class GarProvider(Provider):
    """Artifact Registry: OAuth access tokens (one hour) as ``oauth2accesstoken``."""

    kind: ClassVar[str] = "gar"
    short_lived: ClassVar[bool] = True

    @classmethod
    def from_host(cls, host: str) -> GarProvider | None:
        return cls() if is_gar_host(host) else None

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        return [
            ConventionKeychain(token_env="GOOGLE_OAUTH_ACCESS_TOKEN", username=GAR_USER),
            GoogleAuthKeychain(),
            GcloudKeychain(),
        ]

    def refusal_hint(self, action: str, status: int) -> str | None:
        if action.startswith("push") or status == 403:
            return (
                "Artifact Registry needs roles/artifactregistry.writer on the repository to push "
                "(roles/artifactregistry.reader to pull), and the repository must exist: GAR creates images on "
                "push but not repositories (gcloud artifacts repositories create REPO --repository-format=docker "
                "--location=LOCATION)."
            )
        return (
            "Artifact Registry takes user oauth2accesstoken with a current OAuth access token (they last one "
            "hour), or _json_key / _json_key_base64 with a service account key; check which source "
            "`flyte-private-registry explain` shows."
        )
