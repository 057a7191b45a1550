"""The repository keeps its promises: the README's commands, CI, extras, docs pages."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def _bash_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip() and ln[0] != "#"]
    return lines


def test_readme_has_the_two_commands() -> None:
    commands = _bash_lines(README)
    assert any("python3 -m phoenixkit demo" in c for c in commands)
    assert any("nox -s tests" in c for c in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = next(c for c in _bash_lines(README) if "nox -s tests" in c)
    ci_lines = [ln.strip() for ln in CI.splitlines()]
    assert test_command in ci_lines
    assert "export PHOENIXKIT_REQUIRE_SERVICES=1" in ci_lines
    assert "set -euo pipefail" in ci_lines
    assert "python3 -m nox -s lint" in ci_lines


def test_extras_match_the_design() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    assert extras == {
        "redis", "postgres", "asgi", "fastapi", "flask", "django", "prometheus", "otel",
        "msgpack", "all", "test", "dev", "docs",
    }  # fmt: skip
    core = {re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]}
    assert core == {"cachetools", "tenacity", "pybreaker", "limits"}
    assert project["requires-python"] == ">=3.10"
    assert (ROOT / "src" / "phoenixkit" / "py.typed").exists()


def test_nox_sessions_exist() -> None:
    text = (ROOT / "noxfile.py").read_text()
    for session in ("tests", "lint", "demo", "bench", "docs"):
        assert re.search(rf"^def {session}\(session", text, re.MULTILINE), session


def test_every_module_has_a_docs_page() -> None:
    for page in (
        "index", "getting-started", "cache", "ratelimit", "breaker", "batch", "replicas",
        "querymon", "masking", "integrations", "benchmarks",
    ):  # fmt: skip
        assert (ROOT / "docs" / f"{page}.md").is_file(), page
    nav = (ROOT / "mkdocs.yml").read_text()
    assert "mkdocstrings" in nav


def test_changelog_keeps_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert "keepachangelog.com" in text
