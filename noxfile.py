"""The one entry point for checks: ``nox -s lint typing tests docs examples``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typing", "tests", "docs", "examples"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package and on the public-API pins in tests/typing/."""
    session.install("-e", ".[dev]")
    session.run("mypy", "mtasecure", "tests/typing")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite with branch coverage (integration tests start their servers)."""
    session.install("-e", ".[test]")
    session.run("pytest", "--cov=mtasecure", "--cov-branch", "--cov-report=term", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/site")


@nox.session
def examples(session: nox.Session) -> None:
    """Run the embedded demo on the bundled examples (no network)."""
    session.install(".")
    session.run("mtasecure", "demo")
