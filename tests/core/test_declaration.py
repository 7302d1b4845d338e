"""Declaring registries: in code, in a config file, in an env var; and what a bad declaration says."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flyte_private_registry import ConfigurationError, PrivateRegistry, lookup
from flyte_private_registry._catalog import CATALOG

CLI = str(Path(sys.executable).with_name("flyte-private-registry"))


def test_registry_string_is_lower_cased_prefix():
    reg = PrivateRegistry("Harbor.Example.com/ML", username="a", password="b", pull_secret="harbor-pull")
    assert reg.registry == "harbor.example.com/ml"
    assert reg.repository("trainer") == "ml/trainer"


def test_repr_and_str_never_show_the_password(canary_password):
    reg = PrivateRegistry("harbor.example.com/ml", username="alice", password=canary_password)
    for text in (repr(reg), str(reg), repr(vars(reg)), reg.explain()):
        assert canary_password not in text


def test_longest_declared_prefix_wins():
    broad = PrivateRegistry("harbor.example.com", username="a", password="b")
    narrow = PrivateRegistry("harbor.example.com/ml", username="c", password="d")
    assert CATALOG.for_spec("harbor.example.com/ml", "trainer") is narrow
    assert CATALOG.for_spec("harbor.example.com/mlops", "x") is broad
    assert CATALOG.for_spec("harbor.example.com", "ml") is narrow  # image harbor.example.com/ml itself
    assert CATALOG.for_spec("other.example.com/ml", "trainer") is None
    assert lookup("harbor.example.com/ml/trainer:v1") is narrow


def test_lookup_reads_prefixes_as_prefixes():
    hub = PrivateRegistry("docker.io/acme", username="a", password="b")
    ghcr = PrivateRegistry("ghcr.io/acme-corp", username="a", password="b")
    assert lookup("docker.io/acme") is hub  # not library/acme
    assert lookup("docker.io/acme/app:v1") is hub
    assert lookup("ghcr.io/Acme-Corp") is ghcr  # as ImageSpec lower-cases it
    assert lookup("busybox") is None


def test_redeclaring_a_prefix_replaces_it():
    PrivateRegistry("harbor.example.com/ml", username="a", password="b")
    second = PrivateRegistry("harbor.example.com/ml", username="c", password="d")
    assert lookup("harbor.example.com/ml/x") is second


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"password": "x"}, "without username= or username_env="),
        ({"username_env": "U"}, "username_env= needs password= or password_env="),
        ({"username": "alice"}, "username= needs password= or password_env="),
        ({"pull_username": "reader"}, r"needs both pull_username= and pull_password\(_env\)="),
        ({"pull_password_env": "P"}, r"needs both pull_username= and pull_password\(_env\)="),
        ({"username": "a", "password": "b", "password_env": "P"}, "not both"),
        ({"username_env": "1BAD", "password_env": "P"}, "is not an environment variable name"),
        ({"pull_secret": "Harbor_Pull"}, "is not a Kubernetes object name"),
        ({"ca_file": "/nonexistent/ca.pem"}, "does not exist"),
    ],
)
def test_bad_declarations_fail_with_the_fix(kwargs, needle):
    with pytest.raises(ConfigurationError, match=needle):
        PrivateRegistry("harbor.example.com/ml", **kwargs)


def test_every_accepted_combination_of_user_and_password_is_used(monkeypatch):
    monkeypatch.setenv("H_USER", "env-user")
    monkeypatch.setenv("H_PASSWORD", "env-password")
    cases = [
        ({"username": "lit", "password": "p"}, ("lit", "p")),
        ({"username": "lit", "password_env": "H_PASSWORD"}, ("lit", "env-password")),
        ({"username_env": "H_USER", "password": "p"}, ("env-user", "p")),
        ({"username_env": "H_USER", "password_env": "H_PASSWORD"}, ("env-user", "env-password")),
    ]
    for kwargs, (user, password) in cases:
        cred = PrivateRegistry("harbor.example.com/ml", **kwargs).resolve().credential
        assert (cred.username, cred.password.get_secret_value()) == (user, password), kwargs


def test_malformed_prefix_is_a_value_error_naming_the_forms():
    with pytest.raises(ValueError, match=r"expected host\[:port\]\[/path\]"):
        PrivateRegistry("harbor example com")


def test_config_file_declares_registries(tmp_path, monkeypatch):
    config = tmp_path / "registries.toml"
    config.write_text(
        """
[[registry]]
prefix = "harbor.example.com/ml"
username_env = "HARBOR_USER"
password_env = "HARBOR_TOKEN"
pull_secret = "harbor-pull"
pull_username = "reader"
pull_password_env = "HARBOR_READ_TOKEN"

[[registry]]
prefix = "localhost:5000"
"""
    )
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", str(config))
    CATALOG.clear()
    found = CATALOG.for_spec("harbor.example.com/ml", "trainer")
    assert found is not None and found.pull_secret == "harbor-pull" and found.password_env == "HARBOR_TOKEN"
    assert (found.pull_username, found.pull_password_env) == ("reader", "HARBOR_READ_TOKEN")
    assert CATALOG.for_spec("localhost:5000", "x").registry == "localhost:5000"
    # code declarations override file ones for the same prefix
    code = PrivateRegistry("harbor.example.com/ml", username="u", password="p")
    assert CATALOG.for_spec("harbor.example.com/ml", "trainer") is code


def test_project_and_user_files(tmp_path, monkeypatch):
    monkeypatch.delenv("FLYTE_PRIVATE_REGISTRY_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "flyte-private-registry" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[[registry]]\nprefix = "harbor.example.com"\npull_secret = "from-user"\n')
    project = tmp_path / "project"
    project.mkdir()
    (project / "flyte-private-registry.toml").write_text(
        '[[registry]]\nprefix = "harbor.example.com"\npull_secret = "from-project"\n'
    )
    monkeypatch.chdir(project)
    CATALOG.clear()
    assert CATALOG.for_spec("harbor.example.com", "x").pull_secret == "from-project"


def test_env_var_declares_registries(monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRIES", "localhost:5000/team, harbor.example.com/ml")
    CATALOG.clear()
    assert CATALOG.for_spec("localhost:5000/team", "x") is not None
    monkeypatch.setenv(
        "FLYTE_PRIVATE_REGISTRIES", json.dumps([{"prefix": "harbor.example.com/ml", "pull_secret": "hp"}])
    )
    CATALOG.clear()
    assert CATALOG.for_spec("harbor.example.com/ml", "x").pull_secret == "hp"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[[registry]]\nprefix = "h.example.com"\npassword = "oops"\n', "'password' is not allowed"),
        ('[[registry]]\nprefix = "h.example.com"\ncolour = "blue"\n', "unknown keys ['colour']"),
        ('[[registry]]\nprefix = "h.example.com"\npull_username = "r"\npull_password = "x"\n', "pull_password_env"),
        ('[[registry]]\nprefix = "h.example.com"\nprovider = "nope"\n', "unknown provider 'nope'"),
        ('[[registry]]\nprefix = "https://h.example.com"\n', "#1: registry prefix"),
        ("[[registry]\n", "cannot read"),
        ('[[registry]]\nprefix = "h.example.com"\ninsecure = "maybe"\n', "#1: insecure must be true or false, got str"),
        ('[[registry]]\nprefix = "h.example.com"\npull_secret = 5\n', "#1: pull_secret must be a string, got int 5"),
        ('[[registry]]\nprefix = "h.example.com"\npull_secret = "regcred\\n"\n', "#1: pull_secret='regcred\\n' for"),
        ("[[registry]]\nprefix = 5\n", "#1: prefix must be a string"),
        ('[[registry]]\nprefix = "h.example.com"\nusername_env = ["U"]\n', "#1: username_env must be a string"),
        ('[[registry]]\nprefix = "h.example.com"\nca_file = 1\n', "#1: ca_file must be a path"),
        ('[[registry]]\nprefix = "h.example.com"\nprovider = ["ecr"]\n', "#1: provider must be a string naming"),
        (
            '[[registry]]\nprefix = "h.example.com"\nprovider = "ecr"\ncreate_repository = [1]\n',
            "options: create_repository: Input should",
        ),
        ("registry = 5\n", "use [[registry]] tables"),
        ("registry = [5]\n", "#1: each registry must be a table"),
        (
            '[[registry]]\nprefix = "h.example.com"\nca_file = "missing-ca.pem"\n',
            "missing-ca.pem for h.example.com does not exist",
        ),
    ],
)
def test_bad_config_file_names_file_and_entry(tmp_path, monkeypatch, body, needle):
    config = tmp_path / "c.toml"
    config.write_text(body)
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", str(config))
    CATALOG.clear()
    with pytest.raises(ConfigurationError) as info:
        CATALOG.registries()
    assert needle in str(info.value) and str(config) in str(info.value)


def test_relative_ca_file_is_read_next_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "ca.pem").write_text("not parsed here")
    (tmp_path / "conf" / "c.toml").write_text('[[registry]]\nprefix = "h.example.com"\nca_file = "ca.pem"\n')
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", str(tmp_path / "conf" / "c.toml"))
    monkeypatch.chdir(tmp_path)
    CATALOG.clear()
    assert CATALOG.for_spec("h.example.com", "x").ca_file == tmp_path / "conf" / "ca.pem"


def test_config_env_var_pointing_nowhere(monkeypatch):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", "/nonexistent/x.toml")
    CATALOG.clear()
    with pytest.raises(ConfigurationError, match=r"FLYTE_PRIVATE_REGISTRY_CONFIG=/nonexistent/x\.toml"):
        CATALOG.registries()


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('[{"prefix": "h.example.com", "pull_secret": 5}]', "entry #1: pull_secret must be a string, got int 5"),
        ('[{"prefix": "h.example.com", "insecure": "yes"}]', "entry #1: insecure must be true or false"),
        ('[{"prefix": ["h.example.com"]}]', "entry #1: prefix must be a string"),
        ("[1]", "entry #1: each registry must be a table/object, got int"),
        ('{"prefix": "h.example.com"}', "wrap the object in [...]"),
        ("[" * 100_000, "is not valid JSON"),
        ("h.example.com\u00e9/ml", "non-ASCII character"),
    ],
)
def test_bad_env_declarations_name_the_variable_and_key(monkeypatch, value, needle):
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRIES", value)
    CATALOG.clear()
    with pytest.raises(ConfigurationError) as info:
        CATALOG.registries()
    assert needle in str(info.value) and "FLYTE_PRIVATE_REGISTRIES" in str(info.value)


def test_config_file_that_is_not_utf8_is_a_configuration_error(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_bytes(b'[[registry]]\nprefix = "\xff"\n')
    monkeypatch.setenv("FLYTE_PRIVATE_REGISTRY_CONFIG", str(config))
    CATALOG.clear()
    with pytest.raises(ConfigurationError, match="cannot read"):
        CATALOG.registries()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"pull_secret": 5}, "pull_secret must be a string, got int 5"),
        ({"pull_secret": "regcred\n"}, "pull_secret='regcred\\n' for harbor.example.com/ml is not a Kubernetes"),
        ({"pull_secret": "Regcred"}, "use lower case ('regcred')"),
        ({"pull_secret": "regcred\n"}, "remove the surrounding whitespace ('regcred')"),
        ({"pull_secret": "r\u00e9gcred"}, "lower-case ASCII letters"),
        (
            {"username_env": "H_USER\n", "password_env": "P"},
            "username_env='H_USER\\n' for harbor.example.com/ml is not an environment",
        ),
        ({"username_env": "H_\u00dcSER", "password_env": "P"}, "is not an environment variable name"),
        ({"username_env": "U", "password_env": 7}, "password_env must be a string, got int 7"),
        ({"username": 5, "password": "x"}, "username must be a string, got int 5"),
        ({"username": "a", "password": 12345}, "password must be a string, got int"),
        ({"insecure": "maybe"}, "insecure must be true or false, got str 'maybe'"),
        ({"ca_file": 3}, "ca_file must be a path"),
        ({"provider": "ecr"}, "provider must be a Provider"),
        ({"keychains": [object()]}, "keychains must be a list of Keychain objects"),
        ({"colour": "blue"}, "unknown argument 'colour'"),
    ],
)
def test_wrong_types_in_code_are_configuration_errors(kwargs, needle):
    with pytest.raises(ConfigurationError) as info:
        PrivateRegistry("harbor.example.com/ml", **kwargs)
    assert needle in str(info.value)
    assert "12345" not in str(info.value)  # a secret of the wrong type is named by type only
    assert "validation error" not in str(info.value)


def test_prefix_of_the_wrong_type_is_a_configuration_error():
    with pytest.raises(
        ConfigurationError, match=re.escape("prefix must be a string such as 'harbor.example.com/ml', got int 5")
    ):
        PrivateRegistry(5)


def test_doctor_and_explain_report_malformed_files_without_a_traceback(tmp_path):
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(
        json.dumps({"credHelpers": ["x"], "credsStore": 5, "auths": {"harbor.example.com": {"auth": 5}}})
    )
    xdg = tmp_path / "xdg"
    (xdg / "flyte-private-registry").mkdir(parents=True)
    toml = xdg / "flyte-private-registry" / "config.toml"
    toml.write_text('[[registry]]\nprefix = "harbor.example.com/ml"\npull_secret = 5\n')
    env = {**os.environ, "DOCKER_CONFIG": str(docker_dir), "XDG_CONFIG_HOME": str(xdg), "COLUMNS": "400"}
    env.pop("FLYTE_PRIVATE_REGISTRY_CONFIG", None)
    env.pop("FLYTE_PRIVATE_REGISTRIES", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    doctor = run("doctor")
    assert "Traceback" not in doctor.stdout + doctor.stderr
    assert doctor.returncode == 1, doctor.stderr
    assert "credHelpers is a list, expected an object mapping hosts to helper names" in doctor.stdout
    assert f"{toml} [[registry]] #1: pull_secret must be a string, got int 5" in doctor.stdout
    assert "python:" in doctor.stdout  # it went on after the broken files

    explain = run("explain", "harbor.example.com/ml")
    assert "Traceback" not in explain.stdout + explain.stderr
    assert explain.returncode == 2 and "pull_secret must be a string, got int 5" in explain.stderr

    toml.unlink()
    explain = run("explain", "harbor.example.com/ml", "--json")
    assert "Traceback" not in explain.stdout + explain.stderr
    assert explain.returncode == 0, explain.stderr
    details = [a["detail"] for a in json.loads(explain.stdout)["attempts"]]
    assert "credHelpers is a list, expected an object mapping hosts to helper names" in details


def test_importing_and_declaring_loads_no_pydantic_model_machinery_providers_or_credentials():
    """A task pod imports the workflow module; its declaration must not pay for what only a check needs."""
    probe = (
        "import sys, flytekit\n"
        "before = set(sys.modules)\n"
        "from flyte_private_registry import PrivateRegistry\n"
        "reg = PrivateRegistry('harbor.example.com/ml', username_env='U', password_env='P', pull_secret='ml-pull')\n"
        "added = sorted(set(sys.modules) - before)\n"
        "print(' '.join(added))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    unwanted = (
        "pydantic.fields",
        "pydantic.types",
        "flyte_private_registry.providers._base",
        "flyte_private_registry.credentials",
    )
    assert not [m for m in out if m.startswith(unwanted)], out
    assert "flyte_private_registry._declaration" in out  # the probe measured something


def test_the_provider_is_inferred_on_first_use_and_the_declaration_stays_frozen():
    reg = PrivateRegistry("ghcr.io/acme", username_env="U", password_env="P")
    assert reg.provider.kind == "ghcr"
    assert reg == PrivateRegistry("ghcr.io/acme", username_env="U", password_env="P")
    assert hash(reg) == hash(PrivateRegistry("ghcr.io/acme", username_env="U", password_env="P"))
    with pytest.raises(AttributeError, match="frozen"):
        reg.pull_secret = "other"  # type: ignore[misc]
    copy = reg.replace(pull_secret="acme-pull")
    assert copy.pull_secret == "acme-pull" and reg.pull_secret is None
    with pytest.raises(ConfigurationError, match="not a Kubernetes object name"):
        reg.replace(pull_secret="Acme Pull")


def test_the_explain_hint_imports_the_declaring_module_as_pyflyte_did(tmp_path):
    """A refusal during pyflyte names `flyte-private-registry -m ... explain PREFIX`: -m must import that module."""
    declaring = "from flyte_private_registry import PrivateRegistry\nreg = PrivateRegistry('harbor.example.com/ml')\n"
    (tmp_path / "wf.py").write_text(declaring)
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "train.py").write_text(declaring)  # a folder without __init__.py
    probe = (
        "import runpy, sys\n"
        "from flyte_private_registry import PrivateRegistry\n"
        "import wf\n"  # pyflyte --pkgs wf: imported by name from the working directory
        "sys.path.insert(0, 'workflows'); import train\n"  # pyflyte run workflows/train.py: not by that name from here
        "script = runpy.run_path('wf.py', run_name='__main__')['reg']\n"  # python wf.py
        "here = PrivateRegistry('harbor.example.com/ml')\n"  # python -c: no module to import
        "copy = wf.reg.replace(pull_secret='ml-pull')\n"  # not a declaration
        "for r in (wf.reg, train.reg, script, here, copy): print(r._explain_command())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "flyte-private-registry -m wf explain harbor.example.com/ml",
        "flyte-private-registry -m workflows/train.py explain harbor.example.com/ml",
        "flyte-private-registry -m wf.py explain harbor.example.com/ml",
        "flyte-private-registry explain harbor.example.com/ml",
        "flyte-private-registry explain harbor.example.com/ml",
    ]
    gone = (
        "import os, tempfile, wf\n"
        "os.chdir(tempfile.mkdtemp()); os.rmdir(os.getcwd())\n"
        "print(wf.reg._explain_command())\n"
    )
    removed = subprocess.run([sys.executable, "-c", gone], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert removed.returncode == 0, removed.stderr  # a working directory removed meanwhile: still a hint
    assert removed.stdout.strip() == f"flyte-private-registry -m {tmp_path / 'wf.py'} explain harbor.example.com/ml"
    shown = subprocess.run(
        [CLI, "-m", "workflows/train.py", "explain", "harbor.example.com/ml"],
        cwd=tmp_path,
        env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "no-docker-config")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and "harbor.example.com/ml (declared" in shown.stdout, shown.stdout + shown.stderr
