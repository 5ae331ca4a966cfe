"""Run the book's chapters and build the book.

Each chapter is a jupytext percent-format file ``notebooks/NAME.py``. The runner converts it
to a notebook with the ``python3`` kernel (as ``jupytext --to ipynb --set-kernel python3``
does), checks the parameters, executes it with papermill, puts a provenance block at its top,
and writes it atomically to ``book/chapters/NAME.ipynb`` (or ``--out``).

Command line (also installed as ``reprolib-chapter``)::

    python -m reprolib.book.runner run NAME [--profile P] [-p KEY VALUE ...] [--no-cache] [--out DIR]
    python -m reprolib.book.runner run-all [--profile P] [--no-cache] [--out DIR] [--only NAME ...]
    python -m reprolib.book.runner params NAME        # the chapter's parameters, per profile
    python -m reprolib.book.runner check [--chapters DIR]
    python -m reprolib.book.runner build [--chapters DIR] [--output DIR] [--allow-stale]
    python -m reprolib.book.runner browse [--html DIR] [--screenshots DIR]

``-p KEY VALUE`` values are read as Python literals (``512``, ``0.5``, ``"[0.1, 0.3]"``,
``True``); anything else is a string (``-p device cpu``).

Parameter errors (an unknown name, a wrong type, a value out of range) are found before a
kernel starts; the command then exits with status 2, lists the valid parameters, and writes
nothing. A chapter that fails while executing leaves its executed copy untouched; the partial
notebook goes to ``build/failed/NAME.ipynb``.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import tqdm  # noqa: F401  (imported before the kernel's environment is set; see _kernel_env)

from .. import paths
from ..files import atomic_open
from .params import PROFILES, ParameterError, Params, Spec

#: The checkout's folders (``None`` outside a source checkout).
ROOT: Path | None = paths.REPO_ROOT
NOTEBOOKS_DIR = ROOT / "notebooks" if ROOT else None
BOOK_DIR = ROOT / "book" if ROOT else None
#: Where the executed ``cpu`` chapters the book shows live (committed).
EXECUTED_DIR = BOOK_DIR / "chapters" if BOOK_DIR else None
#: Where ``smoke`` runs go by default, so they never overwrite the book's executions.
SMOKE_DIR = ROOT / "build" / "smoke" / "chapters" if ROOT else None
#: Where partial notebooks of failed runs are kept.
FAILED_DIR = ROOT / "build" / "failed" if ROOT else None
#: The profile the committed executions in ``book/chapters`` are expected to have.
BOOK_PROFILE = "cpu"
#: The chapter that opens the book (run first).
FIRST = "intro"

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
PROVENANCE_TAG = "provenance"
#: The tag of a chapter's opening summary (verdict tally, headline figure, what differs); the
#: provenance box goes under it, so that results come first.
SUMMARY_TAG = "summary"
#: The last cell the runner appends (and removes afterwards): the kernel reports its provenance.
_PROBE_TAG = "reprolib-provenance-probe"
_PROBE = """\
import json as _json
from reprolib import cache as _cache
from reprolib.book import params as _params, provenance as _provenance
_resolved = [_v for _v in list(globals().values()) if isinstance(_v, _params.Params)]
print("REPROLIB-PROVENANCE " + _json.dumps({**_provenance.collect(_resolved[0].as_dict() if _resolved else None),
                                            "cache": _cache.stats()}))
"""
BROWSER = "/usr/bin/chromium"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


class ChapterError(RuntimeError):
    """A chapter is missing, malformed, failed while executing, or the book failed to build."""


def _need_checkout() -> None:
    if ROOT is None:
        raise ChapterError("The chapter runner works in a source checkout of reprolib (notebooks/ and book/); "
                           "clone the repository and `pip install -e .[book]`.")


# ----------------------------------------------------------------------------- sources

def chapter_names(notebooks: Path | None = None) -> list[str]:
    """The chapters in ``notebooks/`` (the introduction first, then by name)."""
    _need_checkout()
    folder = notebooks or NOTEBOOKS_DIR
    names = sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith(("_", ".")))
    return sorted(names, key=lambda n: (n != FIRST, n))


def source_path(name: str) -> Path:
    """``notebooks/NAME.py``, or :class:`ChapterError` naming the chapters there are."""
    _need_checkout()
    path = NOTEBOOKS_DIR / f"{name}.py"
    if not path.is_file():
        raise ChapterError(f"No chapter {name!r} ({path} does not exist). "
                           f"Chapters: {', '.join(chapter_names())}.")
    return path


def source_hash(name: str) -> str:
    """The sha256 of the chapter's source file; stored in every executed copy."""
    return hashlib.sha256(source_path(name).read_bytes()).hexdigest()


def load_source(name: str):
    """The chapter as an (unexecuted) notebook with the ``python3`` kernel."""
    import jupytext

    nb = jupytext.read(source_path(name), fmt="py:percent")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.get("jupytext", {}).pop("text_representation", None)
    return nb


def _parameters_index(nb, name: str) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return i
    raise ChapterError(f"Chapter {name!r} has no code cell tagged 'parameters' "
                       "(write it as `# %% tags=[\"parameters\"]`).")


def _next_code(nb, index: int, name: str) -> int:
    for j in range(index + 1, len(nb.cells)):
        if nb.cells[j].cell_type == "code":
            return j
    raise ChapterError(f"Chapter {name!r} has no cell after its parameters cell to resolve them.")


def parameter_names(nb) -> list[str]:
    """The names assigned in the ``parameters`` cell, as papermill infers them."""
    import papermill

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chapter.ipynb"
        import nbformat

        nbformat.write(nb, path)
        return list(papermill.inspect_notebook(str(path)))


def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal when it parses as one, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _exec_parameter_cells(nb, name: str, profile: str, overrides: Mapping[str, Any]) -> tuple[Spec, Params]:
    """Run the parameters cell, the overrides and the resolving cell in a scratch namespace."""
    index = _parameters_index(nb, name)
    resolver = nb.cells[_next_code(nb, index, name)].source
    ns: dict[str, Any] = {"__name__": f"reprolib_chapter_{name}"}
    exec(compile(nb.cells[index].source, f"<{name}: parameters cell>", "exec"), ns)
    ns.update({"profile": profile, **overrides})
    exec(compile(resolver, f"<{name}: cell after parameters>", "exec"), ns)
    specs = [v for v in ns.values() if isinstance(v, Spec)]
    resolved = [v for v in ns.values() if isinstance(v, Params)]
    if len(specs) != 1 or len(resolved) != 1:
        raise ChapterError(f"The cell after {name!r}'s parameters cell must define one reprolib.book.params.Spec "
                           "and resolve it: `SPEC = Spec(...)`, `params = SPEC.resolve(globals())`.")
    return specs[0], resolved[0]


def spec(name: str) -> Spec:
    """The chapter's :class:`~reprolib.book.params.Spec` (read from its source)."""
    nb = load_source(name)
    return _exec_parameter_cells(nb, name, "cpu", {})[0]


def validate(name: str, profile: str = "cpu", overrides: Mapping[str, Any] | None = None,
             nb=None) -> Params:
    """Check ``profile`` and ``overrides`` against the chapter's parameters without starting a
    kernel; return the resolved parameters.

    Raises:
        ParameterError: an unknown name, a value of the wrong type or out of range; the
            message lists the valid parameters.
        ChapterError: the chapter's parameter cells are malformed.
    """
    overrides = dict(overrides or {})
    if "profile" in overrides and overrides["profile"] != profile:
        raise ParameterError(f"The profile is given twice: {profile!r} and profile={overrides['profile']!r}. "
                             "Choose it once, with --profile.")
    overrides.pop("profile", None)
    nb = load_source(name) if nb is None else nb
    try:
        chapter_spec, _ = _exec_parameter_cells(nb, name, "cpu", {})
    except ParameterError as exc:
        raise ChapterError(f"Chapter {name!r}'s own defaults do not validate:\n{exc}") from exc
    declared = parameter_names(nb)
    if sorted(declared) != sorted(chapter_spec.names):
        raise ChapterError(f"Chapter {name!r}: the parameters cell assigns {sorted(declared)} but its Spec "
                           f"declares {sorted(chapter_spec.names)}; make them match.")
    unknown = [k for k in overrides if k not in declared]
    if profile not in PROFILES or unknown:
        problems = [f"Unknown parameter {k!r} for chapter {name!r}." for k in unknown]
        if profile not in PROFILES:
            problems.append(f"profile={profile!r} is not a profile; choose one of {', '.join(PROFILES)}.")
        raise ParameterError("\n".join(problems) + "\n\nValid parameters (None means the profile's value):\n"
                             + chapter_spec.help())
    return _exec_parameter_cells(nb, name, profile, overrides)[1]


def command(name: str, profile: str, overrides: Mapping[str, Any] | None = None) -> str:
    """The command line that (re-)runs a chapter with these parameters."""
    parts = ["python -m reprolib.book.runner run", name, "--profile", profile]
    for key, value in (overrides or {}).items():
        parts += ["-p", key, shlex.quote(repr(value) if not isinstance(value, str) else value)]
    return " ".join(parts)


def make_command(name: str, profile: str, overrides: Mapping[str, Any] | None = None) -> str:
    """The ``make`` form of :func:`command`."""
    args = " ".join(f"-p {k} {shlex.quote(repr(v) if not isinstance(v, str) else v)}"
                    for k, v in (overrides or {}).items())
    return f"make chapter NAME={name} PROFILE={profile}" + (f" ARGS={shlex.quote(args)}" if args else "")


# ----------------------------------------------------------------------------- running

class _kernel_env:
    """Environment for the kernel: cache switch, no progress bars in saved outputs."""

    def __init__(self, name: str, cache: bool) -> None:
        self.values = {"TQDM_DISABLE": "1", "REPROLIB_CHAPTER": name,
                       "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                       # tqdm.auto warns on stderr without ipywidgets; progress bars are off anyway
                       "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                                "ignore:IProgress not found"]))}
        if not cache:
            self.values["REPROLIB_NO_CACHE"] = "1"
        self.saved: dict[str, str | None] = {}

    def __enter__(self):
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value
        return self

    def __exit__(self, *exc) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def default_out(profile: str) -> Path:
    """``book/chapters`` for the ``cpu`` and ``paper`` profiles; ``build/smoke/chapters`` for
    ``smoke``, so a smoke run never replaces the executions the book shows."""
    _need_checkout()
    return SMOKE_DIR if profile == "smoke" else EXECUTED_DIR


def _check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write a file in it, before any kernel starts.

    Raises:
        ChapterError: naming the folder and the reason, and the fix.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".reprolib-write-test-"):
            pass
    except OSError as exc:
        raise ChapterError(f"Cannot write the executed notebook to {folder}: {exc}. Choose another --out, "
                           "or fix the folder's permissions; nothing was run.") from exc


_TMP_PREFIX = "reprolib-run-"


def _clean_dead_runs() -> None:
    """Remove the temporary folders of runs whose process is gone (killed runs leave them)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*"):
        try:
            pid = int(folder.name[len(_TMP_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _write_atomic(nb, path: Path) -> None:
    import nbformat

    with atomic_open(path, "w", encoding="utf-8") as fh:
        nbformat.write(nb, fh)


def _insert_provenance(nb, *texts: str) -> None:
    """Put the runner's Markdown cells (provenance, "Run this page") under the chapter's summary
    (the first cell tagged :data:`SUMMARY_TAG`), else under its title, replacing those of an
    earlier run."""
    import nbformat

    nb.cells = [c for c in nb.cells if PROVENANCE_TAG not in c.metadata.get("tags", [])]
    summary = [i for i, c in enumerate(nb.cells) if SUMMARY_TAG in c.metadata.get("tags", [])]
    first = nb.cells[0] if nb.cells else None
    at = 1 if first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# ") else 0
    if summary:
        at = summary[0] + 1
    for offset, text in enumerate(texts):
        nb.cells.insert(at + offset, nbformat.v4.new_markdown_cell(text, metadata={"tags": [PROVENANCE_TAG]}))


def _remove_injected_parameters(nb) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: the page shows the run's
    parameters in its provenance box, not as a cell."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]


def verdict_records(nb) -> list[dict]:
    """The machine-readable verdict tables (:data:`reprolib.book.tables.VERDICT_MIME`) that an
    executed chapter displayed, in page order: ``[{"chapter", "document", "tally", "rows"}]``."""
    from .tables import VERDICT_MIME

    cells = nb["cells"] if isinstance(nb, dict) else nb.cells
    return [out["data"][VERDICT_MIME] for cell in cells for out in cell.get("outputs", [])
            if VERDICT_MIME in out.get("data", {})]


def _take_probe(nb) -> dict | None:
    """Remove the provenance probe cell from an executed notebook; return what it printed."""
    info = None
    for cell in [c for c in nb.cells if _PROBE_TAG in c.metadata.get("tags", [])]:
        for out in cell.get("outputs", []):
            for line in str(out.get("text", "")).splitlines():
                if line.startswith("REPROLIB-PROVENANCE "):
                    info = json.loads(line.split(" ", 1)[1])
        nb.cells.remove(cell)
    return info


def run(name: str, profile: str = "cpu", overrides: Mapping[str, Any] | None = None, *,
        out: Path | None = None, cache: bool = True, progress: bool = True,
        log: Callable[[str], None] = print) -> Path:
    """Execute chapter ``name`` and write ``<out>/NAME.ipynb`` atomically; return its path.

    Args:
        name: the chapter (``notebooks/NAME.py``).
        profile: ``smoke``, ``cpu`` or ``paper``.
        overrides: parameter values that replace the profile's.
        out: the folder (default :func:`default_out`).
        cache: read and write the disk cache of expensive steps (``False``: recompute all).
        progress: show a progress bar over the chapter's cells.
        log: where one-line status messages go.

    Raises:
        ParameterError: before anything runs or is written.
        ChapterError: the chapter failed while executing (the executed copy is untouched).
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from . import provenance

    overrides = dict(overrides or {})
    sha = source_hash(name)  # of the source as it is when the run starts
    nb = load_source(name)
    params = validate(name, profile, overrides, nb=nb)
    out = Path(out) if out is not None else default_out(profile)
    target = out / f"{name}.ipynb"
    _check_writable(out)
    _clean_dead_runs()
    log(f"{name}: profile {profile}" + (f", overrides {overrides}" if overrides else "")
        + ("" if cache else ", cache off") + f" -> {target}")
    injected = {"profile": profile, **overrides}
    probe = nbformat.v4.new_code_cell(_PROBE, metadata={"tags": [_PROBE_TAG, "remove-cell"]})
    nb.cells.append(probe)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-{name}-") as tmp, _kernel_env(name, cache):
        src, dst = Path(tmp) / f"{name}.ipynb", Path(tmp) / f"{name}.out.ipynb"
        nbformat.write(nb, src)
        try:
            executed = papermill.execute_notebook(
                str(src), str(dst), parameters=injected, kernel_name=KERNELSPEC["name"],
                progress_bar=progress, cwd=str(NOTEBOOKS_DIR), log_output=False)
        except PapermillExecutionError as exc:
            failed = (FAILED_DIR or Path(tmp)) / f"{name}.ipynb"
            if dst.is_file():
                failed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(dst, failed)
            raise ChapterError(f"Chapter {name!r} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                               f"The partial notebook is at {failed}; {target} was not changed.") from exc
    wall = time.perf_counter() - started
    info = _take_probe(executed)
    if info is None:  # the probe printed nothing usable: describe the runner's process instead
        info = provenance.collect(params.as_dict())
    info["wall_seconds"] = round(wall, 1)
    info["overrides"] = list(overrides)
    rerun = command(name, profile, overrides)
    executed.metadata["reprolib"] = {
        "chapter": name,
        "source": f"notebooks/{name}.py",
        "source_sha256": sha,
        "command": rerun,
        "provenance": info,
        "verdicts": verdict_records(executed),
    }
    executed.metadata["kernelspec"] = dict(KERNELSPEC)
    _remove_injected_parameters(executed)
    _insert_provenance(executed, provenance.markdown(info),
                       provenance.run_block(name, info, make_command=make_command(name, profile, overrides),
                                            command=rerun))
    try:
        _write_atomic(executed, target)
    except OSError as exc:  # never lose an executed notebook: keep it where the message says
        kept = Path(tempfile.mkdtemp(prefix=f"reprolib-executed-{name}-")) / f"{name}.ipynb"
        nbformat.write(executed, kept)
        raise ChapterError(f"Could not write {target} ({exc}); the executed notebook is kept at {kept}.") from exc
    log(f"{name}: done in {wall:.0f} s -> {target}")
    return target


def run_all(profile: str = "cpu", *, out: Path | None = None, cache: bool = True,
            names: Sequence[str] | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> list[Path]:
    """Run chapters one at a time (all of them, introduction first, unless ``names``)."""
    names = list(names) if names else chapter_names()
    for name in names:  # validate every chapter before running any
        validate(name, profile, {})
    written = []
    for i, name in enumerate(names, 1):
        log(f"[{i}/{len(names)}] {name}")
        written.append(run(name, profile, out=out, cache=cache, progress=progress, log=log))
    return written


# ----------------------------------------------------------------------------- checking

def executed_info(path: Path) -> dict:
    """The ``reprolib`` metadata of an executed chapter (``{}`` when it has none)."""
    return json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {}).get("reprolib", {})


def check(chapters_dir: Path | None = None, *, expected_profile: str | None = BOOK_PROFILE,
          names: Iterable[str] | None = None) -> list[str]:
    """Problems with the executed chapters in ``chapters_dir`` (default ``book/chapters``):
    missing, made from an older source (stale), or run with another profile than the book
    shows. Each message names the command that fixes it. An empty list means all is well."""
    chapters_dir = Path(chapters_dir) if chapters_dir is not None else EXECUTED_DIR
    problems = []
    for name in (list(names) if names is not None else chapter_names()):
        path = chapters_dir / f"{name}.ipynb"
        if not path.is_file():
            problems.append(f"{name}: no executed copy at {path}. Run: "
                            f"{make_command(name, expected_profile or BOOK_PROFILE)}")
            continue
        info = executed_info(path)
        prov = info.get("provenance", {})
        profile = prov.get("profile") or expected_profile or BOOK_PROFILE
        overrides = {k: prov.get("parameters", {}).get(k) for k in prov.get("overrides", [])}
        if info.get("source_sha256") != source_hash(name):
            problems.append(f"{name}: notebooks/{name}.py changed after {path} was executed (stale). "
                            f"Refresh it: {make_command(name, profile, overrides)}  "
                            f"(or: {command(name, profile, overrides)})")
        if expected_profile is not None and prov.get("profile") != expected_profile:
            problems.append(f"{name}: {path} was executed with profile {prov.get('profile')!r}, but the book "
                            f"shows {expected_profile!r}. Run: {make_command(name, expected_profile)}")
    return problems


# ----------------------------------------------------------------------------- building

#: The scoreboard page fragment that :func:`build` writes into the book's sources before each
#: build (the introduction includes it); generated, never committed.
SCOREBOARD = "_scoreboard.md"


def scoreboard_markdown(chapters_dir: Path | None = None, toc: Path | None = None) -> str:
    """The front page's scoreboard: per part of the book (``_toc.yml``), the verdicts of its
    executed chapter as displayed by its verdict table, counted and listed with symbol and word.

    Built only from the executed notebooks in ``chapters_dir`` (default ``book/chapters``); a part
    whose chapter is not written yet says so. Claims link to the chapter's verdict table.
    """
    import yaml

    from .tables import BADGES

    chapters_dir = Path(chapters_dir) if chapters_dir is not None else EXECUTED_DIR
    toc_data = yaml.safe_load(Path(toc or BOOK_DIR / "_toc.yml").read_text(encoding="utf-8"))
    symbol = {word: sym for sym, word in BADGES.values()}
    rows, details = [], []
    for part in toc_data.get("parts", []):
        for entry in part.get("chapters", []):
            file = entry["file"]
            if not file.startswith(("chapters/", "parts/")):
                continue
            link = "{doc}`" + f"{part['caption']} <../{file}>`"
            nb_path = chapters_dir / f"{Path(file).name}.ipynb"
            if not file.startswith("chapters/"):
                rows.append(f"| {link} | chapter not written yet | — | — | — |")
                continue
            if not nb_path.is_file():
                rows.append(f"| {link} | not executed | — | — | — |")
                continue
            records = verdict_records(json.loads(nb_path.read_text(encoding="utf-8")))
            claims = [row for record in records for row in record["rows"]]
            if not claims:
                rows.append(f"| {link} | no verdict table on the executed page | — | — | — |")
                continue
            counts = {word: sum(r["verdict"] == word for r in claims) for word in symbol}
            rows.append(f"| {link} | {len(claims)} claims | " +
                        " | ".join(f"{symbol[w]} {counts[w]}" for w in symbol) + " |")
            if claims:
                details.append(f"**{part['caption']}**\n")
                details += [f"- {symbol[r['verdict']]} {r['verdict']}: {r['claim']} ({r['checks passed']} checks)"
                            for r in claims]
                details.append("")
    header = ("| part | claims checked | " + " | ".join(f"{sym} {word}" for word, sym in symbol.items())
              + " |\n|---|---|---|---|---|")
    return "\n".join([header, *rows, "", *details]) + "\n"


def _jupyter_book() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def build(chapters_dir: Path | None = None, *, output: Path | None = None, allow_stale: bool = False,
          expected_profile: str | None = BOOK_PROFILE, log: Callable[[str], None] = print,
          quiet: bool = False) -> Path:
    """Build the book's HTML from executed chapters (no execution, warnings are errors).

    Without ``chapters_dir`` the book is built in place from ``book/chapters`` into
    ``book/_build/html``. With it, ``book/`` is staged in a temporary folder with the
    notebooks of ``chapters_dir`` in place of ``book/chapters``, and the HTML goes to
    ``output/_build/html`` (``output`` is then required).

    Raises:
        ChapterError: stale or missing executions (unless ``allow_stale``), or a build that
            failed or warned.
    """
    _need_checkout()
    problems = check(chapters_dir, expected_profile=expected_profile)
    if problems:
        message = "Executed chapters are not up to date:\n  " + "\n  ".join(problems)
        if not allow_stale:
            raise ChapterError(message + "\n(Or build anyway with --allow-stale.)")
        log("WARNING: " + message)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reprolib-book-") as tmp:
        if chapters_dir is None:
            source, output = BOOK_DIR, Path(output) if output is not None else BOOK_DIR
        else:
            if output is None:
                raise ChapterError("build(chapters_dir=...) needs output=...")
            source = Path(tmp) / "book"
            shutil.copytree(BOOK_DIR, source, ignore=shutil.ignore_patterns("_build", "chapters"))
            shutil.copytree(NOTEBOOKS_DIR, Path(tmp) / "notebooks")  # the pages' .py downloads
            (source / "chapters").mkdir()
            for nb in Path(chapters_dir).glob("*.ipynb"):
                shutil.copyfile(nb, source / "chapters" / nb.name)
        (source / SCOREBOARD).write_text(scoreboard_markdown(chapters_dir), encoding="utf-8")
        cmd = [*_jupyter_book(), "build", str(source), "--path-output", str(output),
               "-W", "-n", "--keep-going", "--all"]
        if quiet:
            cmd.append("-q")
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=quiet, text=True,
                              env={**os.environ, "TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        if proc.returncode != 0:
            detail = (proc.stdout or "")[-6000:] + (proc.stderr or "")[-6000:] if quiet else ""
            raise ChapterError(f"jupyter-book build failed (exit {proc.returncode}).\n{detail}")
    html = Path(output) / "_build" / "html"
    log(f"book built in {time.perf_counter() - started:.0f} s: {html / 'index.html'}")
    return html


# ----------------------------------------------------------------------------- browsing

#: Run in each checked page after it laid out: measures every table of the article against
#: the article's column, and finds cells cut with "…"; the result lands in ``#reprolib-layout``.
_LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const article = document.querySelector(".bd-article") || document.querySelector("#main-content");
  const column = article ? article.getBoundingClientRect().width : 0;
  const wide = [], cut = [];
  document.querySelectorAll("#main-content table").forEach((t, i) => {
    const width = Math.max(t.getBoundingClientRect().width, t.scrollWidth);
    const head = (t.id || (t.querySelector("th") || {}).textContent || "").trim().slice(0, 40);
    if (width > column + 1) wide.push(`table ${i + 1} (${head}): ${Math.round(width)} px`);
    t.querySelectorAll("td, th").forEach(c => {
      const text = c.textContent.trim();
      if (text.endsWith("\u2026") || text.endsWith("...")) cut.push(text.slice(-40));
    });
  });
  const out = document.createElement("pre");
  out.id = "reprolib-layout";
  out.style.display = "none";
  out.textContent = JSON.stringify({column: Math.round(column), wide: wide, cut: cut});
  document.body.appendChild(out);
});
</script>"""
#: Text that must not appear on a page: what a reader cannot use (a colour emoji carrying a
#: verdict, a builder's local path, a Python repr in the API reference, a note outside the book).
_LEAKS = {"a colour emoji carries meaning": re.compile("[\u2705\u274c\U0001f7e1\U0001f7e2\U0001f534]"),
          "a builder's local path": re.compile(r"PosixPath\(|/work/|/home/[a-z]|/tmp/reprolib"),
          "a Python repr": re.compile(r"&lt;class &#39;|<class '|&lt;function |object at 0x"),
          "a reference to a note outside the book": re.compile(r"card §"),
          "a raw NaN in a table": re.compile(r"<td[^>]*>(\s*None\s*|[^<]*\b(NaN|nan)\b[^<]*)</td>")}


def browser_check(html_dir: Path, *, pages: Sequence[str] | None = None, screenshots: Path | None = None,
                  chapters_dir: Path | None = None, browser: str = BROWSER, timeout: float = 300,
                  width: int = 1400, height: int = 2400) -> dict[str, list[str]]:
    """Open pages of the built site in headless Chromium, as a reader would at ``width`` px,
    and check they render and read.

    For each page (default: every page of the site that is not generated by Sphinx itself:
    the chapters, the part pages, the API reference, the bibliography) it saves a screenshot
    and checks the DOM after scripts ran and the page laid out: the page has its content, no
    cell shows an error, a traceback or stderr; it shows at least as many images as the executed
    notebook has image outputs, each of which exists in the site; no table is wider than the
    article's column and no cell is cut with "…"; its math is typeset (by the vendored MathJax,
    so offline too); every in-page link (``#id``) has its target;
    and no text of :data:`_LEAKS` appears (colour emoji carrying a verdict, local paths, Python
    reprs, references to notes outside the book, raw NaN). The page is opened from a sibling
    copy with a layout probe appended, removed afterwards.

    Returns:
        ``{page: [problem, ...]}`` (empty lists when all is well).

    Raises:
        ChapterError: no browser at ``browser``.
    """
    html_dir = Path(html_dir)
    if not Path(browser).is_file() and shutil.which(browser) is None:
        raise ChapterError(f"No browser at {browser}; install it with `apt-get install -y chromium`.")
    if pages is None:
        pages = site_pages(html_dir)
    screenshots = Path(screenshots) if screenshots is not None else (ROOT or Path(".")) / "build" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    report: dict[str, list[str]] = {}
    for page in pages:
        problems: list[str] = []
        file = html_dir / f"{page}.html"
        if not file.is_file():
            report[page] = [f"{file} does not exist"]
            continue
        probe = file.with_name(f".{file.stem}.reprolib-check.html")
        probe.write_text(file.read_text(encoding="utf-8").replace("</body>", _LAYOUT_PROBE + "</body>", 1),
                         encoding="utf-8")
        url = probe.resolve().as_uri()
        shot = screenshots / (page.replace("/", "_") + ".png")
        with tempfile.TemporaryDirectory(prefix="reprolib-chromium-") as profile_dir:
            # one browser run renders the page once, saves the screenshot and prints the DOM
            cmd = [browser, *BROWSER_FLAGS, f"--user-data-dir={profile_dir}", "--hide-scrollbars",
                   f"--window-size={width},{height}", "--virtual-time-budget=3000",
                   f"--screenshot={shot}", "--dump-dom", url]
            try:
                dom = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                report[page] = [f"chromium did not finish within {timeout} s"]
                continue
            finally:
                probe.unlink(missing_ok=True)
        html = dom.stdout
        layout = re.search(r'<pre id="reprolib-layout"[^>]*>(.*?)</pre>', html, re.S)
        if layout is None:
            problems.append("the layout probe did not run")
        else:
            measured = json.loads(layout.group(1).replace("&quot;", '"').replace("&amp;", "&")
                                  .replace("&lt;", "<").replace("&gt;", ">"))
            problems += [f"wider than the {measured['column']} px column: {w}" for w in measured["wide"]]
            problems += [f"a table cell is cut: {c!r}" for c in measured["cut"]]
            html = html[:layout.start()] + html[layout.end():]
        shown = re.sub(r"<style\b[^>]*>.*?</style>", "", html, flags=re.S)  # CSS (MathJax's font URLs) shows no text
        for what, pattern in _LEAKS.items():
            found = pattern.search(shown)
            if found:
                problems.append(f"{what}: {shown[max(found.start() - 60, 0):found.end() + 60]!r}")
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        dangling = sorted({a for a in re.findall(r'href="#([^"]+)"', html) if a not in ids})
        if dangling:
            problems.append(f"in-page links without a target: {', '.join(dangling[:10])}")
        if dom.returncode != 0 or "<body" not in html:
            problems.append(f"chromium could not render the page (exit {dom.returncode}): {dom.stderr[-500:]}")
        if "Traceback (most recent call last)" in html or re.search(r'class="[^"]*\btraceback\b', html):
            problems.append("the page shows a traceback")
        if re.search(r'class="[^"]*\boutput (stderr|error)\b', html):
            problems.append("a cell shows error or stderr output")
        if re.search(r'class="[^"]*\bsystem-message\b', html) or "Unknown directive" in html:
            problems.append("the page shows a docutils error")
        if re.search(r'class="math[ "]', html) and "<mjx-container" not in html:
            problems.append("the page's math is not typeset (MathJax did not load)")
        if 'id="main-content"' not in html or not re.search(r"<h1[ >]", html):
            problems.append("the page has no main content or title")
        images = re.findall(r'<img[^>]*\bsrc="([^"]+)"', html)
        outputs = [src for src in images if "_images/" in src or src.startswith("data:image")]
        if chapters_dir is not None and page.startswith("chapters/"):
            nb_path = Path(chapters_dir) / f"{page.split('/', 1)[1]}.ipynb"
            if nb_path.is_file():
                expected = _image_outputs(nb_path)
                if len(outputs) < expected:
                    problems.append(f"the page shows {len(outputs)} figures, the notebook has {expected}")
        for src in outputs:
            if src.startswith("data:"):
                continue
            target = (file.parent / src.split("#")[0].split("?")[0]).resolve()
            if src.startswith("file://"):
                target = Path(src[len("file://"):])
            if not target.is_file():
                problems.append(f"figure {src} is missing from the site")
        if not shot.is_file() or shot.stat().st_size < 2000:
            problems.append(f"no screenshot at {shot}")
        report[page] = problems
    return report


def site_pages(html_dir: Path) -> list[str]:
    """The book's own pages in a built site (``chapters/intro``, ``api``, ...), chapters first."""
    html_dir = Path(html_dir)
    skip = {"genindex", "search", "py-modindex", "index"}
    pages = [p.relative_to(html_dir).with_suffix("").as_posix() for p in html_dir.rglob("*.html")
             if not p.relative_to(html_dir).parts[0].startswith("_") and not p.name.startswith(".")]
    pages = [p for p in pages if p not in skip]
    return sorted(pages, key=lambda p: (not p.startswith("chapters/"), p))


def _image_outputs(nb_path: Path) -> int:
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    return sum(1 for cell in nb.get("cells", []) for out in cell.get("outputs", [])
               if any(k.startswith("image/") for k in out.get("data", {})))


# ----------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reprolib.book.runner",
                                     description="Run the book's chapters and build the book.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="execute one chapter")
    p.add_argument("name")
    p.add_argument("--profile", default="cpu", help="smoke, cpu (default) or paper")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="override a parameter (repeatable); VALUE is read as a Python literal")
    p.add_argument("--no-cache", action="store_true", help="recompute every cached step")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the executed notebook (default: book/chapters; build/smoke/chapters "
                        "for the smoke profile)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("run-all", help="execute every chapter, one at a time")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these chapters")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("params", help="list a chapter's parameters and their values per profile")
    p.add_argument("name")

    sub.add_parser("list", help="list the chapters")

    p = sub.add_parser("check", help="report stale or missing executed chapters")
    p.add_argument("--chapters", type=Path, default=None, help="folder of executed chapters (default: book/chapters)")
    p.add_argument("--profile", default=BOOK_PROFILE, help="the profile they should have ('any' for any)")

    p = sub.add_parser("build", help="build the book's HTML (warnings are errors)")
    p.add_argument("--chapters", type=Path, default=None,
                   help="build from the executed chapters in this folder (default: book/chapters)")
    p.add_argument("--output", type=Path, default=None,
                   help="where _build/html goes (default: book/; required with --chapters)")
    p.add_argument("--allow-stale", action="store_true", help="build even if chapters are stale or missing")
    p.add_argument("--profile", default=BOOK_PROFILE, help="the profile the chapters should have ('any')")

    p = sub.add_parser("browse", help="open the built chapter pages in headless Chromium, check, screenshot")
    p.add_argument("--html", type=Path, default=None, help="the built site (default: book/_build/html)")
    p.add_argument("--chapters", type=Path, default=None, help="the executed chapters it was built from")
    p.add_argument("--screenshots", type=Path, default=None, help="default: build/screenshots")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``reprolib-chapter`` / ``python -m reprolib.book.runner`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "run":
            overrides: dict[str, Any] = {}
            for key, value in args.param:
                overrides[key] = parse_value(value)
            run(args.name, args.profile, overrides, out=args.out, cache=not args.no_cache,
                progress=not args.no_progress)
        elif args.cmd == "run-all":
            run_all(args.profile, out=args.out, cache=not args.no_cache, names=args.only,
                    progress=not args.no_progress)
        elif args.cmd == "params":
            print(spec(args.name).help())
        elif args.cmd == "list":
            print("\n".join(chapter_names()))
        elif args.cmd == "check":
            expected = None if args.profile == "any" else args.profile
            problems = check(args.chapters, expected_profile=expected)
            for line in problems:
                print(line)
            if problems:
                return 1
            print("all executed chapters are up to date")
        elif args.cmd == "build":
            expected = None if args.profile == "any" else args.profile
            build(args.chapters, output=args.output, allow_stale=args.allow_stale, expected_profile=expected)
        elif args.cmd == "browse":
            html = args.html or BOOK_DIR / "_build" / "html"
            report = browser_check(html, screenshots=args.screenshots,
                                   chapters_dir=args.chapters or EXECUTED_DIR)
            bad = {page: problems for page, problems in report.items() if problems}
            for page, problems in report.items():
                print(f"{page}: " + ("ok" if not problems else "; ".join(problems)))
            if bad or not report:
                return 1
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ChapterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the steps that finished are kept in the cache; run the same command again to "
              "resume from them.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
