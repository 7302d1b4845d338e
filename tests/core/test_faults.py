"""The registry client and ``check`` against a registry that misbehaves on purpose (tests/rig/fault_registry.py).

Every fault must end in a library error (or success, for the retried ones), within a measured
time, with bounded memory, no traceback and no secret (password, its Basic form, tokens) in any
message or CLI output.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from rig import CertificateAuthority, FaultRegistry

from flyte_private_registry import (
    AuthenticationError,
    FlytePrivateRegistryError,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    RetryPolicy,
    check,
)
from flyte_private_registry.cli._common import EXIT_UNREACHABLE, exit_code_for
from flyte_private_registry.credentials import Credential
from flyte_private_registry.distribution._auth import Challenge, TokenGrant, granted_actions, parse_token_response
from flyte_private_registry.distribution._client import _server_message
from flyte_private_registry.distribution._retry import parse_retry_after

CLI = str(Path(sys.executable).with_name("flyte-private-registry"))
FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=1.5, deadline=6.0)
TOKEN = "tok-" + "5e" * 16

MALFORMED_CHALLENGES = [
    'Bearer realm="unterminated',
    "Bearer",  # no realm
    "=====",
    'Bearer realm="https://x/token" service="no-comma"',
    'Bearer realm="a",realm="b"',
    'Bearer realm=",service=',
    "\x00\x01",
]
BAD_REALMS = ['Bearer realm="http://[::1",service="x"', 'Bearer realm="ftp://h/token"', 'Bearer realm="/relative"']
TOKEN_BODIES = [b"[]", b"null", b'"str"', b"{}", b'{"token": 5}', b'{"token": "a b\\n"}', b"[" * 100_000]


def _cred(password: str) -> Credential:
    return Credential("alice", SecretStr(password), source="env FPR_PW")


def _secrets(password: str, *extra: str) -> list[str]:
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    return [password, basic, basic.rstrip("="), TOKEN, *extra]


def _assert_clean(text: str, password: str, *extra: str) -> None:
    assert "Traceback" not in text, text
    for secret in _secrets(password, *extra):
        assert secret not in text, f"secret leaked: {text}"


def _run(reg: FaultRegistry, password: str, **client: Any) -> tuple[Any, float]:
    """login + HEAD v1: (result or the library error, seconds)."""
    started = time.monotonic()
    options: dict[str, Any] = {"retry": FAST, "timeout": 3.0, **client}
    try:
        with RegistryClient(reg.host, _cred(password), **options) as c:
            c.login("team/app")
            outcome: Any = c.manifest_digest("team/app", "v1")
    except FlytePrivateRegistryError as err:  # anything else fails the test with its traceback
        outcome = err
    return outcome, time.monotonic() - started


# -- retried faults succeed ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("5xx-then-ok", {"status": 502}),
        ("5xx-then-ok", {"status": 503}),
        ("5xx-then-ok", {"status": 504}),
        ("429-then-ok", {"retry_after": "1"}),
        ("reset", {}),
    ],
)
@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_retried_faults_succeed(fault, options, auth, canary_password):
    with FaultRegistry("alice", canary_password, fault=fault, auth=auth, token=TOKEN, times=2, **options) as reg:
        outcome, elapsed = _run(reg, canary_password)
        assert outcome == "sha256:" + "ab" * 32, outcome
        assert len(reg.manifest_requests()) == 3  # 2 faults, then the answer (the login token serves the HEAD)
    if fault == "429-then-ok":
        assert 2.0 <= elapsed < 5.0  # Retry-After: 1 honoured twice
    else:
        assert elapsed < 3.0


def test_endless_503_gives_up_within_the_policy(canary_password):
    with FaultRegistry("alice", canary_password, fault="503-forever") as reg:
        outcome, elapsed = _run(reg, canary_password)
        requests = len(reg.requests("/v2/"))
    assert isinstance(outcome, RegistryUnavailable) and outcome.status == 503
    assert requests == FAST.attempts and elapsed < FAST.deadline
    assert "4 attempt(s)" in str(outcome) and "'alice'" in str(outcome) and reg.host in str(outcome)
    assert exit_code_for(outcome) == EXIT_UNREACHABLE
    assert exit_code_for(RegistryUnavailable("x", status=429)) == EXIT_UNREACHABLE


def test_reset_forever_is_unavailable_naming_both_urls(canary_password):
    with FaultRegistry("alice", canary_password, fault="reset-forever") as reg:
        outcome, elapsed = _run(reg, canary_password)
    assert isinstance(outcome, RegistryUnavailable) and elapsed < FAST.deadline
    assert f"https://{reg.host}/v2/" in str(outcome) and f"http://{reg.host}/v2/" in str(outcome)


@pytest.mark.parametrize(("fault", "auth"), [("drip", "basic"), ("drip-token", "bearer")])
def test_dripping_server_cannot_stretch_the_deadline(fault, auth, canary_password):
    policy = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.5, deadline=4.0)
    with FaultRegistry("alice", canary_password, fault=fault, auth=auth, drip_interval=0.5) as reg:
        outcome, elapsed = _run(reg, canary_password, retry=policy, timeout=1.5)
    assert isinstance(outcome, RegistryUnavailable), outcome
    assert elapsed < policy.deadline + 1.5, elapsed  # a byte every 0.5 s would take minutes otherwise
    _assert_clean(str(outcome), canary_password)


def test_token_service_is_named_with_its_port(canary_password):
    with FaultRegistry("alice", canary_password, fault="token-body", auth="bearer", token_body=b"[]") as reg:
        outcome, _ = _run(reg, canary_password)
    assert f"token service 127.0.0.1:{reg.port}" in str(outcome)


# -- bounded memory ------------------------------------------------------------------------
_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    from pydantic import SecretStr
    from flyte_private_registry import FlytePrivateRegistryError, RegistryClient, RetryPolicy
    from flyte_private_registry.credentials import Credential
    host, password = sys.argv[1], sys.argv[2]
    policy = RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.1, deadline=20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        with RegistryClient(host, Credential("alice", SecretStr(password), "probe"), retry=policy) as client:
            client.login("team/app")
            outcome = "ok"
    except FlytePrivateRegistryError as err:
        outcome = type(err).__name__
    peak = tracemalloc.get_traced_memory()[1]
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "peak": peak, "rss_growth_kib": after - before}))
    """
)


@pytest.mark.parametrize(
    ("auth", "password_ok", "expected"),
    [("basic", True, "ok"), ("basic", False, "AuthenticationError"), ("bearer", True, "RegistryError")],
    ids=["v2-200-body", "401-error-body", "token-body"],
)
def test_huge_bodies_are_never_read_whole(auth, password_ok, expected, canary_password):
    with FaultRegistry("alice", canary_password, fault="huge", auth=auth) as reg:
        password = canary_password if password_ok else "wrong-" + canary_password
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, reg.host, password], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    figures = json.loads(done.stdout)
    assert figures["outcome"] == expected
    assert figures["peak"] < 8 * 1024 * 1024, figures  # the body is 300 MiB
    assert figures["rss_growth_kib"] < 64 * 1024, figures


# -- answers that used to crash ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"fault": "bad-gzip", "auth": "bearer"}, RegistryError, "cannot be decoded"),
        ({"fault": "redirect-loop"}, RegistryError, "redirect loop"),
        ({"fault": "no-challenge"}, AuthenticationError, "without a WWW-Authenticate challenge"),
        *[
            ({"fault": "challenge", "challenge": c}, RegistryError, "WWW-Authenticate")
            for c in MALFORMED_CHALLENGES[:-1]
        ],
        # not even HTTP (h11 refuses the header): treated like a dropped connection, retried, then unavailable
        ({"fault": "challenge", "challenge": MALFORMED_CHALLENGES[-1]}, RegistryUnavailable, "illegal header"),
        *[({"fault": "challenge", "challenge": c}, RegistryError, "is not a URL") for c in BAD_REALMS],
        *[({"fault": "token-body", "auth": "bearer", "token_body": b}, RegistryError, "token") for b in TOKEN_BODIES],
    ],
)
def test_odd_answers_are_library_errors(options, error, says, canary_password):
    with FaultRegistry("alice", canary_password, token=TOKEN, **options) as reg:
        outcome, elapsed = _run(reg, canary_password)
    assert type(outcome) is error or isinstance(outcome, error), outcome
    message = str(outcome)
    assert says in message and reg.host in message and "'alice'" in message, message
    assert elapsed < 3.0
    _assert_clean(message, canary_password)


@pytest.mark.parametrize("expires_in", ['"soon"', "[1]", "-5", "1e999", "true", "null"])
def test_non_numeric_expires_in_still_logs_in(expires_in, canary_password):
    body = f'{{"token": "{TOKEN}", "expires_in": {expires_in}}}'.encode()
    with FaultRegistry(
        "alice", canary_password, fault="token-body", auth="bearer", token=TOKEN, token_body=body
    ) as reg:
        outcome, _ = _run(reg, canary_password)
    assert outcome == "sha256:" + "ab" * 32, outcome


def test_no_challenge_fails_check_instead_of_auth_none(canary_password, monkeypatch):
    with FaultRegistry("alice", canary_password, fault="no-challenge") as reg:
        _declare(monkeypatch, reg, canary_password)
        report = check(f"{reg.host}/team")
    assert report.failure == "login" and not report.ok
    assert "auth none" not in json.dumps(report.to_dict())


# -- credentials stay where they belong ---------------------------------------------------------
def test_basic_credentials_never_go_to_an_http_realm_of_an_https_registry(canary_password, tmp_path):
    ca = CertificateAuthority(tmp_path / "ca")
    with FaultRegistry("alice", canary_password, fault="http-realm", auth="bearer", ca=ca, token=TOKEN) as reg:
        outcome, _ = _run(reg, canary_password, ca_file=ca.ca_file)
        assert isinstance(outcome, RegistryError) and "plain-http token service" in str(outcome), outcome
        assert f"127.0.0.1:{reg.plain_port}" in str(outcome)
        assert reg.requests(listener="plain") == []  # nothing, not even a connection with a header
        declared, _ = _run(reg, canary_password, ca_file=ca.ca_file, insecure=True)
        assert declared == "sha256:" + "ab" * 32
        assert len(reg.requests("/token", listener="plain")) == 1
    _assert_clean(str(outcome), canary_password)


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_echoed_authorization_is_scrubbed(auth, canary_password):
    with FaultRegistry("alice", canary_password, fault="echo-auth", auth=auth, token=TOKEN) as reg:
        outcome, _ = _run(reg, canary_password)
    assert isinstance(outcome, AuthenticationError)
    assert "rejected header: Basic ***" in str(outcome)
    _assert_clean(str(outcome), canary_password)


def test_echoed_bearer_token_is_scrubbed(canary_password):
    """The token service works; the registry then refuses the token, echoing it in its challenge."""
    with FaultRegistry("alice", canary_password, fault="echo-bearer", auth="bearer", token=TOKEN) as reg:
        with RegistryClient(reg.host, _cred(canary_password), retry=FAST) as client:
            client.login("team/app")
            with pytest.raises(AuthenticationError) as info:
                client.manifest_digest("team/app", "v1")
        assert len(reg.requests("/token")) == 2  # the refused token is replaced once, not in a loop
    assert "rejected Bearer ***" in str(info.value)
    _assert_clean(str(info.value), canary_password)


# -- the CLI against every fault ---------------------------------------------------------------
def _declare(monkeypatch: pytest.MonkeyPatch, reg: FaultRegistry, password: str, ca_file: Path | None = None) -> None:
    entry: dict[str, Any] = {"prefix": f"{reg.host}/team", "username": "alice", "password_env": "FPR_PW"}
    if ca_file is not None:
        entry["ca_file"] = str(ca_file)
    monkeypatch.setenv("FPR_PW", password)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRIES", json.dumps([entry]))


CLI_CASES: list[tuple[str, dict[str, Any], int]] = [
    ("ok", {}, 0),
    ("5xx-then-ok", {}, 0),
    ("429-then-ok", {}, 0),
    ("reset", {"auth": "bearer"}, 0),
    ("503-forever", {}, 3),
    ("reset-forever", {}, 3),
    ("drip", {"drip_interval": 1.0}, 3),
    ("huge", {}, 0),
    ("huge-token", {"fault": "huge", "auth": "bearer"}, 3),
    ("bad-gzip", {"auth": "bearer"}, 3),
    ("redirect-loop", {}, 3),
    ("no-challenge", {}, 1),
    ("malformed", {"fault": "challenge", "challenge": MALFORMED_CHALLENGES[0]}, 3),
    ("bad-realm", {"fault": "challenge", "challenge": BAD_REALMS[0]}, 3),
    ("http-realm", {"auth": "bearer", "tls": True}, 3),
    *[(f"token {b[:8]!r}", {"fault": "token-body", "auth": "bearer", "token_body": b}, 3) for b in TOKEN_BODIES[:4]],
    ("expires_in", {"fault": "token-body", "auth": "bearer", "token_body": b'{"token":"%s","expires_in":"x"}'}, 0),
    ("echo-auth", {}, 1),
    ("echo-auth-bearer", {"fault": "echo-auth", "auth": "bearer"}, 1),
    ("echo-bearer", {"auth": "bearer"}, 1),
]


def test_cli_check_against_every_fault(canary_password, tmp_path):
    """``flyte-private-registry check`` (text and --json) in parallel subprocesses, default retry policy."""
    ca = CertificateAuthority(tmp_path / "ca")
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()

    def one(job: tuple[tuple[str, dict[str, Any], int], tuple[str, ...]]) -> tuple[str, int, Any, float]:
        (name, options, expected), flags = job
        options = dict(options)
        fault = options.pop("fault", name)
        tls = options.pop("tls", False)
        if "token_body" in options and b"%s" in options["token_body"]:
            options["token_body"] = options["token_body"].replace(b"%s", TOKEN.encode())
        with FaultRegistry(
            "alice", canary_password, fault=fault, token=TOKEN, ca=ca if tls else None, **options
        ) as reg:
            entry: dict[str, Any] = {"prefix": f"{reg.host}/team", "username": "alice", "password_env": "FPR_PW"}
            if tls:
                entry["ca_file"] = str(ca.ca_file)
            env = {
                **os.environ,
                "FPR_PW": canary_password,
                "FLYTE_PRIVATE_REGISTRIES": json.dumps([entry]),
                "DOCKER_CONFIG": str(docker_config),
                "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            }
            env.pop("FLYTE_PRIVATE_REGISTRY_CONFIG", None)
            started = time.monotonic()
            run = subprocess.run(
                [CLI, "check", f"{reg.host}/team/app:v1", *flags],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
            )
            elapsed = time.monotonic() - started
            if tls:
                assert reg.requests(listener="plain") == []
        return f"{name} {' '.join(flags)}", expected, run, elapsed

    jobs = [(case, flags) for case in CLI_CASES for flags in ((), ("--json",))]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        results = list(pool.map(one, jobs))
    problems = []
    for name, expected, run, elapsed in results:
        output = run.stdout + run.stderr
        if run.returncode != expected:
            problems.append(f"{name}: exit {run.returncode}, wanted {expected}: {output}")
        if "Traceback" in output or "internal error" in output:
            problems.append(f"{name}: crashed: {output}")
        if any(secret in output for secret in _secrets(canary_password)):
            problems.append(f"{name}: leaked a secret: {output}")
        if "--json" in name:
            json.loads(run.stdout)  # --json stays JSON whatever the fault
        if elapsed > RetryPolicy().deadline + 20:  # the deadline, plus interpreter start-up on a loaded machine
            problems.append(f"{name}: took {elapsed:.0f} s")
    assert not problems, "\n".join(problems)


# -- property-based: parsers give only documented exceptions ---------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_token_like = st.fixed_dictionaries(
    {},
    optional={
        "token": st.one_of(st.text(max_size=40), _json),
        "access_token": st.one_of(st.text(max_size=40), _json),
        "expires_in": st.one_of(st.integers(), st.floats(allow_nan=True), st.text(max_size=8), _json),
        "refresh_token": _json,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.from_regex(r'(Bearer|Basic) [a-z]+=("[^"]*"|[^,]*)(,\s*[a-z]+=.*)*')))
def test_challenge_parser_only_raises_registry_error(header):
    try:
        challenge = Challenge.parse(header, host="h")
    except RegistryError as err:
        assert "malformed WWW-Authenticate" in str(err)
        return
    assert challenge.scheme == challenge.scheme.lower() and isinstance(challenge.params, dict)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
        st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30),
        max_size=5,
    )
)
def test_challenge_parser_reads_every_well_formed_header(params):
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = "Bearer " + ", ".join(f"{k}={quote(v)}" for k, v in params.items())
    assert Challenge.parse(header).params == params


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        _token_like.map(lambda d: json.dumps(d).encode()), _json.map(lambda v: json.dumps(v).encode()), st.binary()
    )
)
def test_token_response_parser_only_raises_registry_error(body):
    try:
        grant = parse_token_response(body)
    except RegistryError:
        return
    assert isinstance(grant, TokenGrant) and grant.token and 0 < grant.lifetime <= 24 * 3600


@given(st.one_of(st.binary(max_size=300), _json.map(lambda v: json.dumps(v).encode())), st.text(max_size=20))
def test_server_message_and_claims_never_raise(body, content_type):
    assert isinstance(_server_message(body, content_type), str)
    payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
    granted = granted_actions(f"h.{payload}.s", "team/app")
    assert granted is None or isinstance(granted, frozenset)


@given(st.text(max_size=40))
def test_retry_after_parser_never_raises(value):
    seconds = parse_retry_after(value)
    assert seconds is None or seconds >= 0
