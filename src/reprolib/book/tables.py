"""How every chapter shows a table: whole cells, three significant figures, "—" for missing.

pandas' own display cuts long cells with "…", prints ``0.194318`` and ``5.329071e-14``, shows
``NaN``, and puts an index-name row under the header. :func:`present` returns a
:class:`Table` that renders (as HTML in the book, as text in a terminal) with none of that:

* every cell in full (long text wraps inside the column instead of being cut);
* floats to ``sig`` significant figures (3 by default): ``0.194``, ``12.3``, ``5.33×10⁻¹⁴``;
  integers and text as they are; booleans as "yes"/"no";
* ``None``, ``NaN`` and ``pd.NA`` as :data:`MISSING` ("—");
* the index as ordinary leading column(s), so there is no empty index-name row;
* a table with more than ``max_columns`` value columns split into several tables that each
  repeat the index columns, so that none is wider than the page.

:func:`verdict_table` renders a chapter's verdict rows (:func:`reprolib.book.reproduction.verdict_row`)
with badges that read without colour or an emoji font, links to the figure or table each row
checks, and a machine-readable copy (MIME type :data:`VERDICT_MIME`) from which the book's
front-page scoreboard is built.
"""
from __future__ import annotations

import html
import math
import numbers
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .reproduction import DOES_NOT, HOLDS, PARTLY

__all__ = ["MISSING", "VERDICT_MIME", "BADGES", "format_value", "present", "Table", "verdict_table",
           "VerdictTable", "tally", "tally_text"]

#: What a missing value (``None``, ``NaN``, ``pd.NA``) is shown as.
MISSING = "—"
#: The MIME type of the machine-readable verdicts a :class:`VerdictTable` emits beside its HTML.
VERDICT_MIME = "application/vnd.reprolib.verdicts+json"
#: The badge of each verdict: a symbol present in common text fonts (no emoji) and the word,
#: so that the verdict reads in monochrome print and without a colour-emoji font.
BADGES = {HOLDS: ("✓", "holds"), PARTLY: ("◐", "partly"), DOES_NOT: ("✗", "does not")}

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _is_missing(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def format_value(value: Any, sig: int = 3) -> str:
    """``value`` as it appears in a book table.

    Floats get ``sig`` significant figures, in positional notation between 10⁻³ and 10⁶
    (``0.194``, ``12.3``, ``41700``) and as ``m×10ᵉ`` outside (``5.33×10⁻¹⁴``); ``±inf`` is
    ``∞``/``−∞``. Integers are printed whole, booleans as "yes"/"no", missing values as
    :data:`MISSING`, anything else with ``str``.

    Raises:
        ValueError: ``sig`` is below 1.
    """
    if sig < 1:
        raise ValueError(f"sig must be at least 1, got {sig}.")
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x == 0:
            return "0"
        rounded = float(f"{x:.{sig - 1}e}")  # rounding may carry into the next decade (9.996 → 10.0)
        magnitude = math.floor(math.log10(abs(rounded)))
        if -3 <= magnitude < 6:
            decimals = max(sig - 1 - magnitude, 0)
            text = f"{rounded:.{decimals}f}"
        else:
            mantissa, exponent = f"{rounded:.{sig - 1}e}".split("e")
            text = f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
        return text.replace("-", "−")
    return str(value)


def _flat_columns(frame: pd.DataFrame) -> list[str]:
    return [" · ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in frame.columns]


class Table:
    """A formatted table: one or more frames of strings, rendered as HTML or text.

    Made by :func:`present`; ``frames`` holds the formatted pieces (strings only), ``keys`` the
    number of leading columns (the former index) each piece repeats.
    """

    def __init__(self, frames: Sequence[pd.DataFrame], keys: int, *, caption: str | None = None,
                 name: str | None = None, html_cells: bool = False) -> None:
        self.frames, self.keys, self.caption, self.name = list(frames), keys, caption, name
        self._html_cells = html_cells

    def _cell(self, text: str) -> str:
        return text if self._html_cells else html.escape(text)

    def _repr_html_(self) -> str:
        parts = []
        for i, frame in enumerate(self.frames):
            ident = f' id="{html.escape(self.name)}"' if self.name and i == 0 else ""
            caption = ""
            if self.caption and i == 0:
                caption = f"<caption>{html.escape(self.caption)}</caption>"
            head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in frame.columns)
            body = "".join(
                "<tr>" + "".join((f'<th scope="row">{self._cell(v)}</th>' if j < self.keys else
                                  f"<td>{self._cell(v)}</td>") for j, v in enumerate(row)) + "</tr>"
                for row in frame.itertuples(index=False))
            parts.append(f'<table class="reprolib-table"{ident}>{caption}<thead><tr>{head}</tr></thead>'
                         f"<tbody>{body}</tbody></table>")
        return '<div class="reprolib-tables">' + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        text = "\n\n".join(frame.to_string(index=False) for frame in self.frames)
        return f"{self.caption}\n{text}" if self.caption else text


def present(frame: pd.DataFrame | Mapping | Sequence[Mapping], *, sig: int = 3, index: bool = True,
            max_columns: int | None = None, caption: str | None = None, name: str | None = None,
            formats: Mapping[str, Any] | None = None) -> Table:
    """The book's rendering of a table (see the module's docstring).

    Args:
        frame: a DataFrame, or what ``pd.DataFrame`` accepts (a list of row dicts, ...).
        sig: significant figures of float cells.
        index: show the index as leading column(s); an unnamed default ``RangeIndex`` is
            never shown.
        max_columns: split the table into pieces of at most this many value columns, each
            repeating the index columns (``None``: one table).
        caption: a caption above the (first) table.
        name: the HTML id of the (first) table, so that text and verdict rows can link to it
            (``#name``).
        formats: per column, a format string (``"{:.1f} %"``) or a function of the value that
            replaces the default formatting; missing values stay :data:`MISSING`.

    Returns:
        A :class:`Table`; the last expression of a cell displays it.

    Raises:
        ValueError: ``max_columns`` below 1, or a ``formats`` key that is not a column.
    """
    df = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    if max_columns is not None and max_columns < 1:
        raise ValueError(f"max_columns must be at least 1, got {max_columns}.")
    default_index = isinstance(df.index, pd.RangeIndex) and df.index.name is None
    keys = 0
    if index and not default_index:
        keys = df.index.nlevels
        df = df.reset_index()
    df = df.copy()
    df.columns = _flat_columns(df)
    formats = dict(formats or {})
    unknown = [k for k in formats if k not in df.columns]
    if unknown:
        raise ValueError(f"formats names columns that are not in the table: {unknown}; columns: {list(df.columns)}.")

    def counts(values: pd.Series) -> bool:
        """A float column of whole numbers with gaps (pandas' dtype for integers with missing values)."""
        present_ = values.dropna()
        return (values.dtype.kind == "f" and values.isna().any() and len(present_) > 0
                and bool(np.isfinite(present_).all()) and bool((present_ == present_.round()).all()))

    def cell(column: str, value: Any, whole: bool) -> str:
        if _is_missing(value):
            return MISSING
        f = formats.get(column)
        if f is None:
            return format_value(int(value) if whole else value, sig)
        return f.format(value) if isinstance(f, str) else str(f(value))

    text = pd.DataFrame({c: [cell(c, v, counts(df.iloc[:, i])) for v in df.iloc[:, i]]
                         for i, c in enumerate(df.columns)}, columns=list(df.columns))
    values = list(text.columns[keys:])
    step = max_columns or max(len(values), 1)
    pieces = [text[list(text.columns[:keys]) + values[i:i + step]] for i in range(0, max(len(values), 1), step)]
    return Table(pieces, keys, caption=caption, name=name)


def tally(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many of ``rows`` (verdict rows) hold, partly hold and do not: ``{"holds": n, ...}``."""
    counts = {word: 0 for _, word in BADGES.values()}
    for row in rows:
        counts[BADGES[row["verdict"]][1]] += 1
    return counts


def tally_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The tally as a sentence for a chapter's summary, symbol beside word:
    ``"12 claims checked: ✓ 8 hold, ◐ 3 partly, ✗ 1 does not"``."""
    counts = tally(rows)
    symbol = {word: sym for sym, word in BADGES.values()}
    words = {"holds": "hold" if counts["holds"] != 1 else "holds", "partly": "partly",
             "does not": "do not" if counts["does not"] != 1 else "does not"}
    return (f"{len(rows)} claim{'s' if len(rows) != 1 else ''} checked: "
            + ", ".join(f"{symbol[w]} {counts[w]} {words[w]}" for w in counts))


def _badge(outcome: str) -> str:
    symbol, word = BADGES[outcome]
    kind = word.replace(" ", "-")
    return f'<span class="reprolib-verdict reprolib-verdict-{kind}">{symbol} {word}</span>'


class VerdictTable(Table):
    """A :class:`Table` of verdict rows that also carries them machine-readably
    (:data:`VERDICT_MIME`: ``{"chapter", "document", "tally", "rows"}``)."""

    def __init__(self, frames: Sequence[pd.DataFrame], keys: int, *, record: dict, name: str | None) -> None:
        super().__init__(frames, keys, name=name, html_cells=True)
        self.record = record

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        return {"text/html": self._repr_html_(), "text/plain": repr(self), VERDICT_MIME: self.record}


def verdict_table(rows: Sequence[Mapping[str, Any]], *, chapter: str, document: str,
                  name: str = "tbl-verdicts") -> VerdictTable:
    """A chapter's verdict table: one row per claim, with a badge that says the verdict in a
    symbol and a word, and a link to the figure or table the row checks. It is shown as two
    tables that fit the page: the verdicts (claim, verdict, checks, link, why), then the
    numbers behind them (claim, the document's, ours, the rule).

    Args:
        rows: rows from :func:`reprolib.book.reproduction.verdict_row`.
        chapter: the chapter's name (``notebooks/NAME.py``), for the scoreboard.
        document: the document the claims are from, as the scoreboard shows it (``"001 · Balda et al."``).
        name: the table's HTML id.

    Raises:
        ValueError: no rows, or a row whose verdict is not one of the three.
    """
    if not rows:
        raise ValueError("a verdict table needs at least one row.")
    verdicts, details = [], []
    for row in rows:
        if row["verdict"] not in BADGES:
            raise ValueError(f"unknown verdict {row['verdict']!r}; use reprolib.book.reproduction.verdict_row.")
        label, anchor = row.get("evidence") or ("", "")
        link = f'<a href="#{html.escape(anchor)}">{html.escape(label)}</a>' if anchor else MISSING
        claim = html.escape(row["claim"])
        verdicts.append({"claim": claim, "verdict": _badge(row["verdict"]),
                         "checks passed": html.escape(row["checks passed"]), "checked in": link,
                         "why": html.escape(row["why"]) or MISSING})
        details.append({"claim": claim, "document": html.escape(row["document"]), "ours": html.escape(row["ours"]),
                        "rule": html.escape(row["rule"])})
    record = {"chapter": chapter, "document": document, "tally": tally(rows),
              "rows": [{"claim": r["claim"], "verdict": BADGES[r["verdict"]][1], "checks passed": r["checks passed"],
                        "anchor": (r.get("evidence") or ("", ""))[1]} for r in rows]}
    return VerdictTable([pd.DataFrame(verdicts), pd.DataFrame(details)], 1, record=record, name=name)
