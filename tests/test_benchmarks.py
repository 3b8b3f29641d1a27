"""England's figures file, the comparators reader, and the 'check recording' band on synthetic returns."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from cinqa import benchmarks, spec, synth
from cinqa.display import benchmark_table, plot_benchmark, plot_benchmarks
from cinqa.errors import CinqaError, CsvError
from cinqa.measures import MEASURES, measures

ROOT = Path(__file__).resolve().parents[1]
ENGLAND = ROOT / "data" / "benchmarks" / "england.csv"
YEAR, BEFORE = "2024-25", "2023-24"


def raw_rows() -> list[dict[str, str]]:
    """Read england.csv with the csv module alone, so the checks do not trust the reader under test."""
    with ENGLAND.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_england_row_has_a_source_or_a_reason() -> None:
    rows = raw_rows()
    assert rows
    for row in rows:
        if row["value"]:
            assert row["basis"] in ("published", "derived"), row
            assert row["release"] and row["table"], row
            float(row["value"])
        else:
            assert row["basis"] == "not found" and row["note"], row


def test_every_england_indicator_is_a_measure_with_a_row_for_each_year_it_is_measured() -> None:
    rows = raw_rows()
    for name in {r["indicator"] for r in rows}:
        assert name in MEASURES
        years = [r["census_year"] for r in rows if r["indicator"] == name]
        assert sorted(years) == sorted(y for y in spec.SUPPORTED_YEARS if y in MEASURES[name].years), name


def test_the_reader_returns_every_row_of_the_file() -> None:
    table = benchmarks.read_england()
    assert len(table) == len(raw_rows())
    assert table["value"].notna().sum() == sum(1 for r in raw_rows() if r["value"])
    assert benchmarks.locate_benchmarks() == ENGLAND.parent


def test_computing_benchmarks_loads_no_plotting_library() -> None:
    code = "import sys, cinqa.benchmarks; print('matplotlib' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- the comparators reader ------------------------------------------------------------------------

GOOD = ("comparator,census_year,indicator,value\n"
        "Northtown,2024-25,re_referral_share,21.5\n"
        "Southby,2024-25,re_referral_share,c\n"
        "Southby,2024-25,assessments_within_45_days_share,79%\n")


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "neighbours.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_comparators_are_read_with_missing_figures_kept_as_missing(tmp_path: Path) -> None:
    table = benchmarks.read_comparators(write(tmp_path, GOOD))
    assert table["comparator"].tolist() == ["Northtown", "Southby", "Southby"]
    assert table["value"].tolist()[0] == 21.5 and pd.isna(table["value"].tolist()[1])
    assert table["value"].tolist()[2] == 79.0
    assert table["line"].tolist() == [2, 3, 4]


@pytest.mark.parametrize("text, line, problem", [
    ("", None, "empty file"),
    ("comparator,year,indicator,value\n", 1, "missing column(s) census_year; unknown column(s) year"),
    ("comparator,census_year,indicator,value,extra\n", 1, "unknown column(s) extra"),
    ("comparator,census_year,indicator,value\n", None, "no rows after the header"),
    (GOOD + "Eastham,2024-25,re_referral_share\n", 5, "3 fields, expected 4"),
    (GOOD + ",2024-25,re_referral_share,20\n", 5, "comparator is empty"),
    (GOOD + "Eastham,2024/25,re_referral_share,20\n", 5, "census_year '2024/25' is not a census year"),
    (GOOD + "Eastham,2012-13,assessments_within_45_days_share,80\n", 5, "is not measured in 2012-13"),
    (GOOD + "Eastham,2024-25,re_referrals,20\n", 5, "indicator 're_referrals' is not one of"),
    (GOOD + "Eastham,2024-25,re_referral_share,twenty\n", 5, "value 'twenty' is not a number"),
    (GOOD + "Eastham,2024-25,re_referral_share,-1\n", 5, "must be a number of 0 or more"),
    (GOOD + "Eastham,2024-25,re_referral_share,nan\n", 5, "must be a number of 0 or more"),
    (GOOD + "Eastham,2024-25,re_referral_share,120\n", 5, "percentage above 100"),
    (GOOD + "Northtown,2024-25,re_referral_share,22\n", 5, "given twice (first on line 2)"),
    (GOOD + 'Eastham,2024-25,re_referral_share,"20\n', 5, "not valid CSV"),
])
def test_comparator_errors_name_file_line_and_problem(tmp_path: Path, text: str, line: int | None,
                                                      problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CsvError) as err:
        benchmarks.read_comparators(path)
    assert err.value.path == str(path)
    assert err.value.line == line
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{path}, line {line}: " if line else f"{path}: ")


def test_a_comparators_file_that_is_missing_or_not_text_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="file not found"):
        benchmarks.read_comparators(tmp_path / "nope.csv")
    with pytest.raises(CsvError, match="not UTF-8"):
        benchmarks.read_comparators(write(tmp_path, b"comparator,census_year,indicator,value\n\xff\xfe,1\n"))


def test_a_broken_england_file_is_refused_with_its_line(tmp_path: Path) -> None:
    lines = ENGLAND.read_text("utf-8").splitlines()
    bad = lines[1].split(",")
    assert bad[2], "the first row has a figure"
    bad[4] = ""  # a figure without its release
    path = tmp_path / "england.csv"
    path.write_text("\n".join([lines[0], ",".join(bad)]) + "\n", "utf-8")
    with pytest.raises(CsvError, match=r"line 2: a figure needs its release and table"):
        benchmarks.read_england(path)


# -- the LA beside England --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def series() -> list:
    """Two consecutive synthetic years of one LA (5,000 children a year).

    The generator's shares are taken from the same releases as England's figures (params.yaml:
    C1 no-further-action, C2 durations, C4 conference timing, D7 plan lengths), so the return
    matches England by construction, with two exceptions documented in data/benchmarks/README.md:
    re-referrals are measured with the year before (as the Department counts them; a lone return
    gives about 17.5% against England's 22.6%), and the population is chosen below so that the
    rate of children in need equals the median of England's recent rates.
    """
    return synth.generate_series([BEFORE, YEAR], children=5000, seed=1)


def matching_population(ret) -> float:
    """Return the child population at which ``ret``'s children in need per 10,000 equal England's recent median."""
    england = benchmarks.read_england()
    rates = england[england["indicator"] == "cin_31_march_rate"].dropna(subset=["value"])
    recent = rates[rates["census_year"].map(spec.end_year) > spec.end_year(YEAR) - benchmarks.ENGLAND_YEARS]
    count = measures(ret, names=["cin_31_march"])["value"].iloc[0]
    return count * 10_000 / recent["value"].median()


def test_a_return_matching_englands_shares_lands_inside_every_band(series) -> None:
    previous, ret = series
    table = benchmarks.benchmark([previous, ret], population={YEAR: matching_population(ret)})
    now = table[table["census_year"] == YEAR].set_index("indicator")
    assert set(now.index) == set(benchmarks.indicators())
    banded = now.dropna(subset=["band_low"])
    # Indicators with an England figure in the five years to 2024-25 get a band and must be inside it.
    assert {"re_referral_share", "referrals_nfa_share", "assessments_within_45_days_share",
            "icpc_within_15_days_share", "cpp_ended_2_years_share", "cin_31_march_rate"} <= set(banded.index)
    assert (banded["la_value"].between(banded["band_low"], banded["band_high"])).all()
    assert (now["flag"] == "").all(), now.loc[now["flag"] != "", ["la_value", "band_low", "band_high"]]
    assert now.loc["assessments_within_45_days_share", "difference"] == pytest.approx(
        now.loc["assessments_within_45_days_share", "la_value"] - 85.7)


def late_assessments(ret, share: float = 0.5):
    """Return a copy of ``ret`` in which every other assessment started 100 calendar days before its
    authorisation (more than 45 working days), i.e. about half the assessments late."""
    a = ret.assessments.copy()
    authorised = a["AssessmentAuthorisationDate"].notna()
    late = authorised & (pd.Series(range(len(a)), index=a.index) % round(1 / share) == 0)
    a.loc[late, "AssessmentActualStartDate"] = a.loc[late, "AssessmentAuthorisationDate"] - pd.Timedelta(days=100)
    return dataclasses.replace(ret, tables={**ret.tables, "assessments": a})


def test_half_the_assessments_late_is_flagged_on_exactly_that_indicator(series) -> None:
    previous, ret = series
    population = {YEAR: matching_population(ret)}
    distorted = late_assessments(ret)
    table = benchmarks.benchmark([previous, distorted], population=population)
    now = table[table["census_year"] == YEAR].set_index("indicator")
    assert now.index[now["flag"] == benchmarks.CHECK].tolist() == ["assessments_within_45_days_share"]
    row = now.loc["assessments_within_45_days_share"]
    assert row["la_value"] < 50 < row["band_low"]
    assert "England" in row["reason"]


def test_comparators_set_the_band_when_three_or_more_have_a_figure(series, tmp_path: Path) -> None:
    previous, ret = series
    path = write(tmp_path, "comparator,census_year,indicator,value\n" + "".join(
        f"N{i},{YEAR},assessments_within_45_days_share,{v}\n" for i, v in enumerate((50, 52, 54, "c"))))
    table = benchmarks.benchmark([previous, ret], comparators=path).set_index(["indicator", "census_year"])
    row = table.loc[("assessments_within_45_days_share", YEAR)]
    assert row["comparators_median"] == 52 and row["comparators_n"] == 3
    assert row["flag"] == benchmarks.CHECK and "comparators' median 52.0 (3 comparators)" in row["reason"]
    other = table.loc[("re_referral_share", YEAR)]
    assert other["comparators_n"] == 0 and other["reason"].startswith("England")


def test_rates_without_a_population_say_so_and_are_never_estimated(series) -> None:
    previous, ret = series
    table = benchmarks.benchmark([previous, ret])
    rates = table[table["indicator"].map(lambda n: MEASURES[n].per_population)]
    assert len(rates) and rates["la_value"].isna().all() and (rates["flag"] == "").all()
    assert rates["note"].str.contains("no population given").all()
    assert not table.loc[~table.index.isin(rates.index), "note"].str.contains("population").any()


def test_a_lone_return_says_re_referrals_are_under_counted(series) -> None:
    _, ret = series
    table = benchmarks.benchmark(ret)
    lone = table["note"].str.contains("measured without the return of the year before")
    assert table.loc[lone, "indicator"].tolist() == ["re_referral_share"]


def test_a_measures_table_is_accepted_but_not_with_a_population(series) -> None:
    _, ret = series
    tidy = measures(ret, 50_000)
    table = benchmarks.benchmark(tidy)
    assert table.loc[table["indicator"] == "cin_31_march_rate", "la_value"].notna().all()
    with pytest.raises(CinqaError, match="give the population to measures"):
        benchmarks.benchmark(tidy, population=50_000)
    with pytest.raises(CinqaError, match="not str"):
        benchmarks.benchmark("cin.xml")
    with pytest.raises(CinqaError, match="more than one return for 2024-25"):
        benchmarks.benchmark([ret, ret])


def test_the_chart_shows_englands_years_and_the_las(series) -> None:
    previous, ret = series
    table = benchmarks.benchmark([previous, late_assessments(ret)])
    fig = plot_benchmark(table, "assessments_within_45_days_share")
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["2016-17", "2017-18", BEFORE, YEAR]
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["England", "LA", "check recording"]
    with pytest.raises(CinqaError, match="no benchmark rows"):
        plot_benchmark(table, "referrals")


def test_a_small_chart_per_indicator_with_a_value_and_one_legend(series) -> None:
    previous, ret = series
    table = benchmarks.benchmark([previous, late_assessments(ret)])
    fig = plot_benchmarks(table)
    drawn = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    with_value = [MEASURES[n].description for n in benchmarks.indicators()
                  if table.loc[table["indicator"] == n, "la_value"].notna().any()]
    assert drawn == with_value and "Children in need at 31 March per 10,000 children" not in drawn
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["England", "band", "LA", benchmarks.CHECK]
    with pytest.raises(CinqaError, match="no indicator of the benchmark table has a value"):
        plot_benchmarks(table.assign(la_value=float("nan")))


def test_the_table_for_reading_says_why_a_figure_is_missing(series, tmp_path: Path) -> None:
    previous, ret = series
    shown = benchmarks.readable(benchmarks.benchmark([previous, late_assessments(ret)]))
    assert list(shown.columns) == ["indicator", "year", "LA", "England", "difference", "band", "flag", "note"]
    row = shown[(shown["indicator"] == MEASURES["assessments_within_45_days_share"].description)
                & (shown["year"] == YEAR)].iloc[0]
    assert row["flag"] == benchmarks.CHECK and row["England"] == 85.7 and row["band"].endswith(" to 100.0")
    rate = shown[shown["indicator"] == MEASURES["cin_31_march_rate"].description]
    assert rate["LA"].isna().all() and rate["note"].str.contains("no population given").all()
    html = benchmark_table(benchmarks.benchmark([previous, ret], comparators=write(tmp_path, GOOD))).data
    assert "comparators&#x27; median" in html and "not a judgement of practice" in html
