"""reprolib.book.tables: the book's one table presenter and its verdict tables."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from reprolib.book.reproduction import DOES_NOT, HOLDS, PARTLY, verdict_row
from reprolib.book.tables import MISSING, VERDICT_MIME, format_value, present, tally, tally_text, verdict_table


def _cells(html: str) -> list[str]:
    return re.findall(r"<t[dh](?:\s[^>]*)?>(.*?)</t[dh]>", html, re.S)


def test_three_significant_figures_in_positional_or_power_form():
    assert format_value(0.194318) == "0.194"
    assert format_value(12.3456) == "12.3"
    assert format_value(41723.0) == "41700"
    assert format_value(0.001234) == "0.00123"
    assert format_value(5.329071e-14) == "5.33×10⁻¹⁴"
    assert format_value(-2.5e7) == "−2.50×10⁷"
    assert format_value(9.996) == "10.0"  # rounding carries into the next decade
    assert format_value(0.0) == "0" and format_value(-0.5) == "−0.500"
    assert format_value(0.194318, sig=2) == "0.19"
    with pytest.raises(ValueError, match="sig"):
        format_value(1.0, sig=0)


def test_integers_text_booleans_infinities_and_missing_values():
    assert format_value(1024) == "1024" and format_value(np.int64(7)) == "7"
    assert format_value("a long sentence, kept whole") == "a long sentence, kept whole"
    assert format_value(True) == "yes" and format_value(np.bool_(False)) == "no"
    assert format_value(math.inf) == "∞" and format_value(-math.inf) == "−∞"
    for missing in (None, math.nan, np.nan, pd.NA, np.float32("nan")):
        assert format_value(missing) == MISSING == "—"


def test_present_keeps_every_cell_whole_and_has_no_index_name_row():
    long = "x" * 300 + " end"
    frame = pd.DataFrame({"net": ["FCNN", "LeNet-5"], "note": [long, None], "rho": [0.0361234, math.nan]})
    table = present(frame.set_index("net"))
    html = table._repr_html_()
    cells = _cells(html)
    assert long in cells and "…" not in html and "..." not in html
    assert "0.0361" in cells and cells.count(MISSING) == 2 and "NaN" not in html and "None" not in html
    assert html.count("<tr>") == 3  # the header and two rows: no index-name row
    assert cells[:3] == ["net", "note", "rho"] and '<th scope="row">FCNN</th>' in html
    assert long in repr(table)  # the text form is whole too


def test_a_default_index_is_not_shown_and_formats_override_per_column():
    table = present([{"a": 0.5, "b": 2}, {"a": 0.25, "b": None}], formats={"a": "{:.0%}"})
    cells = _cells(table._repr_html_())
    assert cells == ["a", "b", "50%", "2", "25%", MISSING]
    with pytest.raises(ValueError, match="not in the table"):
        present(pd.DataFrame({"a": [1]}), formats={"z": "{}"})


def test_wide_tables_split_and_repeat_the_key_columns():
    frame = pd.DataFrame({f"c{i}": [i, i + 0.5] for i in range(7)}, index=pd.Index(["r1", "r2"], name="row"))
    table = present(frame, max_columns=3, name="tbl-wide", caption="seven columns")
    assert [list(piece.columns) for piece in table.frames] == [
        ["row", "c0", "c1", "c2"], ["row", "c3", "c4", "c5"], ["row", "c6"]]
    html = table._repr_html_()
    assert html.count("<table") == 3 and html.count('id="tbl-wide"') == 1 and html.count("<caption>") == 1
    with pytest.raises(ValueError, match="max_columns"):
        present(frame, max_columns=0)


def test_multiindex_columns_are_flattened():
    frame = pd.DataFrame([[1.0, 2.0]], columns=pd.MultiIndex.from_tuples([("clipped", "NIN"), ("raw", "NIN")]))
    assert _cells(present(frame)._repr_html_())[:2] == ["clipped · NIN", "raw · NIN"]


def test_verdict_table_reads_without_colour_links_its_evidence_and_is_machine_readable():
    rows = [verdict_row("a <claim>", "1 %", "1 %", "equal", 2, 2, evidence=("Fig. 2", "fig-two")),
            verdict_row("b", "1 %", "3 %", "within 1", 1, 2, "smaller net"),
            verdict_row("c", "1 %", "9 %", "within 1", 0, 1, "another architecture")]
    assert [r["verdict"] for r in rows] == [HOLDS, PARTLY, DOES_NOT]
    table = verdict_table(rows, chapter="x", document="001 · Someone")
    html = table._repr_html_()
    for text in ("✓ holds", "◐ partly", "✗ does not"):  # the word beside the symbol, no emoji
        assert text in html
    assert not re.search("[\u2705\u274c\U0001f7e1]", html)
    assert '<a href="#fig-two">Fig. 2</a>' in html and "a &lt;claim&gt;" in html
    assert html.count("<table") == 2  # the verdicts, then the numbers behind them
    bundle = table._repr_mimebundle_()
    record = bundle[VERDICT_MIME]
    assert record["tally"] == {"holds": 1, "partly": 1, "does not": 1} == tally(rows)
    assert tally_text(rows) == "3 claims checked: ✓ 1 holds, ◐ 1 partly, ✗ 1 does not"
    assert tally_text(rows[:1] * 2) == "2 claims checked: ✓ 2 hold, ◐ 0 partly, ✗ 0 do not"
    assert [r["verdict"] for r in record["rows"]] == ["holds", "partly", "does not"]
    assert record["rows"][0]["anchor"] == "fig-two" and record["chapter"] == "x"
    with pytest.raises(ValueError, match="at least one row"):
        verdict_table([], chapter="x", document="y")


def test_family_styles_give_one_hue_per_family_and_distinct_dashes():
    from reprolib.book.plotting import family_styles

    styles = family_styles({"Alg1": ["Alg1", "Alg1-5", "Alg1-10"], "FastGrad": ["FastGrad"], "random": ["random"]})
    hues = {m: tuple(s["color"]) for m, s in styles.items()}
    assert hues["Alg1"] == hues["Alg1-5"] == hues["Alg1-10"]
    assert len({hues["Alg1"], hues["FastGrad"], hues["random"]}) == 3
    assert len({str(styles[m]["linestyle"]) for m in ("Alg1", "Alg1-5", "Alg1-10")}) == 3
    with pytest.raises(ValueError, match="two families"):
        family_styles({"a": ["x"], "b": ["x"]})


def test_scoreboard_counts_each_parts_verdicts_from_the_executed_notebooks(tmp_path):
    import json

    import yaml

    from reprolib.book import runner

    rows = [verdict_row("a", "1", "1", "r", 1, 1), verdict_row("b", "1", "2", "r", 0, 2, "why")]
    table = verdict_table(rows, chapter="alpha", document="001 · A")
    cell = {"cell_type": "code", "metadata": {}, "source": "", "execution_count": 1,
            "outputs": [{"output_type": "display_data", "metadata": {}, "data": table._repr_mimebundle_()}]}
    (tmp_path / "alpha.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}}))
    (tmp_path / "beta.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    toc = tmp_path / "_toc.yml"
    toc.write_text(yaml.safe_dump({"root": "chapters/intro", "parts": [
        {"caption": "000 · Zero", "chapters": [{"file": "parts/000-zero"}, {"file": "notes/000-zero"}]},
        {"caption": "001 · A", "chapters": [{"file": "chapters/alpha"}]},
        {"caption": "Appendix", "chapters": [{"file": "chapters/beta"}, {"file": "chapters/gamma"}]}]}))
    assert runner.verdict_records(json.loads((tmp_path / "alpha.ipynb").read_text()))[0]["tally"] == tally(rows)
    board = runner.scoreboard_markdown(tmp_path, toc=toc)
    lines = board.splitlines()
    assert "| {doc}`001 · A <../chapters/alpha>` | 2 claims | ✓ 1 | ◐ 0 | ✗ 1 |" in lines
    assert any("000 · Zero" in line and "chapter not written yet" in line for line in lines)
    assert any("chapters/beta" in line and "no verdict table" in line for line in lines)
    assert any("chapters/gamma" in line and "not executed" in line for line in lines)
    assert "notes/000-zero" not in board
    assert "- ✗ does not: b (0/2 checks)" in lines
