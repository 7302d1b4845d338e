"""Sessions: lint, tests, demo, bench, docs. ``./dev`` installs system packages first, then runs these."""

import nox

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
    session.run("pytest", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[test,aws]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


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
