"""AWS ECR: host forms in every partition, ECR Public, tokens from boto3, repositories created before a push.

Why a cache file: every ``pyflyte`` run is a new process and docker may run our helper once per
push; asking ``GetAuthorizationToken`` each time is slow and throttled. Like
docker-credential-ecr-login we keep the 12-hour token in a 0600 file until shortly before it
expires, keyed by AWS identity, registry, region and endpoint. The file holds the token and its
expiry only (never AWS credentials), and an expired entry is deleted by the next lookup or write
(by any process). boto3 is imported lazily, when a token is needed. ``import flytekit`` does not
load this module (its plugin entry point loads only ``_plugin``, ``_builder`` and
``_docker_cli_builder``); providers are imported when a registry is declared.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._errors import AuthorizationError, ConfigurationError, RegistryError
from .._reference import RegistryPrefix
from ..credentials import Credential, Miss, Secret
from ..distribution._private_dir import PrivateDir, user_cache_dir
from ._base import Provider
from ._ecr_hosts import (
    EcrHost,
    is_ecr_host,
    parse_ecr_host,
)

if TYPE_CHECKING:
    from ..credentials import Keychain
    from ._base import RegistryView

Clock = Callable[[], datetime]

#: A token is reused until this long before it expires (half its lifetime if that is shorter).
REFRESH_BEFORE = timedelta(hours=1)
INSTALL_HINT = "boto3 is not installed: pip install flyte-private-registry[aws]"
PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")

_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
_AUTH_CODES = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredToken", "ExpiredTokenException"}
)
#: Env vars that change which identity or endpoint boto3 uses: part of the client cache key.
_BOTO_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


# ---------------------------------------------------------------------------------------- cache
def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class _Token:
    username: str
    password: Secret
    expires_at: datetime
    fetched_at: datetime

    def fresh(self, now: datetime) -> bool:
        """Reusable now? Refresh ``REFRESH_BEFORE`` ahead (or at half-life for short tokens)."""
        lifetime = self.expires_at - self.fetched_at
        margin = min(REFRESH_BEFORE, max(lifetime / 2, timedelta(0)))
        return now < self.expires_at - margin

    def to_json(self, key_fields: dict[str, str]) -> str:
        return json.dumps(
            {
                "version": 1,
                **key_fields,
                "username": self.username,
                "password": self.password.get_secret_value(),
                "expires_at": self.expires_at.isoformat(),
                "fetched_at": self.fetched_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Token:
        data = json.loads(text)
        return cls(
            username=data["username"],
            password=Secret(data["password"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            fetched_at=datetime.fromisoformat(data["fetched_at"]),
        )


_MEMORY: dict[str, _Token] = {}
_CLIENTS: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_LOCK = threading.RLock()


def clear_token_cache() -> None:
    """Forget this process's tokens and boto3 clients (the cache file is left alone)."""
    with _LOCK:
        _MEMORY.clear()
        _CLIENTS.clear()


def token_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/flyte-private-registry/ecr`` (``~/.cache/...``), like other per-user caches."""
    return user_cache_dir("ecr")


class _FileCache:
    """One 0600 JSON file per key in a 0700 directory of ours (a :class:`PrivateDir`), written atomically.

    ``PrivateDir`` keeps it symlink-safe, touches only our names, writes through temporary files
    and sweeps those a killed writer left behind. What is ECR's own: the names
    (``ecr-token-<key>.json``, the lock, and the names of earlier versions, so that their files are
    swept too), the token format, and that expired entries are deleted whenever the cache is used
    (a lookup prunes them, and so does a write): a token never outlives its expiry for long.
    """

    LOCK = "ecr-tokens.lock"
    _KEY = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
    _ENTRY = re.compile(r"ecr-token-[A-Za-z0-9_-]{1,64}\.json|[0-9a-f]{40}\.json", re.ASCII)  # ours, then v0.1
    #: Entries, the lock, and the stems earlier versions named temporary files after (theirs were
    #: ``.ecr-token-<key>.<pid>.<rand>.tmp`` and v0.1 ``.<key>.<pid>.<rand>.tmp``; PrivateDir's are
    #: ``.ecr-token-<key>.json.<pid>.<rand>.tmp``), so those are swept too.
    _OURS = re.compile(r"(?:ecr-token-[A-Za-z0-9_-]{1,64}|[0-9a-f]{40})(?:\.json)?|ecr-tokens\.lock", re.ASCII)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files = PrivateDir(directory, self._OURS.fullmatch)

    @staticmethod
    def name(key: str) -> str:
        return f"ecr-token-{key}.json"

    def locked(self) -> contextlib.AbstractContextManager[bool]:
        """Serialise fetches across processes, so five builds starting at once ask AWS once."""
        return self._files.locked(self.LOCK)

    def lookup(self, key: str, now: datetime) -> _Token | None:
        """The stored token for ``key`` (``None`` if absent or expired), after deleting every expired entry."""
        with self._files.opened() as dir_fd:
            if dir_fd is None:
                return None
            self._prune(dir_fd, now)
            return self._read(dir_fd, key, now)

    def read(self, key: str, now: datetime) -> _Token | None:
        """The token stored for ``key``; one that has expired by ``now`` is deleted, not returned."""
        with self._files.opened() as dir_fd:
            return None if dir_fd is None else self._read(dir_fd, key, now)

    def write(self, key: str, token: _Token, key_fields: dict[str, str], now: datetime) -> None:
        if not self._KEY.fullmatch(key):
            return
        with self._files.opened() as dir_fd:
            if dir_fd is not None:
                self._files.write(dir_fd, self.name(key), token.to_json(key_fields).encode())
                self._prune(dir_fd, now)

    def prune(self, now: datetime) -> None:
        """Delete expired or unreadable entries and abandoned temporary files: nothing outlives its token."""
        with self._files.opened() as dir_fd:
            if dir_fd is not None:
                self._prune(dir_fd, now)

    def _read(self, dir_fd: int, key: str, now: datetime) -> _Token | None:
        if not self._KEY.fullmatch(key):
            return None
        token = self._load(dir_fd, self.name(key))
        if token is not None and token.expires_at <= now:
            self._files.unlink(dir_fd, self.name(key))
            return None
        return token

    def _prune(self, dir_fd: int, now: datetime) -> None:
        def stale(name: str) -> bool:
            if not self._ENTRY.fullmatch(name):
                return False  # the lock, or a bare stem: not an entry
            token = self._load(dir_fd, name) if name.startswith("ecr-token-") else None  # v0.1: dropped
            return token is None or token.expires_at <= now

        self._files.sweep(dir_fd, stale)

    @staticmethod
    def _load(dir_fd: int, name: str) -> _Token | None:
        """The token in ``name`` if it is a regular 0600 file of ours (links are not followed)."""
        data = PrivateDir.read(dir_fd, name, 1 << 16)
        try:
            return None if data is None else _Token.from_json(data.decode("utf-8"))
        except (ValueError, KeyError, TypeError):
            return None


# ---------------------------------------------------------------------------------------- boto3
def _aws_message(err: Any) -> str:
    """AWS's own error message, short (moto wraps some in XML)."""
    message = str(err.response.get("Error", {}).get("Message", "")) if hasattr(err, "response") else str(err)
    inner = re.search(r"<Message>(.*?)</Message>", message, re.S)
    return (inner.group(1) if inner else message).strip()[:300]


def _error_code(err: Any) -> str:
    return str(err.response.get("Error", {}).get("Code", "")) if hasattr(err, "response") else ""


def _is_denied(err: Any) -> bool:
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if hasattr(err, "response") else None
    return _error_code(err) in _DENIED_CODES or (status == 403 and _error_code(err) not in _AUTH_CODES)


def _principal(message: str) -> str:
    found = re.search(r"(arn:aws[\w-]*:(?:iam|sts)::\d{12}:\S+?)(?=\s|$)", message)
    return found.group(1) if found else "the AWS identity boto3 found"


def _session_and_client(ecr: EcrHost, profile: str | None) -> tuple[Any, Any]:
    """A cached boto3 session + client for this host's service and region (FIPS when the host says so)."""
    import boto3
    from botocore.config import Config

    key = (ecr.service, ecr.region, ecr.fips, profile, tuple(os.environ.get(k) for k in _BOTO_ENV))
    with _LOCK:
        found = _CLIENTS.get(key)
        if found is None:
            session = boto3.session.Session(profile_name=profile)
            config = Config(use_fips_endpoint=ecr.fips, user_agent_extra="flyte-private-registry")
            found = (session, session.client(ecr.service, region_name=ecr.region, config=config))
            _CLIENTS[key] = found
        return found


class _BadToken(ValueError):
    """ECR (or something posing as it) answered a token we cannot decode."""


class EcrKeychain:
    """``GetAuthorizationToken`` through boto3's default chain (env, profile, SSO, IRSA, instance role)."""

    def __init__(self, host: str, provider: EcrProvider) -> None:
        self.host = host
        self.provider = provider

    @property
    def name(self) -> str:
        profile = f", profile {self.provider.profile}" if self.provider.profile else ""
        return f"AWS ECR GetAuthorizationToken (boto3 default credential chain{profile})"

    def resolve(self, resource: RegistryPrefix) -> Credential | Miss:
        try:
            ecr = parse_ecr_host(resource.host)
        except ConfigurationError as err:
            return Miss(self.name, str(err))
        try:
            import botocore.exceptions as aws
        except ImportError:
            return Miss(self.name, INSTALL_HINT)
        action = "ecr-public:GetAuthorizationToken" if ecr.public else "ecr:GetAuthorizationToken"
        try:
            return self._resolve(ecr)
        except aws.NoCredentialsError:
            return Miss(
                self.name,
                "boto3 found no AWS credentials (env AWS_ACCESS_KEY_ID, AWS_PROFILE / ~/.aws, SSO, "
                "web identity / IRSA, container or instance role)",
            )
        except aws.ProfileNotFound as err:
            return Miss(self.name, f"AWS profile not found: {err}")
        except aws.ClientError as err:
            if _is_denied(err):
                message = _aws_message(err)
                return Miss(
                    self.name,
                    f"AccessDenied: {_principal(message)} may not call {action}; grant the IAM action "
                    f"{action} (resource '*') to it. AWS said: {message}",
                )
            return Miss(self.name, f"AWS refused {action}: {_error_code(err)}: {_aws_message(err)}")
        except aws.BotoCoreError as err:
            return Miss(self.name, f"{type(err).__name__}: {str(err)[:300]}")
        except _BadToken as err:
            return Miss(self.name, str(err))

    def _resolve(self, ecr: EcrHost) -> Credential | Miss:
        provider = self.provider
        clock = provider.clock or utc_now
        session, client = _session_and_client(ecr, provider.profile)
        credentials = session.get_credentials()
        if credentials is None:
            import botocore.exceptions as aws

            raise aws.NoCredentialsError()
        access_key = credentials.get_frozen_credentials().access_key
        key_fields = {
            "registry": ecr.registry_id,
            "region": ecr.region,
            "endpoint": str(client.meta.endpoint_url),
        }
        identity = hashlib.sha256(access_key.encode()).hexdigest()
        key = hashlib.sha256(json.dumps({**key_fields, "identity": identity}, sort_keys=True).encode()).hexdigest()[:40]
        source = f"{self.name}: {getattr(credentials, 'method', 'unknown')} credentials"

        token = self._cached(key, clock(), None)
        if token is None:
            files = _FileCache(token_cache_dir()) if provider.token_cache else None
            with _LOCK, files.locked() if files else contextlib.nullcontext():
                token = self._cached(key, clock(), files)
                if token is None:
                    token = self._fetch(client, ecr, clock())
                    _MEMORY[key] = token
                    if files is not None:
                        files.write(key, token, key_fields, clock())
        return Credential(token.username, token.password, source=source, expires_at=token.expires_at)

    @staticmethod
    def _cached(key: str, now: datetime, files: _FileCache | None) -> _Token | None:
        with _LOCK:
            token = _MEMORY.get(key)
            if token is not None and token.expires_at <= now:
                del _MEMORY[key]  # not even this process keeps an expired token
        if token is not None and token.fresh(now):
            return token
        if files is not None:
            token = files.lookup(key, now)  # also deletes expired entries, even if no token is written after
            if token is not None and token.fresh(now):
                with _LOCK:
                    _MEMORY[key] = token
                return token
        return None

    @staticmethod
    def _fetch(client: Any, ecr: EcrHost, now: datetime) -> _Token:
        if ecr.public:
            data = client.get_authorization_token()["authorizationData"]
        else:
            data = client.get_authorization_token(registryIds=[ecr.account_id])["authorizationData"][0]
        try:
            decoded = base64.b64decode(data["authorizationToken"]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _BadToken(f"ECR answered a token for {ecr.host} that is not base64 of user:password") from None
        username, _, password = decoded.partition(":")
        expires_at = data["expiresAt"]
        if isinstance(expires_at, (int, float)):
            expires_at = datetime.fromtimestamp(expires_at, timezone.utc)
        return _Token(username, Secret(password), expires_at.astimezone(timezone.utc), now)


# ---------------------------------------------------------------------------------------- provider
class EcrProvider(BaseModel, Provider):
    """AWS ECR (private, any partition) and ECR Public.

    ``create_repository`` (default on) creates a missing repository before the first push, with
    ``scan_on_push``, ``tag_mutability`` and ``encryption``/``kms_key`` when given (AWS's
    defaults otherwise). ``profile`` picks an AWS profile instead of the default chain.
    ``token_cache`` keeps tokens in a 0600 file so other processes reuse them. ``clock`` is what
    "now" means for token expiry (tests and benchmarks; moto's tokens expire in 2015).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = "ecr"
    short_lived: ClassVar[bool] = True

    create_repository: bool = True
    scan_on_push: bool | None = None
    tag_mutability: Literal["MUTABLE", "IMMUTABLE"] | None = None
    encryption: Literal["AES256", "KMS"] | None = None
    kms_key: str | None = None
    profile: str | None = None
    token_cache: bool = True
    clock: Clock | None = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("tag_mutability"), str):
            data["tag_mutability"] = data["tag_mutability"].upper()
        if isinstance(data.get("encryption"), str):
            data["encryption"] = data["encryption"].upper()
        if data.get("kms_key"):
            if data.get("encryption") not in (None, "KMS"):
                raise ConfigurationError(f"kms_key= needs encryption='KMS', not {data['encryption']!r}")
            data["encryption"] = "KMS"
        return data

    @classmethod
    def from_host(cls, host: str) -> EcrProvider | None:
        return cls() if is_ecr_host(host) else None

    def options(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)

    def keychains(self, registry: RegistryView) -> list[Keychain]:
        return [EcrKeychain(registry.host, self)]

    def refusal_hint(self, action: str, status: int) -> str | None:
        if action.startswith("push"):
            return (
                "The AWS identity needs " + ", ".join(PUSH_ACTIONS) + " on the repository (for a push to "
                "another account, the repository policy must allow them too)."
            )
        if action.startswith("pull"):
            return "The AWS identity needs " + ", ".join(PULL_ACTIONS) + " on the repository."
        return (
            "ECR tokens are valid for 12 hours, for one account's registry in one region, and carry the "
            "permissions of the identity that fetched them (ecr:GetAuthorizationToken); "
            "`flyte-private-registry explain` shows which identity that was."
        )

    def describe(self) -> str:
        if not self.create_repository:
            return "ecr (repositories must exist)"
        options = [
            f"scan on push {'on' if self.scan_on_push else 'off'}" if self.scan_on_push is not None else "",
            f"{self.tag_mutability} tags" if self.tag_mutability else "",
            f"{self.encryption} encryption" if self.encryption else "",
        ]
        shown = ", ".join(o for o in options if o)
        return f"ecr (creates missing repositories{': ' + shown if shown else ''})"

    # -- repositories ------------------------------------------------------------------------
    def prepare_push(self, registry: RegistryView, repository: str, credential: Credential | None) -> None:
        """Create ``repository`` if it does not exist: ECR, unlike most registries, never does on push."""
        if not self.create_repository:
            return
        ecr = parse_ecr_host(registry.host)
        name = ecr.api_repository(repository)
        try:
            import botocore.exceptions as aws
        except ImportError:
            _warn(f"{INSTALL_HINT}; cannot check that ECR repository {name} exists (the push fails if it does not)")
            return
        try:
            _, client = _session_and_client(ecr, self.profile)
            if self._exists(client, ecr, name):
                return
            self._create(client, ecr, name)
        except aws.NoCredentialsError:
            # Pushing with `docker login` credentials alone is legitimate; only creation is lost.
            _warn(
                f"boto3 found no AWS credentials: cannot check that ECR repository {name} exists in {ecr.host} "
                "(the push fails if it does not). Configure AWS credentials, or pass create_repository=False."
            )
        except aws.BotoCoreError as err:
            raise RegistryError(
                f"cannot check or create ECR repository {name} in {ecr.host}: {type(err).__name__}: {str(err)[:300]}",
                host=ecr.host,
            ) from None

    def _registry_id(self, ecr: EcrHost) -> dict[str, str]:
        return {} if ecr.public else {"registryId": ecr.registry_id}

    def _exists(self, client: Any, ecr: EcrHost, name: str) -> bool:
        try:
            client.describe_repositories(repositoryNames=[name], **self._registry_id(ecr))
            return True
        except client.exceptions.RepositoryNotFoundException:
            return False
        except client.exceptions.ClientError as err:
            raise self._refused(err, ecr, name, "DescribeRepositories", "look up") from None

    def _create(self, client: Any, ecr: EcrHost, name: str) -> None:
        options: dict[str, Any] = {}
        if not ecr.public:
            options.update(self._registry_id(ecr))
            if self.scan_on_push is not None:
                options["imageScanningConfiguration"] = {"scanOnPush": self.scan_on_push}
            if self.tag_mutability is not None:
                options["imageTagMutability"] = self.tag_mutability
            if self.encryption is not None:
                encryption = {"encryptionType": self.encryption}
                if self.kms_key:
                    encryption["kmsKey"] = self.kms_key
                options["encryptionConfiguration"] = encryption
        try:
            client.create_repository(repositoryName=name, **options)
        except client.exceptions.RepositoryAlreadyExistsException:
            return  # another build created it between our describe and create: fine
        except client.exceptions.ClientError as err:
            raise self._refused(err, ecr, name, "CreateRepository", "create") from None
        _info(f"Created ECR repository {name} in {ecr.host} ({self.describe()}).")

    def _refused(self, err: Any, ecr: EcrHost, name: str, operation: str, verb: str) -> RegistryError:
        service = "ecr-public" if ecr.public else "ecr"
        message = _aws_message(err)
        if _is_denied(err):
            return AuthorizationError(
                f"{_principal(message)} may not {verb} repository {name!r} in ECR registry {ecr.host}: "
                f"missing IAM permission {service}:{operation} on {ecr.repository_arn(name)}. Grant it, "
                "create the repository yourself, or pass create_repository=False if it already exists. "
                f"AWS said: {message}",
                host=ecr.host,
                status=403,
            )
        return RegistryError(
            f"ECR registry {ecr.host}: {service}:{operation} for repository {name!r} failed: "
            f"{_error_code(err)}: {message}",
            host=ecr.host,
        )


def _info(message: str) -> None:
    import click

    click.secho(message, fg="blue")


def _warn(message: str) -> None:
    import click

    click.secho(message, fg="yellow")
