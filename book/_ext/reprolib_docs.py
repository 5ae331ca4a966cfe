"""Sphinx glue for reprolib's docstrings (loaded through ``_config.yml``'s ``local_extensions``).

reprolib's docstrings are written to read well as plain text, with two conventions that RST
would otherwise misread:

* ``#:`` comments on constants read "what it is: detail". Napoleon would take the text
  before the colon for a type; their original text is restored after napoleon ran.
* ``|x|`` is an absolute value or a norm, never an RST substitution: bars outside inline
  literals, roles and table rows are escaped.
* ``reprolib-zoo``, ``reprolib-defended`` and ``reprolib-attacks`` directives: the model zoo's
  table and its defended models' table, made from :data:`reprolib.models.registry.SPECS` and
  each checkpoint's metadata (``data/models/*.json``), and the table of attack modules, made
  from :mod:`reprolib.attacks`; nothing in them is typed.
* Cross-references may use a short name (``:func:`start```, ``:meth:`Counter.grad```) for an
  object documented in another module; when exactly one documented object ends with that
  name, the reference resolves to it (otherwise nitpicky mode reports it, as usual).
"""
from __future__ import annotations

import importlib
import pkgutil
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

_SAVED: dict[tuple[str, str], list[str]] = {}
_LITERAL = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_?)")


def _escape_bars(line: str) -> str:
    stripped = line.lstrip()
    if stripped.startswith(("|", "+")) or "|" not in line:
        return line  # a table row, a line block, or nothing to do
    parts = _LITERAL.split(line)
    return "".join(p if i % 2 else p.replace("|", r"\|") for i, p in enumerate(parts))


def _before(app, what, name, obj, options, lines):
    lines[:] = [_escape_bars(line) for line in lines]
    if what in ("data", "attribute"):
        _SAVED[(what, name)] = list(lines)


def _after(app, what, name, obj, options, lines):
    saved = _SAVED.pop((what, name), None)
    if saved is not None:
        lines[:] = saved


def _missing_reference(app, env, node, contnode):
    if node.get("refdomain") != "py" or not node.get("reftarget"):
        return None
    domain = env.get_domain("py")
    target = node["reftarget"].lstrip(".~")
    objtypes = domain.objtypes_for_role(node["reftype"]) or None
    matches = [name for name, obj in domain.objects.items()
               if (name == target or name.endswith("." + target))
               and (objtypes is None or obj.objtype in objtypes) and not obj.aliased]
    if len(matches) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    obj = domain.objects[matches[0]]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, matches[0])


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class _GeneratedTable(SphinxDirective):
    """A directive (for the book's MyST pages) whose content is a Markdown table generated from
    the library."""

    def rows(self) -> tuple[list[str], list[list[str]]]:
        raise NotImplementedError

    def run(self):
        header, rows = self.rows()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        container = nodes.Element()
        nested_parse_with_titles(self.state, StringList(lines, source="reprolib-generated"), container)
        return list(container.children)


class ZooTable(_GeneratedTable):
    """``.. reprolib-zoo::`` the model zoo: name, architecture, data, our test accuracy and the
    document's, and training time with its hardware, from the registry and the metadata files."""

    def rows(self):
        from reprolib.book.tables import MISSING, format_value
        from reprolib.models import registry

        header = ["model", "architecture", "data", "test accuracy, ours", "test accuracy, document",
                  "training time (hardware)"]
        rows = []
        for name, spec in registry.SPECS.items():
            try:
                meta = registry.metadata(name)
            except registry.CheckpointError:
                meta = None
            ours = f"{format_value(100 * meta['test_accuracy'])} %" if meta else "not trained in this checkout"
            paper = f"{format_value(100 * spec.paper_accuracy)} %" if spec.paper_accuracy is not None else MISSING
            trained = f"{_duration(meta['train_seconds'])} ({meta['hardware']})" if meta else MISSING
            rows.append([f"`{name}`", _cell(spec.description), {"mnist": "MNIST", "mnist32": "MNIST, 32×32",
                         "cifar10": "CIFAR-10"}.get(spec.dataset, spec.dataset), ours, paper, _cell(trained)])
        return header, rows


class DefendedTable(_GeneratedTable):
    """``.. reprolib-defended::`` the zoo's defended models: the defence and its settings, and
    the robust accuracy their metadata records under the registry's check, beside the document's."""

    def rows(self):
        from reprolib.book.tables import MISSING, format_value
        from reprolib.models import registry
        from reprolib.models.defended import Distillation

        header = ["model", "defence", "robustness check", "robust accuracy, ours", "robust accuracy, document"]
        rows = []
        for name, spec in registry.SPECS.items():
            if spec.defense is None:
                continue
            d = spec.defense
            if isinstance(d, Distillation):
                defence = f"distillation at T = {format_value(d.temperature)}"
            else:
                knobs = ", ".join(f"{k} {format_value(v) if isinstance(v, float) else v}"
                                  for k, v in d.settings.items())
                defence = f"adversarial training, {d.method} ({knobs})"
            check = MISSING
            if spec.robust is not None:
                r = spec.robust
                norm = {"linf": "ℓ∞", "l2": "ℓ2"}.get(r.norm, r.norm)
                restarts = f"{r.restarts} restart" + ("s" if r.restarts != 1 else "")
                check = (f"PGD-{r.steps} × {restarts}, {norm} ε = {format_value(r.eps)}, "
                         f"{r.loss} loss, first {r.n_images} test images")
            try:
                meta = registry.metadata(name).get("robust_accuracy")
            except registry.CheckpointError:
                meta = None
            ours = f"{format_value(100 * meta['value'])} %" if meta else MISSING
            paper = (f"{format_value(100 * spec.paper_robust_accuracy)} %" if spec.paper_robust_accuracy is not None
                     else MISSING)
            rows.append([f"`{name}`", _cell(defence), _cell(check), ours, paper])
        return header, rows


class AttackTable(_GeneratedTable):
    """``.. reprolib-attacks::`` one row per attack module of :mod:`reprolib.attacks`: a link to
    the module, the attacks it exports, and the first paragraph of its docstring."""

    def rows(self):
        import reprolib.attacks as attacks

        header = ["module", "attacks", "what it is"]
        rows = []
        for info in pkgutil.iter_modules(attacks.__path__):
            if info.name in ("core", "ops") or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"reprolib.attacks.{info.name}")
            names = [n for n in attacks.__all__ if getattr(module, n, None) is getattr(attacks, n)
                     and getattr(getattr(attacks, n), "__module__", "") == module.__name__]
            summary = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
            rows.append([f"{{mod}}`reprolib.attacks.{info.name}`",
                         ", ".join(f"{{func}}`~reprolib.attacks.{info.name}.{n}`" for n in names) or "—",
                         _cell(summary)])
        return header, rows


def setup(app):
    app.add_directive("reprolib-zoo", ZooTable)
    app.add_directive("reprolib-attacks", AttackTable)
    app.add_directive("reprolib-defended", DefendedTable)
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _before, priority=100)
    app.connect("autodoc-process-docstring", _after, priority=900)
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
