"""Display helpers for notebooks and the QA report: static tables, plots, a measure over the years, a child's timeline.

Everything here returns an object that renders the same in JupyterLab and in a static HTML
export: tables as plain HTML, plots as matplotlib figures shown as PNG. Figures are built with
``matplotlib.figure.Figure`` rather than pyplot, so no global figure state leaks between cells
and nothing is drawn twice.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from IPython.display import HTML, Image
import matplotlib
import matplotlib.dates as mdates
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cinqa import benchmarks, collect, spec
from cinqa.compare import FLAG_RULES, MIN_COUNT, Comparison, FlagRule, changes
from cinqa.errors import CinqaError, shorten
from cinqa.failures import (CLEAN, ERRORS, NOT_FULLY_CHECKED, QUERIES_ONLY, UNREADABLE, Verdict,
                            field_names)
from cinqa.measures import AGE_BANDS, ALL, MEASURES, NOT_RECORDED, age_band
from cinqa.returns import CensusReturn, issues_first

MAX_ROWS = 200
MAX_CELL = 200  # characters of a text a table cell shows, then the text's length
DATE_FORMAT = "%d/%m/%Y"
FAIL_COLOUR = "#c0392b"
BAR_COLOUR = "#2c6e9b"


def plain(text: Any) -> str:
    """Return ``text`` as a string matplotlib draws as it is, never as mathtext.

    A pair of ``$`` in a label that came from data (a code, an identifier, a category) would
    otherwise be parsed as mathtext, and fail to draw when it is not valid TeX. Every ``$`` is
    escaped: with no unescaped ``$`` left, matplotlib draws the text plainly and shows each ``\\$``
    as ``$``, so the label reads exactly as the data does.
    """
    return str(text).replace("$", r"\$")


# --- tables --------------------------------------------------------------------------------


def _format_value(v: Any) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, float) and np.isnan(v):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):,.0f}" if float(v).is_integer() and abs(v) >= 1000 else f"{float(v):,.1f}"
    if isinstance(v, pd.Timestamp):
        if v.hour or v.minute or v.second:
            return v.strftime(DATE_FORMAT + " %H:%M")
        return v.strftime(DATE_FORMAT)
    return shorten(str(v), MAX_CELL)


# Ordinals and XML line numbers are identifiers, not quantities: no thousands separators.
PLAIN_COLUMNS = frozenset({"line", "item"} | {k for keys in spec.TABLE_KEYS.values() for k in keys})


def _format_plain(v: Any) -> str:
    return str(int(v)) if isinstance(v, (int, np.integer)) else _format_value(v)


def format_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` as text: thousands separators, one decimal, UK dates, blanks for missing.

    Key columns (``child``, ``episode``, ..., ``line``) are written without separators.
    """
    columns = [[(_format_plain if df.columns[i] in PLAIN_COLUMNS else _format_value)(v)
                for v in df.iloc[:, i].astype("object")] for i in range(df.shape[1])]
    out = pd.DataFrame(dict(enumerate(columns)), index=df.index, columns=range(df.shape[1]))
    out.columns = df.columns
    return out


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


# Inline alignment, so tables read the same in JupyterLab (which right-aligns every cell) and in the report.
_NUM = ' class="num"'
_TXT = ' class="txt" style="text-align:left"'


def _html_table(df: pd.DataFrame, right: Sequence[str] = ()) -> str:
    """Write a plain HTML table; numeric columns (and ``right``) align right, text left."""
    numeric = [_is_numeric(df.iloc[:, i]) or df.columns[i] in right for i in range(df.shape[1])]
    text = format_frame(df)
    head = "".join(f"<th{_NUM if n else _TXT}>{html.escape(str(c))}</th>" for c, n in zip(df.columns, numeric))
    rows = []
    for values in text.itertuples(index=False):
        cells = "".join(f"<td{_NUM if n else _TXT}>{html.escape(v)}</td>" for v, n in zip(values, numeric))
        rows.append(f"<tr>{cells}</tr>")
    return (f'<table class="cinqa-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{chr(10).join(rows)}\n</tbody></table>')


def table(df: pd.DataFrame, caption: str | None = None, *, index: bool | None = None,
          max_rows: int | None = MAX_ROWS, note: str | None = None, right: Sequence[str] = ()) -> HTML:
    """Render a DataFrame as a static HTML table (works offline, in Jupyter and exported HTML).

    The index is shown when it carries meaning (a name, or a non-default index); at most
    ``max_rows`` rows are shown, with a line saying how many more there are.
    """
    if index is None:
        index = bool(df.index.name) or bool(df.columns.name) or not isinstance(df.index, pd.RangeIndex)
    parts = []
    if caption:
        parts.append(f'<p class="cinqa-caption"><b>{html.escape(caption)}</b></p>')
    if not len(df):
        parts.append('<p class="cinqa-empty"><i>None.</i></p>')
    else:
        shown = df if max_rows is None or len(df) <= max_rows else df.head(max_rows)
        if index:
            # One header row: the index becomes the first column, named after both axes of a crosstab.
            first = str(df.index.name or "")
            if df.columns.name:
                first = f"{first} \\ {df.columns.name}" if first else str(df.columns.name)
            shown = shown.copy()
            shown.columns = [str(c) for c in shown.columns]
            shown.insert(0, first, shown.index)
        body = _html_table(shown, right)
        parts.append(body)
        if len(shown) < len(df):
            parts.append(f'<p class="cinqa-note">Showing the first {len(shown):,} of {len(df):,} rows.</p>')
    if note:
        parts.append(f'<p class="cinqa-note">{html.escape(note)}</p>')
    return HTML("\n".join(parts))


def callout(text: str, level: str = "info", title: str | None = None) -> HTML:
    """Render a coloured box: level ``"ok"`` (green), ``"warn"`` (amber), ``"bad"`` (red) or ``"info"``."""
    colours = {"ok": ("#e8f5e9", "#2e7d32"), "warn": ("#fff8e1", "#b26a00"),
               "bad": ("#fdecea", "#b71c1c"), "info": ("#eef4fa", "#2c6e9b")}
    fill, edge = colours.get(level, colours["info"])
    head = f"<b style='font-size:1.15em'>{html.escape(title)}</b><br>" if title else ""
    return HTML(f'<div class="cinqa-callout" style="background:{fill};border-left:6px solid {edge};'
                f'padding:10px 14px;margin:6px 0">{head}{text}</div>')


# The colour of each verdict's banner.
_VERDICT_LEVELS = {CLEAN: "ok", QUERIES_ONLY: "warn", ERRORS: "bad", NOT_FULLY_CHECKED: "bad", UNREADABLE: "bad"}


def verdict_banner(verdict: Verdict, *, notes: Sequence[str] = ()) -> HTML:
    """Render a verdict as a coloured box: its headline, then the sentences it rests on and any ``notes`` (HTML)."""
    lines = [html.escape(line) for line in verdict.details] + list(notes)
    return callout("<br>".join(lines), _VERDICT_LEVELS[verdict.status], str(verdict))


def structural_issues(issues: pd.DataFrame) -> HTML:
    """Render a return's structural issues, errors first with their XML lines, or say that the structure is sound."""
    if not len(issues):
        return callout("The file's structure is sound: every element is known, in place and readable.", "ok")
    return table(issues_first(issues), max_rows=None,
                 note="Line numbers refer to the XML file. A structural error means part of the file may not have "
                      "been read or checked.")


def _indicator(value: float, unit: str) -> str:
    if pd.isna(value):
        return "n/a"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "count":
        return f"{int(value):,}"
    return f"{value:,.1f} {unit}"


def indicators(df: pd.DataFrame, note: str | None = None) -> HTML:
    """Render key indicators (:func:`cinqa.collect.key_indicators`) with each value in its unit."""
    shown = df.assign(value=[_indicator(v, u) for v, u in zip(df["value"], df["unit"])]).drop(columns="unit")
    return table(shown, right=["value"], note=note)


def header_facts(ret: CensusReturn) -> pd.DataFrame:
    """List the return's header facts and its census period as a two-column table."""
    h = ret.header
    facts = {
        "Census year": ret.year,
        "Census period": f"{ret.census_start:%d/%m/%Y} to {ret.reference_date:%d/%m/%Y}",
        "Local authority": h.la,
        "Collection": h.collection,
        "Reference date": h.reference_date,
        "Source level": h.source_level,
        "Software": h.software,
        "Release": h.release,
        "Serial number": h.serial,
        "Written": h.datetime,
        "File": ret.path.name if ret.path else None,
    }
    return pd.DataFrame({"value": pd.Series(facts, dtype="object")}).rename_axis("fact")


# --- figures -------------------------------------------------------------------------------


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    # Every figure here is laid out already (tight_layout), so no second "tight" drawing pass.
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def figure_image(fig: Figure) -> Image:
    """Return a figure as an IPython PNG image, for places that need display data (widgets)."""
    return Image(data=png_bytes(fig), format="png", alt=describe_figure(fig))


def describe_figure(fig: Figure) -> str:
    """Return a figure's alternative text: its axes' titles, or a plain word when it has none."""
    titles = [ax.get_title(loc=loc) for ax in fig.axes if ax.get_visible() for loc in ("left", "center")]
    titles = [t for t in titles if t]
    return "Chart: " + "; ".join(titles) if titles else "Chart"


def _png_with_alt(fig: Figure) -> tuple[bytes, dict[str, str]]:
    return png_bytes(fig), {"alt": describe_figure(fig)}


def _register_png_formatter() -> None:
    """Let IPython show a bare ``Figure`` as PNG; the inline backend only handles pyplot figures."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, _png_with_alt)


_register_png_formatter()


def _labelled_counts(values: pd.Series, codeset: str, year: str) -> pd.Series:
    labels = spec.code_labels(codeset)
    valid = list(spec.codes(codeset, year))
    raw = values.astype("object").fillna("(missing)").value_counts()
    order = valid + [c for c in raw.index if c not in valid]
    counts = raw.reindex(order, fill_value=0)
    counts.index = [f"{c} {labels[c]}" if c in labels else f"{c} (invalid)" if c != "(missing)" else c
                    for c in order]
    return counts.astype("int64")


def distributions(ret: CensusReturn) -> dict[str, pd.Series]:
    """Count the distributions an analyst checks first, each as a labelled Series."""
    c, e = ret.children, ret.episodes
    bands = age_band(c["PersonBirthDate"], c["ExpectedPersonBirthDate"],
                     pd.Series(ret.reference_date, index=c.index))
    age_counts = bands.value_counts().reindex([*AGE_BANDS, NOT_RECORDED], fill_value=0).astype("int64")
    sex_col, sex_set = ("Sex", "sex") if "Sex" in c.columns else ("GenderCurrent", "gender")
    out = {
        "age at 31 March": age_counts[age_counts.gt(0) | (age_counts.index != NOT_RECORDED)],
        "sex" if sex_col == "Sex" else "gender": _labelled_counts(c[sex_col], sex_set, ret.year),
        "ethnicity": _labelled_counts(c["Ethnicity"], "ethnicity", ret.year),
    }
    refs = collect.referrals_in_year(ret)
    if "ReferralSource" in refs.columns:
        out["referral source (referrals in year)"] = _labelled_counts(refs["ReferralSource"],
                                                                      "referral_source", ret.year)
    out["primary need (all episodes)"] = _labelled_counts(e["PrimaryNeedCode"], "primary_need", ret.year)
    days = collect.assessment_working_days(ret)["working_days"]
    bands = collect.assessment_summary(ret)
    first = bands.columns[0]
    out["assessment duration, working days"] = bands[first].iloc[: len(collect.ASSESSMENT_BANDS)]
    if days.isna().all():
        out.pop("assessment duration, working days")
    p = ret.cp_plans
    out["CPP initial category (all plans)"] = _labelled_counts(p["InitialCategoryOfAbuse"],
                                                               "category_of_abuse", ret.year)
    return out


def _bar(ax: Any, counts: pd.Series, title: str, *, horizontal: bool = True) -> None:
    counts = counts.astype(float)
    if horizontal:
        ax.barh(range(len(counts)), counts.to_numpy(), color=BAR_COLOUR)
        ax.set_yticks(range(len(counts)), [plain(i) for i in counts.index], fontsize=8)
        ax.invert_yaxis()
        for y, v in enumerate(counts.to_numpy()):
            if v:
                ax.text(v, y, f" {v:,.0f}", va="center", fontsize=7)
        ax.set_xlim(0, max(counts.max() * 1.18, 1))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.bar(range(len(counts)), counts.to_numpy(), color=BAR_COLOUR)
        ax.set_xticks(range(len(counts)), [plain(i) for i in counts.index], fontsize=8, rotation=0)
    ax.set_title(plain(title), fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)


def plot_counts(counts: pd.Series, title: str, *, horizontal: bool = True) -> Figure:
    """Draw one labelled bar chart of counts."""
    height = max(2.0, 0.28 * len(counts) + 0.8) if horizontal else 3.2
    fig = Figure(figsize=(8, height))
    _bar(fig.subplots(), counts, title, horizontal=horizontal)
    fig.tight_layout()
    return fig


def plot_distribution(ret: CensusReturn, name: str) -> Figure:
    """Draw one of :func:`distributions` (``"age at 31 March"``, ``"ethnicity"``, ...)."""
    found = distributions(ret)
    if name not in found:
        raise KeyError(f"no distribution {name!r} for {ret.year}; choose from {', '.join(found)}")
    counts = found[name]
    return plot_counts(counts, f"{name} ({ret.year})", horizontal=len(counts) > 9 or name.startswith(("eth", "ref")))


def plot_distributions(ret: CensusReturn) -> Figure:
    """Draw every distribution of :func:`distributions` as small multiples in one figure."""
    found = distributions(ret)
    names = list(found)
    ncols = 2
    nrows = -(-len(names) // ncols)
    rows_needed = [max(len(found[names[i]]) for i in range(r * ncols, min((r + 1) * ncols, len(names))))
                   for r in range(nrows)]
    heights = [max(2.2, 0.2 * n + 0.9) for n in rows_needed]
    fig = Figure(figsize=(12, sum(heights)))
    axes = fig.subplots(nrows, ncols, gridspec_kw={"height_ratios": heights}, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(names):
            _bar(ax, found[names[i]], names[i])
        else:
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_assessment_durations(ret: CensusReturn) -> Figure:
    """Draw completed assessments by working days taken, with the timescale marked."""
    listed = collect.assessment_working_days(ret)
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    for kind, colour in (("continuous", BAR_COLOUR), ("initial", "#7f8c8d"), ("core", "#16a085")):
        days = listed.loc[(listed["kind"] == kind) & listed["working_days"].notna(), "working_days"]
        days = days.astype("int64")
        if len(days):
            top = max(int(days.max()), collect.ASSESSMENT_TIMESCALE[kind] + 5)
            ax.hist(days.clip(lower=0), bins=range(0, top + 2), color=colour, alpha=0.8,
                    label=f"{kind} ({len(days):,})")
            ax.axvline(collect.ASSESSMENT_TIMESCALE[kind] + 0.5, color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel("working days from start to authorisation (dashed: timescale)")
    ax.set_ylabel("assessments")
    ax.set_title(f"Assessments completed in {ret.year}", fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    if len(listed):
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# --- year on year --------------------------------------------------------------------------


def plot_comparison(comp: Comparison, measure: str, breakdown: str = ALL,
                    categories: Sequence[str] | None = None) -> Figure:
    """Draw a measure's series over the compared census years; flagged changes are ringed in red."""
    return plot_measure(comp.measures, measure, breakdown, categories, threshold=comp.threshold,
                        min_count=comp.min_count, rules=comp.rules)


def plot_measure(tidy: pd.DataFrame, measure: str, breakdown: str = ALL, categories: Sequence[str] | None = None,
                 threshold: float | None = None, min_count: float = MIN_COUNT,
                 rules: Mapping[str, FlagRule] = FLAG_RULES) -> Figure:
    """Draw one measure's values by census year, one line per category of ``breakdown``; ring the
    values whose change is flagged (see :func:`cinqa.compare.changes`) when ``threshold`` is given."""
    rows = tidy[(tidy["measure"] == measure) & (tidy["breakdown"] == breakdown)]
    if rows.empty:
        raise CinqaError(f"no figures for measure {measure!r} with breakdown {breakdown!r}")
    years = sorted(tidy["census_year"].unique())
    wide = rows.pivot(index="census_year", columns="category", values="value").reindex(years)
    wide = wide[list(dict.fromkeys(rows["category"]))]
    if categories is not None:
        wide = wide[[c for c in categories if c in wide]]
    elif breakdown != ALL:
        wide = wide.loc[:, wide.fillna(0).abs().sum() > 0]
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(years))
    palette = "tab10" if wide.shape[1] <= 10 else "tab20"
    cmap = matplotlib.colormaps[palette]
    for i, cat in enumerate(wide):
        ax.plot(x, wide[cat].to_numpy(dtype=float), marker="o", label=plain(cat), color=cmap(i % cmap.N))
    if threshold is not None:
        ch = changes(rows, threshold, years, min_count, rules)
        for r in ch[ch["flag"]].itertuples():
            if r.category in wide:
                ax.plot([years.index(r.later_year)], [r.later], "o", ms=13, mfc="none", mec="red", mew=1.5)
    m = MEASURES.get(measure)
    ax.set_title(plain(m.description if m else measure), fontsize=10)
    ax.set_xticks(x, [plain(y) for y in years])
    ax.set_xlim(-0.25, len(years) - 0.75)
    ax.set_ylabel(rows["unit"].iloc[0])
    top = np.nanmax(wide.to_numpy(dtype=float)) if wide.notna().any().any() else 1.0
    ax.set_ylim(0, max(top, 1.0) * 1.1)
    ax.grid(axis="y", alpha=0.3)
    if breakdown != ALL:
        ax.legend(title=plain(breakdown), fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    return fig


# --- run history -----------------------------------------------------------------------------


def plot_history_trend(trend: pd.DataFrame, title: str | None = None) -> Figure:
    """Draw the errors and queries of each run of a return (``cinqa.history.trend``), one point per run."""
    if trend.empty:
        raise CinqaError("the run history has no run of this return to draw")
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(trend))
    for column, colour in (("errors", FAIL_COLOUR), ("queries", "#b26a00")):
        values = trend[column].to_numpy(dtype=float)
        ax.plot(x, values, marker="o", color=colour, label=column)
        for xi, v in zip(x, values):
            ax.annotate(f"{int(v):,}", (xi, v), textcoords="offset points", xytext=(0, 6), ha="center",
                        fontsize=8, color=colour)
    labels = [plain(f"{t:%d %b %H:%M}") for t in pd.to_datetime(trend["run_time"])]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.5, len(trend) - 0.5)
    top = float(trend[["errors", "queries"]].to_numpy().max()) if len(trend) else 1.0
    ax.set_ylim(0, max(top, 1.0) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("failing rows")
    ax.set_xlabel("run (UTC)")
    ax.set_title(plain(title or f"Errors and queries over {len(trend):,} runs"), fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig


# --- national context ------------------------------------------------------------------------


def benchmark_table(frame: pd.DataFrame) -> HTML:
    """Render a :func:`cinqa.benchmarks.benchmark` table for reading, with how its bands are set."""
    return table(benchmarks.readable(frame), note=benchmarks.describe_bands())


def _draw_benchmark(ax: Any, rows: pd.DataFrame, england: pd.DataFrame, indicator: str, *, small: bool) -> None:
    """Draw one indicator on ``ax``: England's line over every year it has a figure, the LA's points
    with their bands as grey bars, flagged points ringed in red."""
    e = england[england["indicator"] == indicator].dropna(subset=["value"])
    years = [y for y in spec.YEARS if y in set(rows["census_year"]) | set(e["census_year"])]
    x = {y: i for i, y in enumerate(years)}
    ax.plot([x[y] for y in e["census_year"]], e["value"], marker="s", color="0.35", label="England")
    banded = rows.dropna(subset=["band_low", "band_high"])
    ax.vlines([x[y] for y in banded["census_year"]], banded["band_low"], banded["band_high"], color="0.8",
              linewidth=8, label="band")
    ax.plot([x[y] for y in rows["census_year"]], rows["la_value"], marker="o", color="tab:blue", label="LA")
    flagged = rows[rows["flag"] != ""]
    ax.plot([x[y] for y in flagged["census_year"]], flagged["la_value"], "o", ms=13, mfc="none", mec="red",
            mew=1.5, label=benchmarks.CHECK)
    ax.set_title(MEASURES[indicator].description, fontsize=8 if small else 10, wrap=True)
    ax.set_xticks(range(len(years)), years, rotation=45, ha="right", fontsize=7 if small else 8)
    ax.set_ylabel(MEASURES[indicator].unit, fontsize=8 if small else 10)
    top = np.nanmax([*rows["la_value"], *rows["band_high"].replace(np.inf, np.nan), *e["value"], 1.0])
    ax.set_ylim(0, top * 1.1)
    ax.grid(axis="y", alpha=0.3)


def _benchmark_rows(table: pd.DataFrame, indicator: str) -> pd.DataFrame:
    rows = table[table["indicator"] == indicator].sort_values("census_year")
    if rows.empty:
        raise CinqaError(f"no benchmark rows for indicator {indicator!r}")
    return rows


def plot_benchmark(table: pd.DataFrame, indicator: str, england: pd.DataFrame | None = None) -> Figure:
    """Draw ``indicator`` of a :func:`cinqa.benchmarks.benchmark` table: the LA's years, England's, the band."""
    rows = _benchmark_rows(table, indicator)
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.add_subplot()
    _draw_benchmark(ax, rows, benchmarks.read_england() if england is None else england, indicator, small=False)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_benchmarks(table: pd.DataFrame, england: pd.DataFrame | None = None, columns: int = 3) -> Figure:
    """Draw a small chart per indicator of a :func:`cinqa.benchmarks.benchmark` table, one legend for all.

    Indicators the LA has no value for in any year (a rate without a population) are left out.
    """
    england = benchmarks.read_england() if england is None else england
    valued = table.dropna(subset=["la_value"])["indicator"]
    names = [n for n in dict.fromkeys(table["indicator"]) if n in set(valued)]
    if not names:
        raise CinqaError("no indicator of the benchmark table has a value for the LA")
    rows_n = -(-len(names) // columns)
    fig = Figure(figsize=(3.6 * columns, 2.9 * rows_n + 0.4), layout="constrained")
    axes = fig.subplots(rows_n, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        _draw_benchmark(ax, _benchmark_rows(table, name), england, name, small=True)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    return fig


# --- a child's timeline --------------------------------------------------------------------

_SPANS: tuple[tuple[str, str, str, str, str], ...] = (
    # table, label, start column, end column, colour
    ("episodes", "Episode", "CINreferralDate", "CINclosureDate", "#95a5a6"),
    ("assessments", "Assessment", "AssessmentActualStartDate", "AssessmentAuthorisationDate", "#2c6e9b"),
    ("cin_plans", "CIN plan", "CINPlanStartDate", "CINPlanEndDate", "#16a085"),
    ("section47", "S47", "S47ActualStartDate", "DateOfInitialCPC", "#8e44ad"),
    ("cp_plans", "CP plan", "CPPstartDate", "CPPendDate", "#d35400"),
)


def _child_rows(ret: CensusReturn, child: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for table, label, start, end, colour in _SPANS:
        df = ret.tables.get(table)
        if df is None or start not in df.columns:
            continue
        own = spec.TABLE_KEYS[table][-1]
        for r in df[df["child"] == child].itertuples(index=False):
            d = r._asdict()
            name = f"{label} {d['episode']}" if table == "episodes" else f"{label} {d['episode']}.{d[own]}"
            if table == "assessments" and d.get("kind") not in (None, "continuous"):
                name += f" ({d['kind']})"
            rows.append({"table": table, "name": name, "start": d[start], "end": d.get(end, pd.NaT),
                         "colour": colour, "episode": d["episode"], "item": d[own], "line": d.get("line"),
                         "data": d})
    rows.sort(key=lambda r: (r["episode"], [s[0] for s in _SPANS].index(r["table"]), r["item"]))
    return rows


def _failure_date(fields: Sequence[str], data: dict[str, Any]) -> pd.Timestamp | None:
    for field in fields:
        v = data.get(field)
        if isinstance(v, pd.Timestamp) and not pd.isna(v):
            return v
    return None


def child_timeline(ret: CensusReturn, child: int, failures: pd.DataFrame | None = None,
                   *, label: str | None = None) -> Figure:
    """Draw one child's episodes, assessments, S47s, plans and reviews, with failures marked.

    Bars run from start to end; an open item runs to 31 March with a faded tail. The census
    period is shaded. A failure is marked with a red cross on the row it belongs to, at the first
    date among the fields the rule read; failures without such a place are listed below the plot.
    """
    kids = ret.children[ret.children["child"] == child]
    if kids.empty:
        raise KeyError(f"no child {child} in this return")
    kid = kids.iloc[0]
    rows = _child_rows(ret, child)
    reviews = ret.cp_reviews[ret.cp_reviews["child"] == child]
    ref, start = ret.reference_date, ret.census_start
    dates = [d for r in rows for d in (r["start"], r["end"]) if isinstance(d, pd.Timestamp) and not pd.isna(d)]
    dates += [d for d in reviews["CPPreviewDate"].dropna()] + [start, ref]
    lo, hi = min(dates) - pd.Timedelta(days=20), max(dates) + pd.Timedelta(days=20)

    fig = Figure(figsize=(11, max(2.6, 0.42 * (len(rows) + 1) + 1.6)))
    ax = fig.subplots()
    ax.axvspan(start, ref, color="#f3f6f9", zorder=0)
    ax.axvline(ref, color="#7f8c8d", linewidth=0.8, linestyle=":")
    ax.text(ref, -0.9, " 31 March", fontsize=7, color="#7f8c8d", va="bottom")
    ys: dict[tuple[Any, ...], int] = {}
    by_line: dict[int, tuple[int, dict[str, Any]]] = {}
    for y, r in enumerate(rows):
        ys[(r["table"], r["episode"], r["item"])] = y
        if r["line"] is not None and not pd.isna(r["line"]):
            by_line[int(r["line"])] = (y, r["data"])
        s = r["start"] if isinstance(r["start"], pd.Timestamp) and not pd.isna(r["start"]) else None
        e = r["end"] if isinstance(r["end"], pd.Timestamp) and not pd.isna(r["end"]) else None
        if s is None:
            continue
        if e is not None:
            ax.barh(y, max((e - s).days, 1), left=s, height=0.5, color=r["colour"])
        else:
            ax.barh(y, max((max(ref, s) - s).days, 1), left=s, height=0.5, color=r["colour"], alpha=0.35,
                    hatch="//", edgecolor=r["colour"])
        if r["table"] == "cp_plans":
            rv = reviews[(reviews["episode"] == r["episode"]) & (reviews["cpp"] == r["item"])]
            ax.plot(rv["CPPreviewDate"], [y] * len(rv), "D", color="black", markersize=4,
                    label="CPP review" if "CPP review" not in ax.get_legend_handles_labels()[1] else None)
            for review in rv.itertuples(index=False):
                if not pd.isna(review.line):
                    by_line[int(review.line)] = (y, review._asdict())
    unplaced: list[str] = []
    if failures is not None and len(failures):
        mine = failures[failures["child"] == child]
        for _, f in mine.iterrows():
            y, data = None, None
            if not pd.isna(f.get("line")) and int(f["line"]) in by_line:
                y, data = by_line[int(f["line"])]
            elif not pd.isna(f.get("episode")) and not pd.isna(f.get("item")):
                y = ys.get((f["entity"], int(f["episode"]), int(f["item"])))
                data = rows[y]["data"] if y is not None else None
            when = _failure_date(field_names(f["fields"]), data) if data else None
            if data and when is None:
                # None of the fields the rule read holds a date (a missing closure date, say): mark the row's start.
                when = _failure_date([k for k in data if "Date" in k], data)
            if data is None:
                # A child-level failure goes on the strip above the rows, at its date if it has one.
                when = _failure_date(field_names(f["fields"]), kid.to_dict())
                y = -0.9 if when is not None and lo <= when <= hi else None
            if y is None or when is None:
                unplaced.append(f"{f['rule']} {f['message']}")
                continue
            ax.plot([when], [y], "X", color=FAIL_COLOUR, markersize=11, markeredgecolor="white", zorder=5)
            ax.annotate(plain(f["rule"]), (when, y), xytext=(6, 6), textcoords="offset points", zorder=6,
                        fontsize=8, color=FAIL_COLOUR, weight="bold",
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_yticks(range(len(rows)), [plain(r["name"]) for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -1.2)
    ax.set_xlim(lo, hi)
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    who = label or str(kid["LAchildID"])
    born = kid.get("PersonBirthDate")
    born_text = f", born {born:%m/%Y}" if isinstance(born, pd.Timestamp) and not pd.isna(born) else ""
    ax.set_title(plain(f"Child {who}{born_text}: census year {ret.year} shaded"), fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if unplaced:
        text = "Also failing: " + "; ".join(sorted(set(unplaced)))
        fig.text(0.01, 0.005, plain(text[:300]), fontsize=8, color=FAIL_COLOUR, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06 if unplaced else 0, 1, 1))
    return fig
