"""Every ```python block in the README and docs/ runs as written (fresh namespace each).

A block that reads ``$REDIS_URL`` gets the URL of the tests' own redis-server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append((str(path.relative_to(ROOT)), line, match.group(1)))
    return found


BLOCKS = _blocks()


def test_there_are_examples() -> None:
    assert any(path == "README.md" for path, _, _ in BLOCKS)


@pytest.mark.parametrize(("path", "line", "code"), BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_example_runs(
    path: str, line: int, code: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "REDIS_URL" in code:  # an example that needs Redis reads it from $REDIS_URL: ours
        monkeypatch.setenv("REDIS_URL", str(request.getfixturevalue("redis_server").url))
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    exec(compile(code, f"{path}:{line}", "exec"), namespace)
