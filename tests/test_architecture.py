"""The package layout is the architecture: the library never imports the book, an attack never
imports another attack, and the attacks never import the evaluation code.

The rules, checked on the source (every import statement, inside functions too, absolute or
relative):

(a) no module outside ``reprolib.book`` imports ``reprolib.book``;
(b) inside ``reprolib.attacks``, an attack module (``attacks/*.py``), ``core`` and the modules of
    ``ops`` import from ``reprolib.attacks`` only ``core`` and ``ops.*``: never another attack,
    nor the package ``reprolib.attacks`` itself (which imports every attack);
(c) nothing in ``reprolib.attacks`` imports ``reprolib.evaluation`` or ``reprolib.book``.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules(root: Path, name: str) -> dict[str, Path]:
    """Every module of package ``root`` (named ``name``) by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (name, *path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, module: str, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """The dotted names ``module`` imports, with line numbers: ``from X import n`` gives
    ``X.n`` when that is a module, else ``X``; relative imports are made absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((target if target in modules else base, node.lineno))
    return found


def _within(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def violations(root: Path, name: str = "reprolib") -> list[str]:
    """Every import in package ``root`` (named ``name``) that breaks rule (a), (b) or (c)."""
    modules = _modules(root, name)
    book, evaluation, attacks = f"{name}.book", f"{name}.evaluation", f"{name}.attacks"
    allowed = (f"{attacks}.core", f"{attacks}.ops")
    problems = []
    for module, path in modules.items():
        for target, line in _imports(path, module, modules):
            where = f"{module} imports {target} (line {line})"
            if _within(target, book) and not _within(module, book):
                problems.append(f"{where}: the library never imports the book")
            if _within(module, attacks) and module != attacks:
                if _within(target, attacks) and not any(_within(target, ok) for ok in allowed):
                    problems.append(f"{where}: attack code imports only {attacks}.core and {attacks}.ops")
                if _within(target, evaluation) or _within(target, book):
                    problems.append(f"{where}: the attacks never import evaluation or book code")
    return problems


def test_reprolib_follows_the_architecture():
    problems = violations(SRC / "reprolib")
    assert not problems, "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


CLEAN = {
    "__init__.py": "",
    "cache.py": "",
    "models.py": "",
    "book/__init__.py": "",
    "book/runner.py": "from .. import cache\nfrom ..evaluation import metrics\nimport fake.attacks\n",
    "evaluation/__init__.py": "",
    "evaluation/metrics.py": "from ..attacks.core import Counter\nfrom .. import attacks\n",
    "attacks/__init__.py": "from .fgsm import fgsm\nfrom .pgd import pgd\n",
    "attacks/core.py": "import torch\nfrom ..models import Classifier\nfrom .ops.norms import lp_norms\n",
    "attacks/ops/__init__.py": "",
    "attacks/ops/norms.py": "import math\nfrom . import checks\n",
    "attacks/ops/checks.py": "from ..core import AttackInputError\n",
    "attacks/fgsm.py": "from .core import attack\nfrom .ops.norms import order\nfrom .ops import checks\n",
    "attacks/pgd.py": ("from .core import attack\nfrom fake.attacks.ops import norms\n"
                       "def pgd():\n    from .ops.checks import count\n"),
}


def test_the_checker_passes_a_clean_package(tmp_path):
    _write(tmp_path / "fake", CLEAN)
    assert violations(tmp_path / "fake", "fake") == []


def test_the_checker_flags_planted_violations(tmp_path):
    planted = {
        # (a) the library imports the book: relative, absolute, inside a function
        "models.py": "def load():\n    from .book import runner\n",
        "cache.py": "import fake.book.params\n",
        "book/params.py": "",
        # (b) an attack imports another attack, or the package that imports them all
        "attacks/pgd.py": "from .core import attack\nfrom . import fgsm\n",
        "attacks/fgsm.py": "from fake.attacks.pgd import pgd\nfrom . import core\n",
        "attacks/ops/norms.py": "def f():\n    from .. import pgd\n",
        "attacks/ops/checks.py": "from fake import attacks\n",
        # (c) the attacks import evaluation or book code
        "attacks/core.py": "from ..evaluation.metrics import rho\n",
        "attacks/ops/__init__.py": "from ...book import plotting\n",
        "book/plotting.py": "",
    }
    _write(tmp_path / "fake", {**CLEAN, **planted})
    found = sorted(violations(tmp_path / "fake", "fake"))
    assert [p.split(":")[0] for p in found] == sorted([
        "fake.models imports fake.book.runner (line 2)",
        "fake.cache imports fake.book.params (line 1)",
        "fake.attacks.pgd imports fake.attacks.fgsm (line 2)",
        "fake.attacks.fgsm imports fake.attacks.pgd (line 1)",
        "fake.attacks.ops.norms imports fake.attacks.pgd (line 2)",
        "fake.attacks.ops.checks imports fake.attacks (line 1)",
        "fake.attacks.core imports fake.evaluation.metrics (line 1)",
        "fake.attacks.ops imports fake.book.plotting (line 1)",
        "fake.attacks.ops imports fake.book.plotting (line 1)",  # rules (a) and (c)
    ])
