"""Display helpers: table text and alignment, distributions, figures, year-on-year plots, the child timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cinqa import collect, read_return
from cinqa import display as show
from cinqa.errors import CinqaError
from cinqa.measures import AGE_BANDS
from test_compare import comp  # noqa: F401  (a fixture)

FIXTURES = Path(__file__).parent / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ret():
    return read_return(FIXTURES / "cin-2023-24.xml")


def failure(rule, severity, entity, child, episode, item, fields, line, message="msg"):
    return {"rule": rule, "severity": severity, "message": message, "entity": entity, "child": child,
            "LAchildID": "C001", "episode": episode, "item": item, "fields": fields, "values": {}, "line": line}


def frame(*rows):
    df = pd.DataFrame(list(rows))
    for c in ("child", "episode", "item", "line"):
        df[c] = df[c].astype("Int64")
    return df


def test_format_frame_spells_numbers_dates_and_missing_for_people():
    df = pd.DataFrame({"n": [1234567, 2], "x": [12.345, np.nan], "d": pd.to_datetime(["2024-03-31", None]),
                       "b": pd.array([True, None], dtype="boolean"), "s": ["a", None]})
    text = show.format_frame(df)
    assert text.iloc[0].tolist() == ["1,234,567", "12.3", "31/03/2024", "yes", "a"]
    assert text.iloc[1].tolist() == ["2", "", "", "", ""]


def test_table_aligns_numbers_right_text_left_and_escapes_markup():
    html = show.table(pd.DataFrame({"who": ["<script>alert(1)</script>"], "n": [3]})).data
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<td class="num">3</td>' in html
    assert 'class="txt" style="text-align:left">&lt;script' in html


def test_table_caps_rows_and_says_so():
    html = show.table(pd.DataFrame({"n": range(10)}), max_rows=4).data
    assert html.count("<tr>") == 5  # header + 4
    assert "Showing the first 4 of 10 rows." in html


def test_table_shows_a_named_index_as_the_first_column_and_names_crosstab_axes(ret):
    html = show.table(collect.cpp_at_31_march(ret)).data
    assert "initial category \\ latest category" in html
    assert html.index("<td class=\"txt\" style=\"text-align:left\">NEG</td>") < html.index("Total</td>")


def test_empty_table_says_none():
    assert "None." in show.table(pd.DataFrame(columns=["a"])).data


def test_indicators_show_each_value_in_its_unit(ret):
    html = show.indicators(collect.key_indicators(ret)).data
    assert "33.3%" in html and "31.5 working days" in html and ">3</td>" in html
    assert "n/a" not in html or "Plans reviewed" in html


def test_header_facts(ret):
    facts = show.header_facts(ret)["value"]
    assert facts["Local authority"] == "201"
    assert facts["Census period"] == "01/04/2023 to 31/03/2024"
    assert facts["File"] == "cin-2023-24.xml"


def test_distributions_band_ages_at_31_march_and_count_the_unborn(ret):
    d = show.distributions(ret)
    ages = d["age at 31 March"]
    assert ages["Unborn"] == 1 and ages["5 to 9"] == 1 and ages["10 to 15"] == 1
    assert list(ages.index[:len(AGE_BANDS)]) == list(AGE_BANDS), "the bands and their DfE spelling are measures'"
    assert "gender" in d and d["gender"]["1 Male"] == 1
    assert d["CPP initial category (all plans)"]["PHY Physical abuse"] == 1


def test_distributions_use_sex_from_2024_25():
    d = show.distributions(read_return(FIXTURES / "cin-2024-25.xml"))
    assert "sex" in d and "gender" not in d
    assert all(label[0] in "MFU(" for label in d["sex"].index)


def test_plots_are_figures_that_render_to_png(ret):
    grid = show.plot_distributions(ret)
    assert isinstance(grid, Figure)
    assert sum(ax.get_visible() for ax in grid.axes) == len(show.distributions(ret))
    assert show.png_bytes(grid).startswith(PNG_MAGIC)
    assert show.png_bytes(show.plot_assessment_durations(ret)).startswith(PNG_MAGIC)
    one = show.plot_distribution(ret, "ethnicity")
    assert one.axes[0].get_title(loc="left").startswith("ethnicity")
    with pytest.raises(KeyError, match="age at 31 March"):
        show.plot_distribution(ret, "shoe size")


def test_figures_display_as_png_in_ipython():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    show._register_png_formatter()
    data, meta = shell.display_formatter.format(show.plot_counts(pd.Series({"a": 1}), "counts of a"))
    assert data["image/png"].startswith(PNG_MAGIC)
    assert meta["image/png"]["alt"] == "Chart: counts of a"


def test_child_timeline_has_a_row_per_item_and_marks_failures_where_they_happened(ret):
    failures = frame(
        failure("8565", "error", "cp_plans", 1, 2, 1, "CPPstartDate,CINclosureDate", 72),
        failure("9999", "error", "cp_reviews", 1, 2, 1, "CPPreviewDate", 78),
        failure("8525Q", "query", "children", 1, None, None, "PersonBirthDate", 20, message="DOB or EDB"),
        failure("1103", "error", "assessments", 3, 1, 1, "AssessmentActualStartDate", 999),
        failure("8815", "error", "episodes", 1, 2, 2, "CINclosureDate", 49),  # no date to mark: the row's start
    )
    fig = show.child_timeline(ret, 1, failures)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Episode 1", "Assessment 1.1", "Episode 2", "Assessment 2.1", "CIN plan 2.1", "S47 2.1",
                      "CP plan 2.1"]
    marks = {t.get_text(): t.xy for t in ax.texts if t.get_text() in ("8565", "9999", "8815")}
    assert marks["8815"][1] == labels.index("Episode 2")
    assert pd.Timestamp(marks["8815"][0]) == pd.Timestamp("2023-09-11")
    y_plan = labels.index("CP plan 2.1")
    assert marks["8565"][1] == y_plan and marks["9999"][1] == y_plan
    assert pd.Timestamp(marks["8565"][0]) == pd.Timestamp("2023-11-15")   # the plan's start date
    assert pd.Timestamp(marks["9999"][0]) == pd.Timestamp("2024-02-07")   # the review's date
    # the birth date lies outside the plotted years, and the other child's failure is not drawn
    footer = " ".join(t.get_text() for t in fig.texts)
    assert "8815" not in footer
    assert "8525Q DOB or EDB" in footer and "1103" not in footer
    assert show.png_bytes(fig).startswith(PNG_MAGIC)


def test_child_timeline_draws_open_items_to_31_march_and_rejects_unknown_children(ret):
    fig = show.child_timeline(ret, 2, None, label="P123")
    ax = fig.axes[0]
    assert ax.get_title(loc="left").startswith("Child P123")
    bars = [p for p in ax.patches if p.get_height() == 0.5]
    assert len(bars) == 1  # the open no-further-action episode, drawn faded up to 31 March
    start, end = (mdates.num2date(x).date() for x in (bars[0].get_x(), bars[0].get_x() + bars[0].get_width()))
    assert (str(start), str(end)) == ("2024-01-15", "2024-03-31")
    assert bars[0].get_alpha() < 1
    with pytest.raises(KeyError, match="no child 99"):
        show.child_timeline(ret, 99)


def test_keys_and_line_numbers_have_no_thousands_separator():
    text = show.format_frame(pd.DataFrame({"line": [12345], "child": [1234], "rows": [12345]}))
    assert text.iloc[0].tolist() == ["12345", "1234", "12,345"]


def test_plot_draws_one_line_per_category_and_rings_flags(comp):
    fig = show.plot_comparison(comp, "referrals")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "Referrals in the year"
    assert len(ax.lines) == 2                        # the series and one ring: 3 -> 4 referrals is +33%
    fig = show.plot_comparison(comp, "referrals", "referral_source")
    assert {t.get_text() for t in fig.axes[0].get_legend().get_texts()} == {"Schools", "Police"}
    with pytest.raises(CinqaError):
        show.plot_comparison(comp, "referrals", "factor")


def test_history_trend_draws_errors_and_queries_run_by_run():
    trend = pd.DataFrame({"run_time": pd.to_datetime(["2026-01-12T09:00Z", "2026-01-19T09:00Z", "2026-01-26T09:00Z"]),
                          "errors": [15, 9, 2], "queries": [4, 5, 1]})
    fig = show.plot_history_trend(trend)
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[0].get_lines()}
    assert lines == {"errors": [15, 9, 2], "queries": [4, 5, 1]}
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["12 Jan 09:00", "19 Jan 09:00", "26 Jan 09:00"]
    with pytest.raises(CinqaError, match="no run"):
        show.plot_history_trend(trend.iloc[:0])
