"""Our numbers beside a document's: the paper's transcribed tables, and verdicts per claim.

The paper's own numbers live as CSV files in the checkout's ``data/paper/<document>/`` (each
folder has a README saying where every number comes from). Chapters read them with
:func:`paper_table` and never type them in.

A verdict is decided by a rule fixed before the run and applied to a number of checks (nets,
ε values, measures, ...): :func:`verdict` says **holds** when every check passes, **partly**
when some do, **does not** when none does. :func:`verdict_row` makes one row of a chapter's
verdict table, with the paper's number, ours, the rule and a reason for any deviation.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..paths import REPO_ROOT

__all__ = ["HOLDS", "PARTLY", "DOES_NOT", "paper_dir", "paper_table", "verdict", "verdict_row"]

#: The three verdicts. :mod:`reprolib.book.tables` shows each with a symbol beside the word.
HOLDS, PARTLY, DOES_NOT = "holds", "partly", "does not"


def paper_dir(document: str) -> Path:
    """The folder of a document's transcribed numbers, e.g. ``paper_dir("001-convex-programming")``."""
    if REPO_ROOT is None:
        raise FileNotFoundError("The paper's numbers ship with the source checkout (data/paper/); "
                                "run the chapters from a clone of the repository.")
    folder = REPO_ROOT / "data" / "paper" / document
    if not folder.is_dir():
        known = sorted(p.name for p in (REPO_ROOT / "data" / "paper").glob("*") if p.is_dir())
        raise FileNotFoundError(f"No transcribed numbers for document {document!r} in {folder.parent}; "
                                f"known: {', '.join(known) or 'none'}.")
    return folder


def paper_table(document: str, name: str) -> pd.DataFrame:
    """One transcribed table of a document, e.g. ``paper_table("001-convex-programming", "table1")``."""
    path = paper_dir(document) / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.csv"))
        raise FileNotFoundError(f"{path} does not exist; tables of {document}: {', '.join(known)}.")
    return pd.read_csv(path)


def verdict(passed: int, total: int) -> str:
    """``HOLDS`` if all ``total`` checks passed, ``PARTLY`` if some did, ``DOES_NOT`` if none."""
    if total < 1 or not 0 <= passed <= total:
        raise ValueError(f"need 0 ≤ passed ≤ total and total ≥ 1, got {passed} of {total}.")
    return HOLDS if passed == total else PARTLY if passed > 0 else DOES_NOT


def verdict_row(claim: str, document: str, ours: str, rule: str, passed: int, total: int,
                reason: str = "", evidence: tuple[str, str] | None = None) -> dict:
    """One row of a verdict table (shown by :func:`reprolib.book.tables.verdict_table`).

    Args:
        claim: the document's claim, in a sentence.
        document, ours: the document's number and ours, as text with units.
        rule: the test, fixed before the run.
        passed, total: how many of the rule's checks passed, of how many.
        reason: why the claim does not fully hold; required unless it holds, so that no
            "partly" or "does not" goes unexplained.
        evidence: ``(label, anchor)`` of the figure or table on the page that the row checks,
            e.g. ``("Fig. 2", "fig-fooling")``; the verdict table links to ``#anchor``.

    Raises:
        ValueError: a deviation without a reason, or counts that are not 0 ≤ passed ≤ total.
    """
    outcome = verdict(passed, total)
    if outcome != HOLDS and not reason:
        raise ValueError(f"claim {claim!r} is {outcome!r}: give the reason for the deviation.")
    return {"claim": claim, "document": document, "ours": ours, "rule": rule,
            "checks passed": f"{passed}/{total}", "verdict": outcome, "why": reason,
            **({"evidence": tuple(evidence)} if evidence else {})}
