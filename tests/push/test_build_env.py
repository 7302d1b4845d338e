"""The temporary DOCKER_CONFIG: what it holds (never a secret), the channel the helper asks, and cleanup."""

import base64
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import prepend_path, write_docker_config, write_fake_helper
from pydantic import SecretStr

from flyte_private_registry.credentials import Credential
from flyte_private_registry.push._build_env import (
    HELPER_PROGRAM,
    LEGACY_GRACE,
    OWNER_FILE,
    PREFIX,
    patched_environ,
    private_docker_config,
    sweep_leftovers,
)
from flyte_private_registry.push.helper import CHANNEL_FILE, LEGACY_SESSION_FILE

NOT_FOUND = "credentials not found in native keychain"


def _cred(password: str, user: str = "alice") -> Credential:
    return Credential(user, SecretStr(password), source="explicit")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _helper(env: dict[str, str], action: str, server: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HELPER_PROGRAM, action], input=server, env={**os.environ, **env}, capture_output=True, text=True, timeout=30
    )


def _files_holding(directory: Path, secret: str) -> list[Path]:
    needles = [secret.encode(), base64.b64encode(secret.encode())]
    return [
        p
        for p in directory.rglob("*")
        if p.is_file() and not p.is_symlink() and any(n in p.read_bytes() for n in needles)
    ]


def _installed_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Stand-ins for Docker Desktop's and gcloud's helpers (a store that cannot run is dropped)."""
    for name in names:
        write_fake_helper(tmp_path / "helpers-bin", name, {})
    prepend_path(monkeypatch, tmp_path / "helpers-bin")


def test_routes_hosts_to_helper_and_writes_no_secret(user_docker_config, canary_password, tmp_path, monkeypatch):
    _installed_helpers(tmp_path, monkeypatch, "desktop", "gcloud")
    (user_docker_config / "cli-plugins").mkdir()
    write_docker_config(
        user_docker_config,
        {
            "credsStore": "desktop",
            "auths": {"ghcr.io": {}},
            "credHelpers": {"gcr.io": "gcloud"},
            "currentContext": "x",
        },
    )
    before = (user_docker_config / "config.json").read_bytes()
    with private_docker_config({"harbor.example.com": _cred(canary_password), "docker.io": _cred("x")}) as env:
        config = json.loads((env.directory / "config.json").read_text())
        assert config["credsStore"] == "desktop" and config["currentContext"] == "x"  # user's settings kept
        assert config["credHelpers"] == {
            "gcr.io": "gcloud",
            "harbor.example.com": "flyte-private-registry",
            "https://index.docker.io/v1/": "flyte-private-registry",
        }
        assert (env.directory / "cli-plugins").resolve() == (user_docker_config / "cli-plugins").resolve()
        assert _mode(env.directory) == 0o700
        for name in ("config.json", CHANNEL_FILE, OWNER_FILE):
            assert _mode(env.directory / name) == 0o600, name
        assert _mode(env.directory / "bin" / HELPER_PROGRAM) == 0o700
        assert not (env.directory / LEGACY_SESSION_FILE).exists()
        assert _files_holding(env.directory, canary_password) == []  # the secret lives only in memory
        assert env.env["DOCKER_CONFIG"] == str(env.directory)
        assert env.env["PATH"].startswith(str(env.directory / "bin") + os.pathsep)
        directory = env.directory
    assert not directory.exists()
    assert (user_docker_config / "config.json").read_bytes() == before


def test_removed_on_error_and_keyboard_interrupt(user_docker_config):
    for exc in (RuntimeError("build failed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), private_docker_config({"h.example.com": _cred("pw")}) as env:
            directory = env.directory
            raise exc
        assert not directory.exists()


def test_helper_asks_the_building_process(user_docker_config, canary_password):
    with private_docker_config({"harbor.example.com:8443": _cred(canary_password)}) as env:
        started = time.monotonic()
        got = _helper(env.env, "get", "https://harbor.example.com:8443")
        elapsed = time.monotonic() - started
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout) == {
            "ServerURL": "https://harbor.example.com:8443",
            "Username": "alice",
            "Secret": canary_password,
        }
        assert elapsed < 2.0  # docker runs it per host: a bare interpreter start plus one round trip
        missing = _helper(env.env, "get", "other.example.com")
        assert missing.returncode == 1 and missing.stdout.strip() == NOT_FOUND
        listed = _helper(env.env, "list")
        assert json.loads(listed.stdout) == {"harbor.example.com:8443": "alice"}
        store = _helper(env.env, "store", "{}")
        assert store.returncode == 1 and "read-only" in store.stdout
        assert canary_password not in listed.stdout + store.stdout + missing.stdout + got.stderr


def test_helper_session_path_imports_nothing_heavy(user_docker_config):
    with private_docker_config({"h.example.com": _cred("pw")}) as env:
        script = (
            "import sys, io; from flyte_private_registry.push import helper; "
            "assert helper.get('h.example.com', io.StringIO()) == 0; "
            "print(sorted(m for m in ('pydantic', 'httpx', 'flytekit', 'boto3', 'click') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], env={**os.environ, **env.env}, capture_output=True, text=True, check=True
        )
    assert out.stdout.strip() == "[]"


def test_a_request_without_the_session_nonce_gets_nothing(user_docker_config, canary_password):
    with private_docker_config({"h.example.com": _cred(canary_password)}) as env:
        channel = json.loads((env.directory / CHANNEL_FILE).read_text())
        for request in ({"action": "get", "server": "h.example.com"}, {"action": "get", "nonce": "guess"}):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(channel["address"])
                sock.sendall(json.dumps({**request, "server": "h.example.com"}).encode() + b"\n")
                assert sock.recv(4096) == b""  # closed without an answer


def test_helper_of_a_dead_build_answers_not_found(tmp_path, user_docker_config, canary_password):
    """SIGKILL at its worst moment: inside the build. Nothing on disk, and the helper says "not found" at once."""
    script = textwrap.dedent(
        f"""
        import json, os, signal
        from pydantic import SecretStr
        from flyte_private_registry.credentials import Credential
        from flyte_private_registry.push._build_env import private_docker_config
        with private_docker_config({{"h.example.com": Credential("a", SecretStr({canary_password!r}), "x")}}) as env:
            print(json.dumps(env.env), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(env_tmp)}, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL
    build_env = json.loads(proc.stdout)
    directory = Path(build_env["DOCKER_CONFIG"])
    assert directory.exists() and _files_holding(env_tmp, canary_password) == []
    started = time.monotonic()
    got = _helper(build_env, "get", "h.example.com")
    assert got.returncode == 1 and got.stdout.strip() == NOT_FOUND
    assert time.monotonic() - started < 2.0
    assert sweep_leftovers(str(env_tmp)) == [directory] and not directory.exists()


def test_serves_from_a_worker_thread(user_docker_config, canary_password):
    """flytekit may build from a thread pool: no signal handlers there, the channel still answers."""
    result: dict[str, object] = {}

    def build() -> None:
        with private_docker_config({"h.example.com": _cred(canary_password)}) as env:
            result["got"] = _helper(env.env, "get", "h.example.com")
            result["handler"] = signal.getsignal(signal.SIGTERM)
            result["directory"] = env.directory

    worker = threading.Thread(target=build)
    worker.start()
    worker.join(timeout=60)
    assert json.loads(result["got"].stdout)["Secret"] == canary_password
    assert result["handler"] == signal.SIG_DFL
    assert not result["directory"].exists()


def test_inline_auths_are_served_from_memory_not_copied(user_docker_config, canary_password):
    """A plain ``docker login`` stores base64 user:password in config.json; the temporary copy must not."""
    auth = base64.b64encode(f"bob:{canary_password}".encode()).decode()
    write_docker_config(
        user_docker_config,
        {"auths": {"https://other.example.com": {"auth": auth}, "token.example.com": {"identitytoken": "tok-xyz"}}},
    )
    with private_docker_config({"harbor.example.com": _cred("pw")}) as env:
        config = json.loads((env.directory / "config.json").read_text())
        assert config["auths"] == {"https://other.example.com": {}, "token.example.com": {}}
        assert config["credHelpers"] == {
            "other.example.com": "flyte-private-registry",
            "token.example.com": "flyte-private-registry",
            "harbor.example.com": "flyte-private-registry",
        }
        assert _files_holding(env.directory, canary_password) == [] and _files_holding(env.directory, "tok-xyz") == []
        got = json.loads(_helper(env.env, "get", "other.example.com").stdout)
        assert (got["Username"], got["Secret"]) == ("bob", canary_password)  # docker still sees the login
        got = json.loads(_helper(env.env, "get", "token.example.com").stdout)
        assert (got["Username"], got["Secret"]) == ("<token>", "tok-xyz")


def test_inline_auths_docker_would_ignore_are_only_dropped(user_docker_config, canary_password, tmp_path, monkeypatch):
    _installed_helpers(tmp_path, monkeypatch, "desktop")
    auth = base64.b64encode(f"bob:{canary_password}".encode()).decode()
    write_docker_config(user_docker_config, {"credsStore": "desktop", "auths": {"other.example.com": {"auth": auth}}})
    with private_docker_config({}) as env:
        config = json.loads((env.directory / "config.json").read_text())
        assert config["auths"] == {"other.example.com": {}} and config["credHelpers"] == {}
        assert _files_holding(env.directory, canary_password) == []


def test_patched_environ_restores(monkeypatch):
    monkeypatch.setenv("KEEP", "1")
    monkeypatch.delenv("NEW_ONE", raising=False)
    with pytest.raises(ValueError), patched_environ({"KEEP": "2", "NEW_ONE": "x"}):
        assert os.environ["KEEP"] == "2" and os.environ["NEW_ONE"] == "x"
        raise ValueError
    assert os.environ["KEEP"] == "1" and "NEW_ONE" not in os.environ


_WAIT_IN_BUILD = """
import sys, threading, time
from pydantic import SecretStr
from flyte_private_registry.push._build_env import private_docker_config
from flyte_private_registry.credentials import Credential
mode, marker = sys.argv[1:3]

def build():
    with private_docker_config({"h.example.com": Credential("a", SecretStr("pw"), "x")}) as env:
        open(marker, "w").write(str(env.directory))
        time.sleep(60)

if mode == "main":
    build()
elif mode == "app-handler":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: (print("app handler", flush=True), sys.exit(7)))
    build()
else:  # a daemon worker thread; the main thread exits normally (SystemExit), so atexit runs
    threading.Thread(target=build, daemon=True).start()
    while not open(marker).read():
        time.sleep(0.01)
    sys.exit(3)
"""


def _run_until_built(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "dir.txt"
    marker.write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WAIT_IN_BUILD, mode, str(marker)], stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not marker.read_text() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    return proc, Path(marker.read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signals_during_a_build_remove_the_directory(tmp_path, user_docker_config, signum):
    """A real process is signalled while "building"; its temp config must be gone afterwards."""
    proc, directory = _run_until_built(tmp_path, "main")
    assert directory.exists()
    proc.send_signal(signum)
    code = proc.wait(timeout=20)
    assert code == (-signum if signum == signal.SIGINT else 128 + signum)  # Ctrl-C: KeyboardInterrupt, then SIGINT
    assert not directory.exists()


def test_an_application_handler_is_kept(tmp_path, user_docker_config):
    proc, directory = _run_until_built(tmp_path, "app-handler")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 7 and "app handler" in proc.stdout.read()
    assert not directory.exists()  # sys.exit in the handler unwinds through the build's finally


def test_exit_while_a_worker_thread_builds_removes_the_directory(tmp_path, user_docker_config):
    proc, directory = _run_until_built(tmp_path, "worker")
    assert proc.wait(timeout=20) == 3
    assert not directory.exists()  # the atexit sweep


# ------------------------------------------------------------------------------------- the sweep
def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _leftover(base: Path, name: str, owner: dict[str, object] | None, *files: str) -> Path:
    directory = base / f"{PREFIX}{name}"
    directory.mkdir(mode=0o700)
    if owner is not None:
        (directory / OWNER_FILE).write_text(json.dumps(owner))
    for file in files:
        (directory / file).write_text("{}")
    return directory


def _start_time(pid: int | str) -> str:
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[19].decode()


def test_sweep_removes_only_dead_owners_directories(tmp_path):
    old = time.time() - LEGACY_GRACE - 60
    dead = _leftover(tmp_path, "dead", {"pid": _dead_pid(), "started": "1"}, "config.json")
    live = _leftover(tmp_path, "live", {"pid": os.getpid(), "started": _start_time("self")}, "config.json")
    reused = _leftover(tmp_path, "reused", {"pid": os.getpid(), "started": "1"}, "config.json")  # a recycled pid
    legacy_old = _leftover(tmp_path, "legacy-old", None, "config.json", LEGACY_SESSION_FILE)
    os.utime(legacy_old, (old, old))
    legacy_new = _leftover(tmp_path, "legacy-new", None, "config.json", LEGACY_SESSION_FILE)
    unrelated = _leftover(tmp_path, "unrelated", None, "notes.txt")
    os.utime(unrelated, (old, old))
    other_name = tmp_path / "not-ours"
    other_name.mkdir()
    (other_name / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid()}))
    a_file = tmp_path / f"{PREFIX}file"
    a_file.write_text("x")

    removed = sweep_leftovers(str(tmp_path))
    assert sorted(removed) == sorted([dead, reused, legacy_old])
    for kept in (live, legacy_new, unrelated, other_name, a_file):
        assert kept.exists(), kept


def test_sweep_keeps_a_directory_whose_socket_still_answers(tmp_path):
    """An owner in another pid namespace (a container sharing /tmp) looks dead by pid; its socket says otherwise."""
    directory = _leftover(tmp_path, "elsewhere", {"pid": _dead_pid()}, "config.json")
    address = str(directory / "s")
    (directory / CHANNEL_FILE).write_text(json.dumps({"version": 2, "address": address, "nonce": "n"}))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen(1)
        assert sweep_leftovers(str(tmp_path)) == [] and directory.exists()
    assert sweep_leftovers(str(tmp_path)) == [directory]


def test_sweep_never_follows_links_or_touches_other_users(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid()}))
    (target / LEGACY_SESSION_FILE).write_text("{}")
    link = tmp_path / f"{PREFIX}link"
    link.symlink_to(target)
    inner = _leftover(tmp_path, "inner-link", None)
    (inner / OWNER_FILE).symlink_to(target / OWNER_FILE)  # an owner record reached through a link is not trusted
    foreign = _leftover(tmp_path, "foreign", {"pid": _dead_pid()}, "config.json")
    if os.geteuid() == 0:
        os.chown(foreign, 54321, 54321)
        os.chown(foreign / OWNER_FILE, 54321, 54321)
    assert sweep_leftovers(str(tmp_path)) == ([] if os.geteuid() == 0 else [foreign])
    assert link.is_symlink() and sorted(p.name for p in target.iterdir()) == sorted([OWNER_FILE, LEGACY_SESSION_FILE])
    assert inner.exists()


def test_each_build_sweeps_leftovers_first(tmp_path, user_docker_config, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # gettempdir() re-reads TMPDIR
    stale = _leftover(tmp_path, "stale", {"pid": _dead_pid()}, "config.json")
    with private_docker_config({"h.example.com": _cred("pw")}) as env:
        assert not stale.exists() and env.directory.parent == tmp_path
