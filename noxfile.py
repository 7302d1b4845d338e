"""Sessions: lint, tests, demo, bench, docs, install. ``./dev`` installs system packages first, then runs these."""

import nox

# Tests and benchmarks run in their own mount and network namespaces with a private /etc/hosts,
# so concurrent runs on one machine never see each other's hostnames or ports.
ISOLATED = ("python", "tests/rig/isolate.py")

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/import_graph.py")


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test,aws,kubernetes]")
    session.run(*ISOLATED, "pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, isolated; arguments go to benchmarks/run_all.py (``--quick``, ``--only NAME,...``)."""
    session.install("-e", ".[test,aws]")
    session.run(*ISOLATED, "python", "benchmarks/run_all.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".[kubernetes]")
    session.run("flyte-private-registry", "demo", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    session.install(
        "-e", ".[kubernetes,aws]", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", "mkdocs-click>=0.8"
    )
    session.run("mkdocs", "build", "--strict")


@nox.session(venv_backend="none")
def install(session: nox.Session) -> None:
    """`pip install .[aws,gcp]` with stock pip in a fresh venv, under a time limit (PIP_INSTALL_LIMIT).

    Takes no posargs: `./dev test ARGS` hands pytest's arguments to every session.
    """
    session.run("bash", "tools/check_pip_install.sh", external=True)
