"""Every public module's ``__all__`` is sorted, complete and importable; imports stay light."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import phoenixkit


def _public_modules() -> list[str]:
    names = ["phoenixkit"]
    for info in pkgutil.walk_packages(phoenixkit.__path__, "phoenixkit."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


PUBLIC = _public_modules()


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then everything else.
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_public_modules_are_found() -> None:
    assert {"phoenixkit", "phoenixkit.errors", "phoenixkit.serialization"} <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_sorted_complete_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert exported == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item!r}, which does not exist"
    defined_here = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    missing = defined_here - set(exported)
    assert not missing, f"{name} defines public {sorted(missing)} but leaves them out of __all__"


@pytest.mark.parametrize("name", PUBLIC)
def test_star_import_works(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    module: ModuleType = sys.modules[name]
    assert set(module.__all__) <= set(namespace)


def test_package_import_is_light() -> None:
    code = (
        "import sys, phoenixkit, phoenixkit.errors, phoenixkit.serialization, "
        "phoenixkit._backends, phoenixkit.testing\n"
        "heavy = [m for m in ('redis', 'psycopg', 'sqlalchemy', 'msgpack', 'starlette', "
        "'fastapi', 'flask', 'django', 'prometheus_client', 'opentelemetry') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing phoenixkit pulled in optional drivers: {out}"


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert phoenixkit.__version__ == version("phoenixkit")
