"""Sphinx glue for reprolib's docstrings (loaded through ``_config.yml``'s ``local_extensions``).

reprolib's docstrings are written to read well as plain text, with two conventions that RST
would otherwise misread:

* ``#:`` comments on constants read "what it is: detail". Napoleon would take the text
  before the colon for a type; their original text is restored after napoleon ran.
* ``|x|`` is an absolute value or a norm, never an RST substitution: bars outside inline
  literals, roles and table rows are escaped.
* Cross-references may use a short name (``:func:`start```, ``:meth:`Counter.grad```) for an
  object documented in another module; when exactly one documented object ends with that
  name, the reference resolves to it (otherwise nitpicky mode reports it, as usual).
"""
from __future__ import annotations

import re

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


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _before, priority=100)
    app.connect("autodoc-process-docstring", _after, priority=900)
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
