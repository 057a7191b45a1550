"""Development sessions: ``nox -s tests``, ``lint``, ``demo``, ``bench``, ``docs``.

Each session runs on the interpreter nox itself runs on, so it works on a machine with a
single Python; ``nox -s tests-3.12``-style matrices are not needed for CI. Set
``PHOENIXKIT_REQUIRE_SERVICES=1`` to make a missing Redis/PostgreSQL fail instead of skip.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PASSTHROUGH_ENV = (
    "PHOENIXKIT_REQUIRE_SERVICES",
    "PHOENIXKIT_PG_BINDIR",
    "PHOENIXKIT_TEST_REDIS_URL",
    "PHOENIXKIT_TEST_REDIS_CLUSTER_URL",
    "PHOENIXKIT_TEST_REDIS_SENTINEL_URL",
    "PHOENIXKIT_TEST_POSTGRES_URL",
    "PHOENIXKIT_TEST_POSTGRES_REPLICA_URL",
)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite against real servers started by the fixtures."""
    session.install("-e", ".[test,all]")
    args = session.posargs or ["-p", "no:cacheprovider", "--durations=15"]
    # pytest's exit code 5 (no tests collected) is a failure here like any other non-zero.
    session.run("python", "-m", "pytest", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy --strict on src."""
    session.install("-e", ".[all]", "ruff>=0.5", "mypy>=1.8", "types-cachetools")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict", "src/phoenixkit")
    # The typed view of the public API, as a user's code sees it.
    session.run("mypy", "--strict", "tests/typing/api_usage.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The tour on embedded defaults (pass --redis URL / --postgres URL after --)."""
    session.install("-e", ".[all]")
    session.run("python", "-m", "phoenixkit", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks beside the peers; pass --quick after -- for a run under a minute."""
    # The peers measured beside phoenixkit.
    session.install(
        "-e",
        ".[all]",
        "python-json-logger",
        "orjson",
        "cashews",
        "opentelemetry-instrumentation-sqlalchemy",
    )
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs site strictly (warnings are errors)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", "site", env={"NO_MKDOCS_2_WARNING": "1"})
