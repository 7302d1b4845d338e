"""AWS ECR: host forms, tokens through boto3's default chain (moto server), the token cache, repositories.

boto3 runs unchanged against moto in server mode (``AWS_ENDPOINT_URL_ECR``), so the default
credential chain, endpoint resolution, request signing and error parsing are real. What moto
cannot show, and how these tests make up for it:

* its ``expiresAt`` is always 2015-01-01, so every token is "expired" by the wall clock: tests
  inject a clock (``clock=``) that says what "now" is, and check refreshes by moving it;
* it has no registry v2 API: the push lands in a rig registry serving TLS + htpasswd Basic
  (ECR's scheme) under the real ECR hostname, whose user ``AWS`` has moto's token as password;
* it has no ECR Public: a tiny JSON-protocol stub answers ``ecr-public`` calls instead.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import boto3
import botocore.exceptions
import pytest
from flytekit.image_spec.image_spec import ImageBuildEngine
from provider_rig import build_env, image_spec, serve_as, split_image  # noqa: F401 (build_env: a fixture)
from pydantic import SecretStr
from rig.moto_server import MOTO_ACCOUNT, MotoServer

from flyte_private_registry import (
    AuthorizationError,
    Credential,
    CredentialsError,
    Miss,
    PrivateRegistry,
    explain,
)
from flyte_private_registry._reference import docker_config_key
from flyte_private_registry.providers import EcrProvider, provider_for_host
from flyte_private_registry.providers._ecr import (
    _MEMORY,
    INSTALL_HINT,
    PUSH_ACTIONS,
    EcrKeychain,
    _FileCache,
    _Token,
    clear_token_cache,
    token_cache_dir,
)
from flyte_private_registry.providers._ecr_hosts import parse_ecr_host

ECR_HOST = f"{MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
MOTO_PASSWORD = f"{MOTO_ACCOUNT}-auth-token"
#: moto's fixed expiresAt; real ECR answers "now + 12 h".
MOTO_EXPIRY = datetime(2015, 1, 1, tzinfo=timezone.utc)


class Clock:
    """What "now" is for token expiry; starts 12 h before moto's expiry, as a fresh real token would."""

    def __init__(self, now: datetime = MOTO_EXPIRY - timedelta(hours=12)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def moto(rig_dir: Path) -> Iterator[MotoServer]:
    """moto in server mode; fails (never skips) when it cannot start."""
    try:
        server = MotoServer.start(rig_dir / "moto-ecr")
    except Exception as exc:  # a broken moto must fail the run, not hide the ECR tests
        pytest.fail(f"moto server could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def aws(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary_password: str) -> MotoServer:
    """A shell whose only AWS identity is env keys pointing at moto; a fresh token cache; a clean moto."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFPRTESTKEY000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary_password)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    clear_token_cache()
    moto.reset()
    yield moto
    clear_token_cache()


def _ecr_client() -> object:
    return boto3.client("ecr", region_name="us-east-1")


# ------------------------------------------------------------------------------------ host forms
@pytest.mark.parametrize(
    ("host", "account", "region", "partition", "fips", "public"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012", "us-east-1", "aws", False, False),
        ("123456789012.dkr.ecr-fips.us-east-2.amazonaws.com", "123456789012", "us-east-2", "aws", True, False),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "123456789012", "cn-north-1", "aws-cn", False, False),
        (
            "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
            "123456789012",
            "us-gov-west-1",
            "aws-us-gov",
            False,
            False,
        ),
        (
            "123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
            "123456789012",
            "us-gov-east-1",
            "aws-us-gov",
            True,
            False,
        ),
        ("123456789012.dkr-ecr.eu-west-1.on.aws", "123456789012", "eu-west-1", "aws", False, False),
        ("123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", "123456789012", "us-iso-east-1", "aws-iso", False, False),
        ("012345678901.DKR.ECR.AP-SOUTHEAST-2.AMAZONAWS.COM", "012345678901", "ap-southeast-2", "aws", False, False),
        ("public.ecr.aws", None, "us-east-1", "aws", False, True),
    ],
)
def test_host_forms_of_every_partition(host, account, region, partition, fips, public):
    parsed = parse_ecr_host(host)
    assert (parsed.account_id, parsed.region, parsed.partition, parsed.fips, parsed.public) == (
        account,
        region,
        partition,
        fips,
        public,
    )
    assert isinstance(provider_for_host(host), EcrProvider)


@pytest.mark.parametrize(
    ("host", "needle"),
    [
        ("12345.dkr.ecr.us-east-1.amazonaws.com", "is not an ECR host"),
        ("123456789012.dkr.ecr.amazonaws.com", "is not an ECR host"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", "ECR hosts have no port"),
        ("123456789012.ecr.us-east-1.amazonaws.com", "is not an ECR host"),
        ("123456789012.dkr.ecr.us-east-1.example.com", "is not an ECR host"),
        ("ghcr.io", "is not an ECR host"),
    ],
)
def test_bad_hosts_name_the_expected_form(host, needle):
    with pytest.raises(ValueError, match=needle) as info:
        parse_ecr_host(host)
    assert "<12-digit account>.dkr.ecr.<region>.amazonaws.com" in str(info.value)
    assert not isinstance(provider_for_host(host), EcrProvider)


@pytest.mark.parametrize(
    ("args", "kwargs", "registry"),
    [
        ((), {"account_id": "123456789012", "region": "us-east-1"}, ECR_HOST),
        (
            (),
            {"account_id": "123456789012", "region": "cn-northwest-1"},
            "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
        ),
        (
            (),
            {"account_id": "123456789012", "region": "us-gov-west-1", "fips": True},
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
        ),
        (
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ML/Team",),
            {},
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/team",
        ),
        (("public.ecr.aws/Acme",), {}, "public.ecr.aws/acme"),
    ],
)
def test_constructor_forms(args, kwargs, registry):
    reg = PrivateRegistry.ecr(*args, **kwargs, pull_secret="ecr-pull")
    assert reg.registry == registry
    assert reg.provider.kind == "ecr" and reg.pull_secret == "ecr-pull"
    assert docker_config_key(reg.host) == reg.host  # docker config and dockerconfigjson key: the bare host


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        ((), {"account_id": 123456789012, "region": "us-east-1"}, "as a string"),
        ((), {"account_id": "1234", "region": "us-east-1"}, "not a 12-digit AWS account id"),
        ((), {"account_id": "123456789012", "region": "virginia"}, "not an AWS region name"),
        ((), {"account_id": "123456789012"}, "needs account_id= and region="),
        ((ECR_HOST,), {"region": "us-east-1"}, "not both"),
        (("public.ecr.aws",), {}, "public.ecr.aws/<alias>"),
        (("ghcr.io/acme",), {}, "is not an ECR host"),
        ((ECR_HOST,), {"kms_key": "k", "encryption": "AES256"}, "kms_key= needs encryption='KMS'"),
    ],
)
def test_bad_declarations(args, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        PrivateRegistry.ecr(*args, **kwargs)


# ------------------------------------------------------------------------------------ tokens
def test_token_comes_from_boto3_default_chain(aws: MotoServer, canary_password: str):
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=Clock())
    credential = reg.resolve().require()
    # moto's token decodes to AWS:<account>-auth-token; that is what docker and our client send
    assert (credential.username, credential.password.get_secret_value()) == ("AWS", MOTO_PASSWORD)
    assert credential.expires_at == MOTO_EXPIRY
    assert "GetAuthorizationToken" in credential.source and "env credentials" in credential.source
    text = reg.explain()
    assert "using AWS ECR GetAuthorizationToken" in text and "(user 'AWS')" in text
    assert MOTO_PASSWORD not in text and canary_password not in text
    assert MOTO_PASSWORD not in repr(credential)
    for _ in range(5):
        reg.resolve()
    assert aws.calls("GetAuthorizationToken") == 1


def test_named_profile_from_the_shared_credentials_file(aws: MotoServer, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[ci]\naws_access_key_id = AKIAFPRPROFILE000001\naws_secret_access_key = from-profile\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", profile="ci", clock=Clock())
    credential = reg.resolve().require()
    assert "profile ci" in credential.source and "shared-credentials-file credentials" in credential.source
    monkeypatch.setenv("AWS_PROFILE", "ci")  # the default chain honours AWS_PROFILE as well
    assert PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=Clock()).resolve().credential
    missing = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", profile="nope")
    assert "AWS profile not found" in missing.explain()


def test_token_is_refreshed_shortly_before_it_expires(aws: MotoServer):
    """moto's expiresAt is fixed (2015-01-01), so "now" is moved instead of waiting 12 hours."""
    clock = Clock(MOTO_EXPIRY - timedelta(hours=12))
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock)
    reg.resolve()
    clock.now = MOTO_EXPIRY - timedelta(hours=1, minutes=1)  # still more than the 1 h margin left
    reg.resolve()
    assert aws.calls("GetAuthorizationToken") == 1
    clock.now = MOTO_EXPIRY - timedelta(minutes=59)  # inside the margin: fetch a new one
    assert reg.resolve().credential.expires_at == MOTO_EXPIRY
    assert aws.calls("GetAuthorizationToken") == 2
    # moto's "new" token has 59 min left; a real one would have 12 h. Short tokens are reused
    # until half their life has gone, so a run of builds does not ask again for each one.
    clock.now = MOTO_EXPIRY - timedelta(minutes=35)
    reg.resolve()
    assert aws.calls("GetAuthorizationToken") == 2


def test_wall_clock_treats_moto_tokens_as_expired(aws: MotoServer):
    """Without an injected clock, moto's 2015 expiry is in the past: every resolve asks again."""
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1")
    reg.resolve()
    reg.resolve()
    assert aws.calls("GetAuthorizationToken") == 2


_RESOLVE = """
import sys
from datetime import datetime
from flyte_private_registry import PrivateRegistry
now = datetime.fromisoformat(sys.argv[1])
reg = PrivateRegistry.ecr(account_id="123456789012", region=sys.argv[2], clock=lambda: now)
print(reg.resolve().require().username)
"""


def _resolve_in_processes(count: int, now: datetime, region: str = "us-east-1") -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RESOLVE, now.isoformat(), region],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "AWS"


def test_cache_file_is_private_and_shared_by_processes_started_together(aws: MotoServer, canary_password: str):
    now = MOTO_EXPIRY - timedelta(hours=6)
    _resolve_in_processes(4, now)  # four processes racing on an empty cache
    assert aws.calls("GetAuthorizationToken") == 1

    directory = token_cache_dir()
    assert directory == Path(os.environ["XDG_CACHE_HOME"]) / "flyte-private-registry" / "ecr"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (entry,) = directory.glob("*.json")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    stored = json.loads(entry.read_text())
    # the token and what it is for; never the AWS identity that fetched it
    assert stored["password"] == MOTO_PASSWORD and stored["registry"] == MOTO_ACCOUNT
    assert canary_password not in entry.read_text() and "AKIAFPRTESTKEY000001" not in entry.read_text()
    assert not list(directory.glob("*.tmp"))

    _resolve_in_processes(1, now)  # a later process reads the file
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=lambda: now)
    reg.resolve()
    assert aws.calls("GetAuthorizationToken") == 1


def test_cache_is_keyed_by_identity_region_and_endpoint(aws: MotoServer, monkeypatch: pytest.MonkeyPatch):
    clock = Clock()
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock).resolve()
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-west-2", clock=clock).resolve()
    assert aws.calls("GetAuthorizationToken") == 2
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFPRTESTKEY000002")  # another identity must not reuse it
    clear_token_cache()  # a new process
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock).resolve()
    assert aws.calls("GetAuthorizationToken") == 3
    assert len(list(token_cache_dir().glob("*.json"))) == 3


def test_cache_file_readable_by_others_is_not_trusted(aws: MotoServer):
    clock = Clock()
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock).resolve()
    (entry,) = token_cache_dir().glob("*.json")
    entry.chmod(0o644)
    clear_token_cache()
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock).resolve()
    assert aws.calls("GetAuthorizationToken") == 2
    assert stat.S_IMODE(next(token_cache_dir().glob("*.json")).stat().st_mode) == 0o600


def test_nothing_in_the_cache_outlives_its_token(aws: MotoServer):
    clock = Clock()
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock).resolve()
    assert len(list(token_cache_dir().glob("*.json"))) == 1
    clock.now = MOTO_EXPIRY + timedelta(seconds=1)
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="eu-west-1", clock=clock).resolve()  # any write prunes
    assert list(token_cache_dir().glob("*.json")) == []


def test_a_lookup_after_expiry_deletes_the_file_even_when_nothing_is_written(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
):
    clock = Clock()
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=clock)
    reg.resolve()
    (entry,) = token_cache_dir().glob("*.json")
    clear_token_cache()  # a new process: only the file remembers the token

    def throttled(*args: object) -> None:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetAuthorizationToken"
        )

    monkeypatch.setattr(EcrKeychain, "_fetch", staticmethod(throttled))
    clock.now = MOTO_EXPIRY - timedelta(minutes=30)  # due for a refresh, not yet expired: kept
    assert reg.resolve().credential is None and entry.exists()
    clock.now = MOTO_EXPIRY  # expired: the lookup deletes it, although the refetch fails
    resolution = reg.resolve()
    assert resolution.credential is None and "ThrottlingException" in reg.explain()
    assert not entry.exists() and list(token_cache_dir().glob("*.json")) == []


def test_lookups_prune_every_expired_entry_and_memory_forgets_expired_tokens():
    files = _FileCache(token_cache_dir())
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def token(hours: int) -> _Token:
        return _Token("AWS", SecretStr(f"token-{hours}"), start + timedelta(hours=hours), start)

    with files.locked():
        files.write("short", token(1), {}, start)
        files.write("long", token(12), {}, start)
    later = start + timedelta(hours=2)
    assert files.read("long", later) is not None and (files.directory / "ecr-token-short.json").exists()
    assert files.lookup("long", later).password.get_secret_value() == "token-12"  # a hit that writes nothing
    assert sorted(p.name for p in files.directory.glob("*.json")) == ["ecr-token-long.json"]
    assert files.read("long", start + timedelta(hours=12)) is None  # read and found expired: deleted
    assert list(files.directory.glob("*.json")) == []

    _MEMORY["key"] = token(1)
    assert EcrKeychain._cached("key", later, None) is None
    assert "key" not in _MEMORY


_START = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _token(secret: str, hours: int = 12) -> _Token:
    return _Token("AWS", SecretStr(secret), _START + timedelta(hours=hours), _START)


def test_cache_never_follows_a_symlinked_directory(tmp_path: Path, canary_password: str):
    """A link planted where the cache dir goes is refused: nothing written, chmodded or deleted through it."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    foreign = elsewhere / "notes.json"
    foreign.write_text("{}")
    directory = tmp_path / "cache" / "ecr"
    directory.parent.mkdir()
    directory.symlink_to(elsewhere)
    files = _FileCache(directory)
    with files.locked():
        files.write("k", _token(canary_password), {}, _START)
    assert files.lookup("k", _START) is None
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes.json"] and foreign.read_text() == "{}"
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755
    assert directory.is_symlink()


def test_cache_touches_only_its_own_files(tmp_path: Path):
    """Other *.json (a user's, another tool's) survive pruning; our entries are 0600 in a 0700 dir."""
    directory = tmp_path / "ecr"
    directory.mkdir(mode=0o755)  # ours but too open: tightened on the descriptor, not through a path
    foreign = {name: directory / name for name in ("notes.json", "ecr-token-.json", "ecr-token-x.json.bak")}
    for path in foreign.values():
        path.write_text("not a token")
    files = _FileCache(directory)
    files.write("k", _token("secret-a"), {}, _START)
    files.prune(_START + timedelta(days=1))  # everything of ours has expired by then
    assert all(path.read_text() == "not a token" for path in foreign.values())
    assert not (directory / "ecr-token-k.json").exists()
    files.write("k", _token("secret-b"), {}, _START)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "ecr-token-k.json").stat().st_mode) == 0o600
    with files.locked():
        assert stat.S_IMODE((directory / "ecr-tokens.lock").stat().st_mode) == 0o600


def test_a_symlinked_entry_is_not_read(tmp_path: Path):
    directory = tmp_path / "ecr"
    files = _FileCache(directory)
    files.write("real", _token("secret-real"), {}, _START)
    (directory / "ecr-token-k.json").symlink_to(directory / "ecr-token-real.json")
    assert files.read("k", _START) is None
    assert files.read("real", _START) is not None


_KILLED_WRITER = """
import os, sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from pydantic import SecretStr
from flyte_private_registry.providers import _ecr

def stall(*args, **kwargs):  # the token is in the temporary file; the writer dies before the rename
    print("written", flush=True)
    time.sleep(60)

_ecr.os.replace = stall
start = datetime(2030, 1, 1, tzinfo=timezone.utc)
token = _ecr._Token("AWS", SecretStr(sys.argv[2]), start + timedelta(hours=12), start)
_ecr._FileCache(Path(sys.argv[1])).write("k", token, {}, start)
"""


def test_a_temporary_file_left_by_a_killed_writer_is_swept(tmp_path: Path, canary_password: str):
    directory = tmp_path / "ecr"
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(directory), canary_password], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "written"
    writer.kill()
    writer.wait(timeout=10)
    (leftover,) = directory.glob(".ecr-token-k.*.tmp")
    assert canary_password in leftover.read_text() and stat.S_IMODE(leftover.stat().st_mode) == 0o600

    files = _FileCache(directory)
    assert files.lookup("other", _START) is None  # any lookup sweeps what a dead writer left
    assert not leftover.exists()
    assert not any(canary_password in p.read_text() for p in directory.iterdir() if p.is_file())


def test_earlier_versions_files_are_swept(tmp_path: Path):
    """v0.1 named entries ``<key>.json`` and temporaries ``.<key>.<pid>.<rand>.tmp``: ours, so removed."""
    directory = tmp_path / "ecr"
    directory.mkdir(mode=0o700)
    old_key = "a" * 40
    old = [directory / f"{old_key}.json", directory / f".{old_key}.999999999.deadbeef.tmp"]
    for path in old:
        path.write_text(_token("old-secret").to_json({}))
        path.chmod(0o600)
        os.utime(path, (0, 0))
    _FileCache(directory).lookup("k", _START)
    assert not any(path.exists() for path in old)


def test_token_cache_can_be_turned_off(aws: MotoServer):
    PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=Clock(), token_cache=False).resolve()
    assert not token_cache_dir().exists() or not list(token_cache_dir().glob("*.json"))


def test_no_aws_credentials_is_a_miss_that_says_where_boto3_looked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1")
    resolution = reg.resolve()
    assert resolution.credential is None
    assert "boto3 found no AWS credentials" in reg.explain()
    with pytest.raises(CredentialsError, match=r"(?s)boto3 found no AWS credentials.*docker config"):
        resolution.require()


def test_docker_config_is_the_fallback_after_boto3(monkeypatch: pytest.MonkeyPatch, user_docker_config: Path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    auth = base64.b64encode(b"AWS:from-docker-login").decode()
    (user_docker_config / "config.json").write_text(json.dumps({"auths": {ECR_HOST: {"auth": auth}}}))
    text = explain(f"{ECR_HOST}/team/app:v1")
    assert "provider ecr" in text and "using docker config" in text
    assert "boto3 found no AWS credentials" in text and "from-docker-login" not in text


def test_boto3_is_imported_only_when_a_token_is_needed_and_its_absence_is_explained():
    script = """
import sys
import flytekit, flyte_private_registry
from flyte_private_registry import PrivateRegistry
reg = PrivateRegistry.ecr(account_id="123456789012", region="us-east-1")
assert "boto3" not in sys.modules and "botocore" not in sys.modules, "declaring must not import boto3"
sys.modules["boto3"] = None
sys.modules["botocore"] = None
sys.modules["botocore.exceptions"] = None
print(reg.explain())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert INSTALL_HINT in done.stdout


# ------------------------------------------------------------------------------------ ECR Public
class _EcrPublicStub(http.server.BaseHTTPRequestHandler):
    """Answers ecr-public's JSON protocol (moto has no ECR Public); records target and signing scope."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.headers.get("X-Amz-Target", ""), self.headers.get("Authorization", "")))
        token = base64.b64encode(b"AWS:ecr-public-token").decode()
        body = json.dumps({"authorizationData": {"authorizationToken": token, "expiresAt": 4102444800.0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_ecr_public_token_comes_from_ecr_public_in_us_east_1(monkeypatch: pytest.MonkeyPatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EcrPublicStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # ignored: ECR Public lives in us-east-1
        reg = PrivateRegistry.ecr("public.ecr.aws/acme")
        credential = reg.resolve().require()
    finally:
        server.shutdown()
        server.server_close()
    assert (credential.username, credential.password.get_secret_value()) == ("AWS", "ecr-public-token")
    assert credential.expires_at == datetime(2100, 1, 1, tzinfo=timezone.utc)
    target, authorization = _EcrPublicStub.seen[-1]
    assert target == "SpencerFrontendService.GetAuthorizationToken"
    assert "/us-east-1/ecr-public/aws4_request" in authorization
    assert parse_ecr_host("public.ecr.aws").api_repository("acme/team/app") == "team/app"


# ------------------------------------------------------------------------------------ repositories
def test_missing_repository_is_created_with_the_options(aws: MotoServer):
    reg = PrivateRegistry.ecr(
        account_id=MOTO_ACCOUNT,
        region="us-east-1",
        scan_on_push=True,
        tag_mutability="immutable",
        kms_key="arn:aws:kms:us-east-1:123456789012:key/fpr",
    )
    reg.provider.prepare_push(reg, "team/app", None)
    reg.provider.prepare_push(reg, "team/app", None)  # idempotent: the second call only looks
    assert aws.calls("CreateRepository") == 1 and aws.calls("DescribeRepositories") == 2
    (repo,) = _ecr_client().describe_repositories(repositoryNames=["team/app"])["repositories"]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["encryptionConfiguration"] == {
        "encryptionType": "KMS",
        "kmsKey": "arn:aws:kms:us-east-1:123456789012:key/fpr",
    }


def test_repository_creation_is_race_safe(aws: MotoServer):
    """Eight builds preparing the same new repository at once: one creates it, none fails."""
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1")
    errors: list[BaseException] = []

    def prepare() -> None:
        try:
            reg.provider.prepare_push(reg, "team/raced", None)
        except BaseException as err:  # collected for the assertion below
            errors.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_ecr_client().describe_repositories(repositoryNames=["team/raced"])["repositories"]) == 1
    # the lost race itself, deterministically: create answers RepositoryAlreadyExists, which is fine
    ecr = parse_ecr_host(reg.host)
    reg.provider._create(_ecr_client(), ecr, "team/raced")


def test_repository_creation_can_be_turned_off(aws: MotoServer):
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", create_repository=False)
    reg.provider.prepare_push(reg, "team/app", None)
    assert aws.targets() == []
    assert reg.provider.describe() == "ecr (repositories must exist)"


def test_without_aws_credentials_creation_is_skipped_with_a_warning(monkeypatch, capsys):
    """Pushing with `docker login` credentials only is legitimate: the build goes on, warned."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1")
    reg.provider.prepare_push(reg, "team/app", None)
    out = capsys.readouterr().out
    assert "boto3 found no AWS credentials: cannot check that ECR repository team/app exists" in out
    assert "create_repository=False" in out


@pytest.fixture(scope="module")
def iam_moto(rig_dir: Path) -> Iterator[tuple[MotoServer, dict[str, tuple[str, str]]]]:
    """A moto that enforces IAM policies, with users 'pusher' (no ecr:CreateRepository) and 'nobody'."""
    setup_calls = 6  # create_user, put_user_policy, create_access_key for two users; then IAM is enforced
    server = MotoServer.start(rig_dir / "moto-iam", env={"INITIAL_NO_AUTH_ACTION_COUNT": str(setup_calls)})
    iam = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    policies = {
        "pusher": ["ecr:GetAuthorizationToken", "ecr:DescribeRepositories", *PUSH_ACTIONS],
        "nobody": ["s3:ListAllMyBuckets"],
    }
    keys = {}
    for user, actions in policies.items():
        iam.create_user(UserName=user)
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    yield server, keys
    server.stop()


def test_access_denied_names_the_missing_iam_action(iam_moto, monkeypatch: pytest.MonkeyPatch):
    server, keys = iam_moto
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", server.url)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["nobody"][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["nobody"][1])
    reg = PrivateRegistry.ecr(account_id=MOTO_ACCOUNT, region="us-east-1", clock=Clock())
    answer = EcrKeychain(reg.host, reg.provider).resolve(reg.reference)
    assert isinstance(answer, Miss)
    assert "AccessDenied" in answer.reason and "grant the IAM action ecr:GetAuthorizationToken" in answer.reason
    assert "arn:aws:iam::123456789012:user/nobody" in answer.reason
    with pytest.raises(AuthorizationError, match="missing IAM permission ecr:DescribeRepositories"):
        reg.provider.prepare_push(reg, "team/app", None)

    clear_token_cache()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["pusher"][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["pusher"][1])
    assert isinstance(reg.resolve().credential, Credential)  # pusher may log in ...
    with pytest.raises(AuthorizationError) as info:  # ... but not create repositories
        reg.provider.prepare_push(reg, "team/app", None)
    message = str(info.value)
    assert f"user/pusher may not create repository 'team/app' in ECR registry {ECR_HOST}" in message
    assert (
        "missing IAM permission ecr:CreateRepository on arn:aws:ecr:us-east-1:123456789012:repository/team/app"
        in message
    )
    assert "create_repository=False" in message and keys["pusher"][1] not in message


def test_refusal_hints_name_the_iam_actions():
    provider = EcrProvider()
    push = provider.refusal_hint("push", 403)
    assert all(action in push for action in ("ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:CompleteLayerUpload"))
    assert "ecr:BatchGetImage" in provider.refusal_hint("pull team/app", 403)
    assert "ecr:GetAuthorizationToken" in provider.refusal_hint("log in", 401)


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture
def ecr_stand_in(rig_dir, docker_engine, ca, aws: MotoServer):
    """A TLS + Basic registry answering as the ECR host; user AWS's password is moto's token, decoded."""
    data = _ecr_client().get_authorization_token(registryIds=[MOTO_ACCOUNT])["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert (user, password) == ("AWS", MOTO_PASSWORD)
    assert data["proxyEndpoint"] == f"https://{ECR_HOST}"
    with serve_as(
        rig_dir, docker_engine, ca, hostname=ECR_HOST, ip="127.0.0.51", auth="basic", users={user: password}
    ) as stand_in:
        aws.reset()  # forget the call above: the test counts the library's own calls
        yield stand_in


@pytest.mark.usefixtures("build_env")
def test_imagespec_build_creates_the_repository_and_pushes_with_one_token(
    ecr_stand_in, aws: MotoServer, ca, capfd, canary_password
):
    reg = PrivateRegistry.ecr(
        f"{ECR_HOST}/team",
        ca_file=ca.ca_file,  # the stand-in's certificate is from the rig CA; the client verifies it
        clock=Clock(),
        scan_on_push=True,
        tag_mutability="IMMUTABLE",
    )
    spec = image_spec(reg.registry)
    ImageBuildEngine.build(spec)
    out = capfd.readouterr()

    repository, tag = split_image(spec.image_name())
    assert repository.startswith("team/app-")
    assert tag in ecr_stand_in.stored_tags(repository)  # the image is in the registry
    (repo,) = _ecr_client().describe_repositories(repositoryNames=[repository])["repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE" and repo["imageScanningConfiguration"]["scanOnPush"]
    assert f"Created ECR repository {repository}" in out.out and "Verified" in out.out
    assert aws.calls("GetAuthorizationToken") == 1
    assert aws.calls("CreateRepository") == 1

    ImageBuildEngine.build.cache_clear()  # the next pyflyte run in the same process
    ImageBuildEngine.build(spec)
    assert "Skip building" in capfd.readouterr().out
    assert aws.calls("GetAuthorizationToken") == 1 and aws.calls("CreateRepository") == 1

    for text in (out.out, out.err, ecr_stand_in.logs()):
        assert canary_password not in text
