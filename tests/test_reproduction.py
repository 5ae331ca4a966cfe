"""reprolib.book.reproduction: the documents' transcribed numbers and the verdict rule."""
from __future__ import annotations

import pytest

from reprolib.book import reproduction
from reprolib.book.reproduction import DOES_NOT, HOLDS, PARTLY, paper_table, verdict, verdict_row


def test_verdict_counts_checks():
    assert verdict(4, 4) == HOLDS
    assert verdict(1, 4) == PARTLY
    assert verdict(0, 4) == DOES_NOT
    for bad in ((1, 0), (5, 4), (-1, 4)):
        with pytest.raises(ValueError):
            verdict(*bad)


def test_a_deviation_needs_a_reason():
    row = verdict_row("claim", "1 %", "2 %", "rule", 2, 2)
    assert row["verdict"] == HOLDS and row["checks passed"] == "2/2"
    with pytest.raises(ValueError, match="reason"):
        verdict_row("claim", "1 %", "2 %", "rule", 1, 2)
    assert verdict_row("claim", "1 %", "2 %", "rule", 1, 2, "smaller net")["why"] == "smaller net"


def test_document_001_tables_match_the_card():
    t1 = paper_table("001-convex-programming", "table1").set_index("net")
    assert list(t1.index) == ["fcnn", "lenet", "nin", "densenet"]
    assert t1.loc["lenet", "rho_1"] == pytest.approx(0.077282)
    assert t1.loc["densenet", "eps_99"] == pytest.approx(0.010143)
    # the measures are coherent in the document: every column ranks the nets the same way
    orders = {tuple(t1[c].sort_values().index) for c in ("rho_1", "rho_2", "eps_99")}
    assert orders == {("densenet", "nin", "fcnn", "lenet")}
    v1 = paper_table("001-convex-programming", "fig2_v1_csv")
    assert len(v1) == 4 * 10 * 5 and v1.fooling_ratio_percent.between(0, 100).all()
    row = v1[(v1.net == "nin") & (v1.method == "FastGrad") & (v1.eps == 0.03)]
    assert float(row.fooling_ratio_percent.iloc[0]) == 69.3
    v2 = paper_table("001-convex-programming", "fig2_v2_figure")
    assert (v2.low <= v2.fooling_ratio_percent).all() and (v2.fooling_ratio_percent <= v2.high).all()


def test_unknown_documents_and_tables_are_named():
    with pytest.raises(FileNotFoundError, match=r"known: .*001-convex-programming"):
        reproduction.paper_dir("999-nothing")
    with pytest.raises(FileNotFoundError, match="table1"):
        paper_table("001-convex-programming", "table9")
