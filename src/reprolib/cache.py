"""A disk cache for the expensive steps of a chapter: one trained model, one attack on one set
of images.

Each result is stored under a key made of

* the step's name and its inputs (numbers, strings, lists, dicts, tensors, arrays, models,
  :class:`~reprolib.data.ImageSet`), hashed by content;
* the code version: ``reprolib.__version__`` plus the sha256 of the source files of the code
  the step depends on: the modules or functions passed as ``code`` and every module of their
  package (or of reprolib) that they import, directly or through others (:func:`code_files`).
  A file is hashed as its syntax tree without docstrings (:func:`code_digest`), so editing a
  comment, a docstring or the layout keeps the cached results; any change to what runs does not.

Results are written atomically (a temporary file, then a rename), so a run that is killed
leaves either a complete entry or none. Started again, it finds every step it had finished and
recomputes only the rest; with ``seed`` given, each step draws its random numbers from its own
seeded generator, so the numbers do not depend on which steps came from the cache.

Where: ``REPROLIB_CACHE_DIR``, else the checkout's ``.cache`` (see :func:`reprolib.paths.cache_dir`).
Switch it off with ``REPROLIB_NO_CACHE=1``, :func:`set_enabled`, or the chapter runner's
``--no-cache``: every step is then computed and nothing is read or written.

Example::

    from reprolib import cache
    result = cache.cached("fgsm", {"model": model, "images": images, "eps": 0.1},
                          lambda: fgsm(model, images.x, images.y, eps=0.1),
                          code=[my_attack_module], seed=0)
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import random
import time
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from . import __version__, paths
from .device import hardware_summary
from .files import atomic_open

_ENABLED: bool | None = None  # None: follow REPROLIB_NO_CACHE
#: This process's tally of :func:`cached` steps (see :func:`stats`).
_STATS = {"computed": 0, "computed_seconds": 0.0, "reused": 0, "reused_seconds": 0.0, "reused_untimed": 0,
          "reused_hardware": {}}


def enabled() -> bool:
    """Whether :func:`cached` reads and writes the disk cache."""
    if _ENABLED is not None:
        return _ENABLED
    return os.environ.get("REPROLIB_NO_CACHE", "").strip().lower() in ("", "0", "false", "no")


def set_enabled(value: bool | None) -> None:
    """Switch the cache on or off for this process (``None``: follow ``REPROLIB_NO_CACHE``)."""
    global _ENABLED
    _ENABLED = value


@contextlib.contextmanager
def disabled():
    """A context in which :func:`cached` neither reads nor writes the cache."""
    global _ENABLED
    before, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = before


def stats() -> dict:
    """How many :func:`cached` steps this process computed and how many it read from the cache,
    with the seconds they took to compute (for a reused step: when it was computed, as its entry
    records; ``reused_untimed`` counts entries written before reprolib recorded that), and
    ``reused_hardware``: ``{hardware: steps}`` for the reused steps, the hardware each was computed
    on as its entry records ("unrecorded" for older entries). The chapter runner puts this in
    each page's provenance, whose wall time alone would hide reused work."""
    return {**_STATS, "reused_hardware": dict(_STATS["reused_hardware"])}


def _source_file(obj: Any) -> Path:
    if isinstance(obj, (str, Path)):
        return Path(obj)
    if isinstance(obj, types.ModuleType):
        return Path(inspect.getfile(obj))
    module = inspect.getmodule(obj)
    if module is None:
        raise TypeError(f"Cannot find the source file of {obj!r}; pass its module or path.")
    return Path(inspect.getfile(module))


#: The folder that holds the ``reprolib`` package, for absolute ``reprolib...`` imports.
_OWN_ROOT = Path(__file__).resolve().parent.parent
_OWN_NAME = __name__.split(".")[0]
#: The imports of a source file, by the sha256 of its text: ``(module, level, names, bound)`` each,
#: ``names`` the imported names and ``bound`` the names they are bound to (``as``).
_IMPORTS: dict[bytes, list[tuple[str, int, tuple[str, ...], tuple[str, ...]]]] = {}


def _imports(source: bytes, digest: bytes) -> list[tuple[str, int, tuple[str, ...], tuple[str, ...]]]:
    """Every import statement of a module, at any depth (inside functions too)."""
    if digest not in _IMPORTS:
        found = []
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found += [(alias.name, 0, (), ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((node.module or "", node.level, tuple(alias.name for alias in node.names),
                              tuple(alias.asname or alias.name for alias in node.names)))
        _IMPORTS[digest] = found
    return _IMPORTS[digest]


def _location(path: Path) -> tuple[Path | None, tuple[str, ...]]:
    """The folder that holds ``path``'s top-level package and ``path``'s dotted name in it
    (``(None, ())`` for a file outside any package)."""
    if not (path.parent / "__init__.py").is_file():
        return None, ()
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, tuple(parts)


def _module_chain(root: Path, dotted: Sequence[str]) -> list[Path]:
    """The files that importing ``dotted`` from ``root`` runs: each package's ``__init__.py`` on
    the way and the module itself (empty if it is not there)."""
    files = []
    for i in range(1, len(dotted) + 1):
        folder = root.joinpath(*dotted[:i])
        if (folder / "__init__.py").is_file():
            files.append(folder / "__init__.py")
        elif i == len(dotted) and folder.with_suffix(".py").is_file():
            files.append(folder.with_suffix(".py"))
        else:
            return []
    return files


def _target(root: Path | None, package: tuple[str, ...], dotted: tuple[str, ...], module: str,
            level: int) -> tuple[Path, list[str]] | None:
    """Where ``from <level dots><module> import ...`` in a module of ``package`` points: the folder
    of the top-level package and the dotted target; None outside the package and reprolib."""
    if level:
        if root is None or level - 1 > len(package):
            return None
        return root, [*package[:len(package) - (level - 1)], *filter(None, module.split("."))]
    target = module.split(".")
    if root is not None and target[0] == dotted[0]:
        return root, target
    if target[0] == _OWN_NAME:
        return _OWN_ROOT, target
    return None


def _add(found: dict[Path, bool], chain: list[Path], follow: bool) -> None:
    """Record an import's ``chain``: the packages on the way are run but not used (hashed, their
    imports not followed); the imported module itself is followed when ``follow``."""
    for path in chain[:-1]:
        found.setdefault(path, False)
    if chain:
        found[chain[-1]] = found.get(chain[-1], False) or follow


def _from_package(found: dict[Path, bool], root: Path, target: list[str], name: str, depth: int = 0) -> None:
    """``from <target> import name`` where ``target`` is a package: follow the submodule ``name``,
    or the module the package's ``__init__`` binds ``name`` from (re-exports are traced), or, when
    neither is found, everything the ``__init__`` imports."""
    sub = _module_chain(root, [*target, name])
    if sub:
        _add(found, sub, True)
        return
    init = root.joinpath(*target, "__init__.py")
    source = init.read_bytes()
    if depth < 8:
        for module, level, names, bound in _imports(source, code_digest(source)):
            if name not in bound:
                continue
            where = _target(root, tuple(target), tuple(target), module, level)
            if where is None:
                return  # bound from outside the package: nothing of ours to follow
            base, origin = where
            chain = _module_chain(base, origin)
            if chain and chain[-1].name == "__init__.py":
                _add(found, chain, False)
                _from_package(found, base, origin, names[bound.index(name)], depth + 1)
            else:
                _add(found, chain, True)
            return
    found[init] = True


def _imported_files(path: Path, source: bytes, digest: bytes) -> dict[Path, bool]:
    """The files of ``path``'s own package, or of reprolib, that importing ``path`` runs, each
    with whether ``path`` uses it (then its own imports matter too) or only runs it on the way.

    A package's ``__init__.py`` that is only run on the way (the packages ``path`` is in, those
    above an imported module) is hashed but its imports are not followed: ``path`` uses none of
    the names it binds. ``from package import name`` follows the module that defines ``name``;
    ``import package`` and a package imported as a name follow everything its ``__init__`` imports."""
    root, dotted = _location(path)
    package = dotted if path.name == "__init__.py" else dotted[:-1]
    found: dict[Path, bool] = {}
    if root is not None:
        _add(found, _module_chain(root, package), False)  # its packages
    for module, level, names, _ in _imports(source, digest):
        where = _target(root, package, dotted, module, level)
        if where is None:
            continue  # outside the package: not hashed
        base, target = where
        chain = _module_chain(base, target)
        if not names or not chain or chain[-1].name != "__init__.py":
            _add(found, chain, True)  # ``import a.b`` or ``from module import names``: the module is used
            continue
        _add(found, chain, False)
        for name in names:
            _from_package(found, base, target, name)
    return found


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:]
    return tree


def code_digest(source: bytes) -> bytes:
    """The sha256 of what a Python source runs: its syntax tree (``ast.dump``, no line numbers)
    with the docstrings of the module, its classes and its functions removed. Comments, docstrings,
    blank lines and line breaks do not change it; a source that does not parse is hashed as bytes."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).digest()
    return hashlib.sha256(ast.dump(_without_docstrings(tree)).encode()).digest()


def _closure(code: Iterable[Any]) -> dict[Path, bytes]:
    """:func:`code_files` with the sha256 of each file."""
    todo: dict[Path, bool] = {}  # file -> whether its imports are followed
    for obj in code:
        path = _source_file(obj).resolve()
        if path.name == "__init__.py" and isinstance(obj, types.ModuleType):
            todo.update((p.resolve(), True) for p in path.parent.rglob("*.py"))
        else:
            todo[path] = True
    digests: dict[Path, bytes] = {}
    followed: set[Path] = set()
    while todo:
        path, follow = todo.popitem()
        if path not in digests or follow and path not in followed:
            source = path.read_bytes()
            digests[path] = code_digest(source)
            if follow:
                followed.add(path)
                for file, use in _imported_files(path, source, digests[path]).items():
                    file = file.resolve()
                    if file not in followed and (use or file not in digests):
                        todo[file] = todo.get(file, False) or use
    return digests


def _label(path: Path) -> str:
    """``path`` inside its top-level package (``reprolib/attacks/core.py``), else its name."""
    root, _ = _location(path)
    return path.relative_to(root).as_posix() if root is not None else path.name


def code_files(code: Iterable[Any] = ()) -> list[Path]:
    """The source files a step's ``code`` can run: the files of ``code`` (modules, functions,
    classes or paths; a module that is a package stands for all its ``.py`` files), and every
    module of their package or of reprolib that those import, transitively. Imports are read
    from the source (inside functions too); importing ``a.b.c`` counts ``a/__init__.py`` and
    ``a/b/__init__.py`` as well, as Python runs them, but what those ``__init__`` files import is
    followed only where the names they bind are used (``from a.b import name`` follows the
    module ``a/b/__init__.py`` takes ``name`` from; ``import a.b`` follows all of it), so editing
    the model registry does not change the key of an attack that only imports ``Classifier``
    from ``reprolib.models``. Modules outside the package are not followed (their versions are
    the environment's)."""
    return sorted(_closure(code), key=_label)


def code_version(code: Iterable[Any] = ()) -> str:
    """``reprolib`` version plus the :func:`code_digest` of every file of :func:`code_files`
    (``code``: modules, functions, classes or paths), each named by its path inside its package."""
    h = hashlib.sha256(f"reprolib {__version__}\n".encode())
    labelled = sorted((_label(path), digest) for path, digest in _closure(code).items())
    for name, digest in labelled:
        h.update(name.encode() + b"\0" + digest)
    return h.hexdigest()


def _feed(h: "hashlib._Hash", obj: Any) -> None:
    """Hash ``obj`` by content, unambiguously (every item is tagged with its kind)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, float):
        h.update(f"float:{obj.hex()};".encode())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}[{len(obj)}](".encode())
        for item in obj:
            _feed(h, item)
        h.update(b")")
    elif isinstance(obj, dict):
        h.update(f"dict[{len(obj)}](".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
        h.update(b")")
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # reshape: 0-dim too
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"ndarray:{a.dtype}:{a.shape}:".encode() + a.tobytes())
    elif isinstance(obj, (np.integer, np.floating, np.bool_)):
        _feed(h, obj.item())
    elif isinstance(obj, torch.nn.Module):
        # a model is its class and its weights (and, for a reprolib Classifier, its bounds)
        h.update(f"module:{type(obj).__module__}.{type(obj).__qualname__}:".encode())
        _feed(h, {k: v for k, v in obj.state_dict().items()})
        for attr in ("bounds", "input_shape", "num_classes", "output", "mean", "std"):
            if hasattr(obj, attr):
                _feed(h, getattr(obj, attr))
    elif isinstance(obj, torch.device):
        _feed(h, f"device:{obj}")
    elif isinstance(obj, torch.dtype):
        _feed(h, f"dtype:{obj}")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dataclass:{type(obj).__qualname__}:".encode())
        _feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    elif isinstance(obj, Path):
        _feed(h, f"path:{obj}")
    else:
        raise TypeError(f"reprolib.cache cannot hash a {type(obj).__name__}; pass numbers, strings, "
                        "lists, dicts, tensors, arrays, models or dataclasses as inputs.")


def key(name: str, inputs: Any, code: Iterable[Any] = ()) -> str:
    """The cache key of step ``name`` with ``inputs`` under the current ``code`` version."""
    h = hashlib.sha256()
    _feed(h, name)
    _feed(h, inputs)
    h.update(code_version(code).encode())
    return h.hexdigest()[:32]


def entry_path(name: str, digest: str, root: Path | None = None) -> Path:
    """Where the entry of step ``name`` with key ``digest`` lives."""
    root = paths.cache_dir() if root is None else Path(root)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return root / safe / f"{digest}.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    with atomic_open(path) as fh:
        torch.save(obj, fh)


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with Python's, NumPy's and torch's (CPU and CUDA) generators seeded with
    ``seed``, restoring their previous state afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def cached(name: str, inputs: Any, compute: Callable[[], Any], *, code: Iterable[Any] = (),
           seed: int | None = None, root: Path | None = None) -> Any:
    """The result of ``compute()``, from the cache when this step has run before.

    Args:
        name: the step's name, e.g. ``"cw_l2/cw_mnist"``; entries are grouped by it on disk.
        inputs: everything the result depends on besides the code (hashed by content).
        compute: a function of no arguments that computes the result: tensors, numbers,
            strings, ``None``, numpy arrays and scalars, and lists, tuples, dicts and reprolib
            dataclasses of them (:func:`encode`).
        code: the modules or functions whose source the result depends on; what they import
            from their package or from reprolib is included (:func:`code_files`). The reprolib
            version is always part of the key.
        seed: if given, ``compute`` runs under :func:`seeded` (and the seed is in the key), so
            the result does not depend on what ran before it.
        root: the cache folder (default :func:`reprolib.paths.cache_dir`).

    An entry holds its own key and is read with ``torch.load(..., weights_only=True)``, so a
    tampered or foreign file runs nothing: it is recomputed and replaced, with a warning.
    """
    code = list(code)
    if seed is not None:
        inputs = {"inputs": inputs, "seed": seed}

    def run() -> Any:
        if seed is None:
            return compute()
        with seeded(seed):
            return compute()

    if not enabled():
        return run()
    digest = key(name, inputs, code)
    path = entry_path(name, digest, root)
    info = path.with_suffix(".json")
    if path.is_file():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if not (isinstance(entry, dict) and entry.get("format") == ENTRY_FORMAT and entry.get("key") == digest):
                raise ValueError("it is not an entry of this step (another key or format)")
            result = decode(entry["value"])
        except Exception as exc:  # a truncated, foreign or tampered file: recompute and replace it
            warnings.warn(f"reprolib.cache: ignoring {path} ({type(exc).__name__}: "
                          f"{(str(exc).splitlines() or [''])[0][:200]}); recomputing step {name!r}.",
                          stacklevel=2)
        else:
            _count_reused(info)
            return result
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    _STATS["computed"] += 1
    _STATS["computed_seconds"] += seconds
    save_atomic({"format": ENTRY_FORMAT, "name": name, "key": digest, "value": encode(result)}, path)
    try:
        info.write_text(json.dumps({"name": name, "reprolib_version": __version__, "seconds": round(seconds, 3),
                                    "hardware": hardware_summary(),
                                    "code": [str(_source_file(c)) for c in code]}, indent=1) + "\n")
    except OSError:
        pass
    return result


#: The layout of an entry: ``{"format", "name", "key", "value"}``, the value :func:`encode`-d.
ENTRY_FORMAT = 2


def encode(obj: Any) -> Any:
    """``obj`` in a form ``torch.load(..., weights_only=True)`` reads back: tensors, numbers,
    strings and ``None`` as they are; lists, tuples and dicts item by item; numpy arrays as
    tensors and numpy scalars as Python numbers (both marked, so :func:`decode` restores them);
    a dataclass of a ``reprolib`` module as its class name and fields.

    Raises:
        TypeError: for anything else, naming its type.
    """
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, (list, tuple)):
        items = [encode(v) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and type(obj).__module__.startswith("reprolib."):
        return {"__dataclass__": f"{type(obj).__module__}:{type(obj).__qualname__}",
                "fields": {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    raise TypeError(f"reprolib.cache cannot store a {type(obj).__name__}; return tensors, numbers, strings, "
                    "numpy arrays, or lists, tuples, dicts and reprolib dataclasses of them.")


def decode(obj: Any) -> Any:
    """The inverse of :func:`encode`. A dataclass is rebuilt only from a ``reprolib`` module.

    Raises:
        ValueError: for a dataclass name outside reprolib, or one that is not a dataclass.
    """
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(decode(v) for v in obj)
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__ndarray__"}:
        return obj["__ndarray__"].numpy()
    if set(obj) == {"__dataclass__", "fields"}:
        module, _, qualname = obj["__dataclass__"].partition(":")
        if not module.startswith("reprolib."):
            raise ValueError(f"refused to rebuild {obj['__dataclass__']}: only reprolib dataclasses are cached")
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not dataclasses.is_dataclass(cls):
            raise ValueError(f"{obj['__dataclass__']} is not a dataclass")
        return cls(**{k: decode(v) for k, v in obj["fields"].items()})
    return {k: decode(v) for k, v in obj.items()}


def _count_reused(info: Path) -> None:
    _STATS["reused"] += 1
    try:
        record = json.loads(info.read_text())
        seconds = float(record["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        _STATS["reused_untimed"] += 1
        record = {}
    else:
        _STATS["reused_seconds"] += seconds
    hardware = str(record.get("hardware") or "unrecorded")
    _STATS["reused_hardware"][hardware] = _STATS["reused_hardware"].get(hardware, 0) + 1
