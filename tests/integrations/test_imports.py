"""The plain middleware imports no framework; a missing extra names what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_asgi_wsgi_and_prometheus_import_no_framework() -> None:
    code = (
        "import sys\n"
        "import phoenixkit.integrations.asgi, phoenixkit.integrations.wsgi\n"
        "import phoenixkit.integrations.prometheus\n"
        "heavy = ('starlette', 'fastapi', 'flask', 'django', 'prometheus_client', 'uvicorn')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize(
    ("module", "extra"), [("fastapi", "fastapi"), ("flask", "flask"), ("django", "django")]
)
def test_a_missing_framework_names_its_extra(module: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from phoenixkit.errors import MissingDependencyError\n"
        "try:\n"
        f"    import phoenixkit.integrations.{module}\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert f"pip install 'phoenixkit[{extra}]'" in done.stdout
