"""Cache keys cover every module a step's code can reach (reprolib.cache.code_files).

A step cached under ``code=[f]`` must be recomputed when anything ``f`` imports changes, however
indirectly (a module imported by a module ``f``'s module imports inside a function, a package's
``__init__``), and must not be when an unrelated module changes.
"""
from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from reprolib import cache

SRC = Path(__file__).resolve().parents[1] / "src"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n_EDITED = True\n")


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A small importable package ``keypkg_<n>``: step -> (inside a function) helpers ->
    (absolute) deep.leaf; deep/__init__ runs with deep.leaf; unrelated is imported by nobody."""
    name = f"keypkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    _write(root, {
        "__init__.py": "",
        "step.py": "def compute():\n    from .helpers import scale\n    return scale(2)\n",
        "helpers.py": f"from {name}.deep.leaf import FACTOR\n\n\ndef scale(x):\n    return FACTOR * x\n",
        "deep/__init__.py": "",
        "deep/leaf.py": "FACTOR = 3\n",
        "unrelated.py": "X = 1\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, root
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_code_files_follow_imports_transitively(package):
    name, root = package
    step = importlib.import_module(f"{name}.step")
    assert step.compute() == 6
    files = {p.relative_to(root).as_posix() for p in cache.code_files([step.compute])}
    assert files == {"__init__.py", "step.py", "helpers.py", "deep/__init__.py", "deep/leaf.py"}


@pytest.mark.parametrize("edited", ["deep/leaf.py", "deep/__init__.py", "helpers.py", "__init__.py"])
def test_editing_a_module_reached_only_transitively_changes_the_key(package, edited):
    name, root = package
    compute = importlib.import_module(f"{name}.step").compute
    before = cache.key("step", {"n": 1}, code=[compute])
    _touch(root / edited)
    assert cache.key("step", {"n": 1}, code=[compute]) != before


def test_editing_an_unrelated_module_keeps_the_key(package):
    name, root = package
    compute = importlib.import_module(f"{name}.step").compute
    before = cache.key("step", {"n": 1}, code=[compute])
    _touch(root / "unrelated.py")
    assert cache.key("step", {"n": 1}, code=[compute]) == before


def test_a_package_stands_for_all_its_modules(package):
    name, root = package
    pkg = importlib.import_module(name)
    before = cache.code_version([pkg])
    _touch(root / "unrelated.py")
    assert cache.code_version([pkg]) != before


@pytest.fixture
def reexports(tmp_path, monkeypatch):
    """A package whose ``models/__init__`` re-exports ``Classifier`` and ``load``, like reprolib's:
    ``attack`` uses only ``Classifier``, ``loader`` only ``load`` (whose module imports the
    classifier), ``user`` the whole package, ``api`` ``Classifier`` through the top-level
    ``__init__``'s re-export."""
    name = f"rexpkg_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / name
    _write(root, {
        "__init__.py": "from .models import Classifier\n",
        "models/__init__.py": "from .classifier import Classifier as Classifier\nfrom .registry import load\n",
        "models/classifier.py": "class Classifier:\n    pass\n",
        "models/registry.py": "from .classifier import Classifier\n\n\ndef load():\n    return Classifier()\n",
        "attack.py": "from .models import Classifier\n",
        "loader.py": "from .models import load\n",
        "user.py": "from . import models\n",
        "api.py": f"from {name} import Classifier\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, root
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


@pytest.mark.parametrize("user, edited, changes", [
    ("attack.py", "models/registry.py", False),  # run on the way, its names unused
    ("attack.py", "models/classifier.py", True),
    ("attack.py", "models/__init__.py", True),
    ("attack.py", "__init__.py", True),
    ("api.py", "models/registry.py", False),
    ("api.py", "models/classifier.py", True),
    ("loader.py", "models/registry.py", True),
    ("loader.py", "models/classifier.py", True),
    ("user.py", "models/registry.py", True),  # the package as an object: any of its names
])
def test_a_package_init_is_followed_only_for_the_names_used(reexports, user, edited, changes):
    name, root = reexports
    importlib.import_module(f"{name}.{user[:-3]}")
    before = cache.code_version([root / user])
    _touch(root / edited)
    assert (cache.code_version([root / user]) != before) is changes


def test_editing_the_registry_keeps_an_attacks_key(reprolib_copy):
    attack = reprolib_copy / "attacks" / "targeted_iteration.py"
    before = cache.code_version([attack])
    _touch(reprolib_copy / "models" / "registry.py")
    assert cache.code_version([attack]) == before
    _touch(reprolib_copy / "models" / "classifier.py")
    assert cache.code_version([attack]) != before


@pytest.fixture
def reprolib_copy(tmp_path):
    """A copy of src/reprolib, whose files can be edited (keys are computed from its paths)."""
    root = tmp_path / "copy"
    shutil.copytree(SRC / "reprolib", root / "reprolib", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "reprolib"


@pytest.mark.parametrize("edited", ["attacks/ops/jacobian.py", "attacks/core.py", "models/classifier.py",
                                    "attacks/ops/norms.py", "evaluation/__init__.py"])
def test_metrics_key_covers_what_metrics_imports(reprolib_copy, edited):
    # chapter 001 caches metrics.rho_2_per_input under code that names metrics' module: the key
    # must change when the Jacobian code (or anything else metrics runs) changes.
    metrics = reprolib_copy / "evaluation" / "metrics.py"
    before = cache.code_version([metrics])
    _touch(reprolib_copy / edited)
    assert cache.code_version([metrics]) != before


@pytest.mark.parametrize("edited", ["book/plotting.py", "evaluation/exact.py", "evaluation/peers.py"])
def test_metrics_key_ignores_modules_metrics_does_not_import(reprolib_copy, edited):
    metrics = reprolib_copy / "evaluation" / "metrics.py"
    before = cache.code_version([metrics])
    _touch(reprolib_copy / edited)
    assert cache.code_version([metrics]) == before


def test_relative_imports_two_levels_up_are_followed(reprolib_copy):
    # peers: `from .. import attacks, cache, data, models`
    peers = reprolib_copy / "evaluation" / "peers.py"
    before = cache.code_version([peers])
    _touch(reprolib_copy / "data.py")
    assert cache.code_version([peers]) != before


def test_the_key_does_not_depend_on_where_the_checkout_is(reprolib_copy):
    real = Path(cache.__file__).resolve().parent  # the reprolib this test imports
    assert cache.code_version([reprolib_copy / "evaluation" / "metrics.py"]) == \
        cache.code_version([real / "evaluation" / "metrics.py"])


def test_a_script_outside_the_package_is_followed_into_reprolib(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import numpy\nfrom reprolib.evaluation import metrics\n")
    files = cache.code_files([script])
    real = Path(cache.__file__).resolve().parent
    assert {script.resolve(), real / "evaluation" / "metrics.py", real / "attacks" / "ops" / "jacobian.py"} <= set(files)
    assert not any("numpy" in str(p) for p in files)


def test_comments_docstrings_and_layout_keep_the_key_and_code_changes_it(package):
    name, root = package
    step = importlib.import_module(f"{name}.step")
    before = cache.code_version([step.compute])
    helpers = root / "helpers.py"
    text = helpers.read_text()
    helpers.write_text('"""Helpers."""\n# a comment\n' + text.replace(
        "def scale(x):\n", 'def scale(x):\n    """Scale x,\n    documented."""\n\n') + "\n\n")
    assert cache.code_version([step.compute]) == before
    helpers.write_text(text.replace("FACTOR * x", "FACTOR * x + 0"))
    assert cache.code_version([step.compute]) != before
    helpers.write_text(text.replace("def scale(x):\n", "def scale(x):\n    y = 'an assignment, not a docstring'\n"))
    assert cache.code_version([step.compute]) != before


def test_a_module_that_is_only_a_docstring_hashes_like_an_empty_one():
    assert cache.code_digest(b'"""Only words."""\n') == cache.code_digest(b"")
    assert cache.code_digest(b"x = 1\n") != cache.code_digest(b"x = 2\n")
    assert cache.code_digest(b"def f(:\n") != cache.code_digest(b"def f(:\n\n")  # unparsable: bytes
