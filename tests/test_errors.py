"""Tests for phoenixkit.errors (the exception tree) and phoenixkit._optional.require."""

from __future__ import annotations

import copy
import inspect
import json
import os.path
import pickle
import re
import sys
import types
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenixkit import errors
from phoenixkit._optional import require
from phoenixkit.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    MissingDependencyError,
    PhoenixError,
    SerializationError,
    SignatureError,
)

# -- the tree in the docstring -----------------------------------------------------------------


@dataclass
class Node:
    name: str
    std_bases: list[str]
    parent: str | None
    children: list[str] = field(default_factory=list)


_TREE_LINE = re.compile(
    r"^(?P<prefix>[ │├└─]*?)(?P<name>[A-Z]\w*)(?:\s+\((?P<bases>[\w, ]+)\))?(?:\s+.*)?$"
)


def parse_tree(doc: str) -> dict[str, Node]:
    """Parse the ``The tree::`` block of a docstring into nodes keyed by class name."""
    lines = doc.splitlines()
    start = lines.index("The tree::") + 1
    block: list[str] = []
    for line in lines[start:]:
        if not line.strip():
            if block:
                break
            continue
        if not line.startswith("    "):
            break
        block.append(line[4:])
    assert block, "no tree found after 'The tree::'"

    nodes: dict[str, Node] = {}
    stack: list[str] = []  # stack[d] is the latest node at depth d
    for line in block:
        m = _TREE_LINE.match(line)
        assert m, f"cannot parse tree line {line!r}"
        prefix = m["prefix"]
        if prefix:
            assert len(prefix) % 4 == 0, f"misaligned tree line {line!r}"
            assert prefix.endswith(("├── ", "└── ")), f"bad branch in {line!r}"
        depth = len(prefix) // 4
        assert depth <= len(stack), f"tree line {line!r} skips a level"
        del stack[depth:]
        name = m["name"]
        parent = stack[-1] if stack else None
        bases = [b.strip() for b in m["bases"].split(",")] if m["bases"] else []
        assert name not in nodes, f"{name} appears twice in the tree"
        nodes[name] = Node(name, bases, parent)
        if parent is not None:
            nodes[parent].children.append(name)
        stack.append(name)
    return nodes


def tree_mismatches(doc: str, module: types.ModuleType) -> list[str]:
    """Every way in which the docstring tree and the module's classes disagree."""
    nodes = parse_tree(doc)
    problems: list[str] = []
    exported = set(module.__all__)
    if set(nodes) != exported:
        problems.append(
            f"tree has {sorted(set(nodes) - exported)} not in __all__; "
            f"__all__ has {sorted(exported - set(nodes))} not in the tree"
        )
    roots = [n for n in nodes.values() if n.parent is None]
    if len(roots) != 1:
        problems.append(f"expected one root, got {[r.name for r in roots]}")
    for node in nodes.values():
        cls = getattr(module, node.name, None)
        if not isinstance(cls, type):
            problems.append(f"{node.name} is in the tree but not a class of the module")
            continue
        if node.parent is None:
            if cls.__bases__ != (Exception,):
                problems.append(f"root {node.name} has bases {cls.__bases__}")
            continue
        parent_cls = getattr(module, node.parent)
        in_tree_bases = [b for b in cls.__bases__ if b.__module__ == module.__name__]
        if in_tree_bases != [parent_cls]:
            problems.append(
                f"{node.name}: tree parent is {node.parent}, class bases are "
                f"{[b.__name__ for b in in_tree_bases]}"
            )
        std = [b.__name__ for b in cls.__bases__ if b.__module__ != module.__name__]
        if std != node.std_bases:
            problems.append(
                f"{node.name}: tree shows standard bases {node.std_bases}, the class has {std}"
            )
    return problems


def test_docstring_tree_matches_the_class_hierarchy() -> None:
    assert errors.__doc__
    assert tree_mismatches(errors.__doc__, errors) == []


def test_docstring_tree_is_parsed_as_expected() -> None:
    assert errors.__doc__
    nodes = parse_tree(errors.__doc__)
    assert {n: (v.parent, v.std_bases) for n, v in nodes.items()} == {
        "PhoenixError": (None, []),
        "ConfigurationError": ("PhoenixError", ["ValueError"]),
        "MissingDependencyError": ("PhoenixError", ["ImportError"]),
        "BackendError": ("PhoenixError", []),
        "BackendUnavailableError": ("BackendError", []),
        "SerializationError": ("PhoenixError", ["ValueError"]),
        "SignatureError": ("SerializationError", []),
    }


def _edit(doc: str, old: str, new: str) -> str:
    assert old in doc
    return doc.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # move SignatureError up a level (under PhoenixError)
        ("        └── SignatureError", "    └── SignatureError"),
        # forget a standard base
        ("ConfigurationError (ValueError)", "ConfigurationError           "),
        # claim a wrong standard base
        ("BackendError   ", "BackendError (OSError)"),
        # drop a class from the tree
        ("    │   └── BackendUnavailableError          it cannot be reached at all\n", ""),
        # rename a class
        ("BackendUnavailableError", "BackendDownError"),
    ],
)
def test_the_tree_check_catches_a_docstring_out_of_step(old: str, new: str) -> None:
    assert errors.__doc__
    assert tree_mismatches(_edit(errors.__doc__, old, new), errors) != []


def test_the_tree_check_catches_a_class_out_of_step() -> None:
    assert errors.__doc__
    fake = types.ModuleType(errors.__name__)
    fake.__all__ = list(errors.__all__)  # type: ignore[attr-defined]
    for name in errors.__all__:
        setattr(fake, name, getattr(errors, name))

    class SignatureError(errors.PhoenixError, ValueError):  # moved: no longer under Serialization
        pass

    SignatureError.__module__ = errors.__name__
    fake.SignatureError = SignatureError  # type: ignore[attr-defined]
    assert tree_mismatches(errors.__doc__, fake) != []


# -- the classes -------------------------------------------------------------------------------


def test_all_lists_every_exception_class_of_the_module() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == "phoenixkit.errors"
    }
    assert set(errors.__all__) == defined
    assert errors.__all__ == sorted(errors.__all__)


@pytest.mark.parametrize("name", errors.__all__)
def test_every_exported_class_is_a_phoenix_error(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, PhoenixError)
    assert issubclass(cls, Exception)
    assert cls.__doc__, f"{name} has no docstring"


def test_standard_bases() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)
    assert issubclass(SerializationError, ValueError)
    assert issubclass(SignatureError, SerializationError)
    assert issubclass(SignatureError, ValueError)
    assert issubclass(BackendUnavailableError, BackendError)
    assert not issubclass(BackendError, ValueError)
    assert not issubclass(PhoenixError, ValueError)


def test_configuration_error_is_caught_as_value_error() -> None:
    with pytest.raises(ValueError, match="bad url"):
        raise ConfigurationError("bad url")


def make_instance(cls: type[PhoenixError]) -> PhoenixError:
    if cls is MissingDependencyError:
        return MissingDependencyError("redis", "redis", "the Redis backend")
    return cls("message")


@pytest.mark.parametrize("name", errors.__all__)
def test_one_except_phoenix_error_catches_them_all(name: str) -> None:
    with pytest.raises(PhoenixError):
        raise make_instance(getattr(errors, name))


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_pickles(name: str) -> None:
    err = make_instance(getattr(errors, name))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.args == err.args


# -- MissingDependencyError --------------------------------------------------------------------


def test_missing_dependency_error_attributes_and_message() -> None:
    err = MissingDependencyError("psycopg", "postgres", "the PostgreSQL replica router")
    assert isinstance(err, ImportError)
    assert isinstance(err, PhoenixError)
    assert err.name == "psycopg"
    assert err.package == "psycopg"
    assert err.extra == "postgres"
    assert err.feature == "the PostgreSQL replica router"
    message = str(err)
    assert "pip install 'phoenixkit[postgres]'" in message
    assert "'psycopg'" in message
    assert message.startswith("the PostgreSQL replica router needs")
    assert err.msg == message


def test_missing_dependency_error_is_caught_as_import_error() -> None:
    with pytest.raises(ImportError, match=r"phoenixkit\[redis\]"):
        raise MissingDependencyError("redis", "redis", "the Redis backend")


@given(
    package=st.text(min_size=1, max_size=20),
    extra=st.text(min_size=1, max_size=20),
    feature=st.text(max_size=40),
)
def test_missing_dependency_error_round_trips_through_pickle(
    package: str, extra: str, feature: str
) -> None:
    err = MissingDependencyError(package, extra, feature)
    assert f"pip install 'phoenixkit[{extra}]'" in str(err)
    for back in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(back) is MissingDependencyError
        assert (back.package, back.extra, back.feature, back.name) == (
            package,
            extra,
            feature,
            package,
        )
        assert str(back) == str(err)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_missing_dependency_error_pickles_with_every_protocol(protocol: int) -> None:
    err = MissingDependencyError("msgpack", "msgpack", "the msgpack codec")
    back = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert (back.package, back.extra, back.feature, back.name) == (
        "msgpack",
        "msgpack",
        "the msgpack codec",
        "msgpack",
    )


# -- _optional.require -------------------------------------------------------------------------


def test_require_returns_the_module_when_present() -> None:
    assert require("json", extra="x", feature="y") is json
    assert require("os.path", extra="x", feature="y") is os.path


def test_require_returns_msgpack_when_installed() -> None:
    import msgpack

    assert require("msgpack", extra="msgpack", feature="the msgpack codec") is msgpack


def test_require_raises_missing_dependency_error_chained_from_the_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(MissingDependencyError) as ei:
        require("msgpack", extra="msgpack", feature="the msgpack codec")
    err = ei.value
    assert isinstance(err, ImportError)
    assert isinstance(err.__cause__, ImportError)
    assert not isinstance(err.__cause__, MissingDependencyError)
    assert (err.package, err.extra, err.feature, err.name) == (
        "msgpack",
        "msgpack",
        "the msgpack codec",
        "msgpack",
    )
    assert "pip install 'phoenixkit[msgpack]'" in str(err)


def test_require_of_a_module_that_does_not_exist() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'phoenixkit\[redis\]'") as ei:
        require("phoenixkit_no_such_module_xyz", extra="redis", feature="the Redis backend")
    assert isinstance(ei.value.__cause__, ModuleNotFoundError)
    assert ei.value.__cause__.name == "phoenixkit_no_such_module_xyz"
    assert str(ei.value).startswith("the Redis backend needs")


def test_require_of_a_missing_submodule_names_the_top_level_package() -> None:
    with pytest.raises(MissingDependencyError) as ei:
        require("phoenixkit_no_such_pkg_xyz.asyncio", extra="redis", feature="async Redis")
    assert ei.value.package == "phoenixkit_no_such_pkg_xyz"
    assert ei.value.name == "phoenixkit_no_such_pkg_xyz"
    assert "'phoenixkit_no_such_pkg_xyz'" in str(ei.value)


def test_require_does_not_swallow_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module that is installed but fails with something other than ImportError: not hidden.
    def boom(name: str) -> types.ModuleType:
        raise RuntimeError("broken on import")

    monkeypatch.setattr("importlib.import_module", boom)
    with pytest.raises(RuntimeError, match="broken on import"):
        require("phoenixkit_broken_xyz", extra="x", feature="y")
