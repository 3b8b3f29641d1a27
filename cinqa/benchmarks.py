"""England's published figures for the key indicators, an LA's comparators, and the LA beside both.

``england()`` reads ``data/benchmarks/england.csv`` (shipped in the wheel as
``cinqa/_benchmarks``): England's figure for each key indicator and census year, with the
release and table it comes from, or no figure and the reason. The key indicators are the
measures that file names (``indicators()``); their definitions live in :mod:`cinqa.measures`.

``read_comparators(path)`` reads an LA's own CSV of other authorities' figures (its statistical
neighbours, say): columns ``comparator, census_year, indicator, value``.

``benchmark(returns)`` measures the key indicators of the LA's returns and lays each beside
England's figure for the same year, the comparators' median, and a band. A value outside its band
is flagged "check recording": a figure far from everyone else's is often a recording problem
that no validation rule catches. It is not a judgement of practice.

The band (``band_for``): where at least ``MIN_COMPARATORS`` comparators have a figure for the
indicator and year, their median; otherwise the range of England's figures over the
``ENGLAND_YEARS`` census years up to and including the year. Either is widened on both sides by
``TOLERANCE`` times its middle value, and by at least ``FLOOR`` in the measure's unit (so that a
small share such as plans lasting two years, about 4%, is not flagged on chance alone).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.errors import CinqaError, CsvError
from cinqa.files import csv_text, locate_shipped
from cinqa.measures import ALL, MEASURE_COLUMNS, MEASURES, PERCENT, measures
from cinqa.returns import CensusReturn

ENGLAND_CSV = "england.csv"
ENGLAND_COLUMNS = ("indicator", "census_year", "value", "basis", "release", "table", "note")
COMPARATOR_COLUMNS = ("comparator", "census_year", "indicator", "value")
BASES = ("published", "derived", "not found")
# Symbols the Department prints instead of a figure (suppressed, not applicable, not available,
# low reliability); an LA pasting a published table keeps them, and they mean "no figure".
NO_FIGURE = frozenset({"", "c", "z", "x", ":", "u", "low"})

CHECK = "check recording"
ENGLAND_YEARS = 5
TOLERANCE = 0.25
FLOOR = {PERCENT: 3.0}
MIN_COMPARATORS = 3
# The one indicator a lone return under-counts: re-referrals need the referrals of the year before.
LONE_RETURN_INDICATOR = "re_referral_share"

BENCHMARK_COLUMNS = ("indicator", "description", "unit", "census_year", "la_value", "england_value",
                     "difference", "comparators_median", "comparators_n", "band_low", "band_high", "flag",
                     "reason", "england_source", "note")


def locate_benchmarks(package_dir: str | Path | None = None) -> Path:
    """Return the folder holding ``england.csv``: the checkout's, or the packaged copy."""
    return locate_shipped("data/benchmarks", "_benchmarks", package_dir)


# -- reading ----------------------------------------------------------------------------------

def _rows(path: str | Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) of CSV ``path`` whose header must be exactly ``columns``."""
    path = Path(path)
    text = csv_text(path)
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise CsvError(path, f"empty file; expected the header {','.join(columns)}")
        header = [h.strip() for h in header]
        if header != list(columns):
            missing = [c for c in columns if c not in header]
            extra = [h for h in header if h not in columns]
            problem = "; ".join(filter(None, [
                f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unknown column(s) {', '.join(extra)}" if extra else "",
                "columns out of order" if not missing and not extra else ""]))
            raise CsvError(path, f"header must be {','.join(columns)}: {problem}", 1)
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(columns):
                raise CsvError(path, f"{len(fields)} fields, expected {len(columns)} ({','.join(columns)})", line)
            yield line, {c: f.strip() for c, f in zip(columns, fields)}
    except csv.Error as exc:
        raise CsvError(path, f"not valid CSV ({exc})", reader.line_num) from None


def _year(path: Path, line: int, text: str) -> str:
    if text not in spec.SUPPORTED_YEARS:
        raise CsvError(path, f"census_year {text!r} is not a census year cinqa measures "
                             f"({spec.SUPPORTED_YEARS[0]}..{spec.SUPPORTED_YEARS[-1]}, spelt like 2024-25)", line)
    return text


def _indicator(path: Path, line: int, text: str, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    if text not in allowed:
        raise CsvError(path, f"indicator {text!r} is not one of {', '.join(allowed)}", line)
    return text


def _value(path: Path, line: int, text: str, indicator: str) -> float:
    """Return the number ``text`` in ``indicator``'s unit, NaN for the Department's no-figure symbols."""
    if text.lower() in NO_FIGURE:
        return math.nan
    try:
        value = float(text.replace(",", "").removesuffix("%"))
    except ValueError:
        raise CsvError(path, f"value {text!r} is not a number (nor one of the Department's symbols "
                             f"c, z, x, :, u, low for no figure)", line) from None
    if not math.isfinite(value) or value < 0:
        raise CsvError(path, f"value {text!r} must be a number of 0 or more", line)
    if MEASURES[indicator].unit == PERCENT and value > 100:
        raise CsvError(path, f"value {text!r} is a percentage above 100 ({indicator} is in percent)", line)
    return value


def _check_unique(path: Path, seen: dict[tuple[str, ...], int], key: tuple[str, ...], line: int) -> None:
    if key in seen:
        raise CsvError(path, f"{', '.join(key)} is given twice (first on line {seen[key]})", line)
    seen[key] = line


def read_england(path: str | Path | None = None) -> pd.DataFrame:
    """Read England's figures (default: the shipped ``england.csv``), checking every row.

    A row has a value with its basis (published or derived), release and table, or no value, basis
    "not found" and a note saying why. Indicators must be measures of :mod:`cinqa.measures` in
    that census year; each (indicator, year) appears once.
    """
    path = Path(path) if path is not None else locate_benchmarks() / ENGLAND_CSV
    out, seen = [], {}
    for line, row in _rows(path, ENGLAND_COLUMNS):
        name = _indicator(path, line, row["indicator"], MEASURES)
        year = _year(path, line, row["census_year"])
        if year not in MEASURES[name].years:
            raise CsvError(path, f"{name} is not measured in {year} "
                                 f"({spec.describe_years(MEASURES[name].years)})", line)
        _check_unique(path, seen, (name, year), line)
        if row["basis"] not in BASES:
            raise CsvError(path, f"basis {row['basis']!r} is not one of {', '.join(BASES)}", line)
        has_value = row["value"] != ""
        if has_value != (row["basis"] != "not found"):
            raise CsvError(path, "a value needs basis published or derived; no value needs basis 'not found'", line)
        if has_value and not (row["release"] and row["table"]):
            raise CsvError(path, "a figure needs its release and table", line)
        if not has_value and not row["note"]:
            raise CsvError(path, "a missing figure needs a note saying why", line)
        value = _value(path, line, row["value"], name) if has_value else math.nan
        if has_value and math.isnan(value):
            raise CsvError(path, f"value {row['value']!r} is not a number", line)
        out.append({**row, "value": value})
    if not out:
        raise CsvError(path, "no rows after the header")
    return pd.DataFrame(out, columns=list(ENGLAND_COLUMNS)).astype({"value": "float64"})


def indicators(england: pd.DataFrame | None = None) -> list[str]:
    """List the key indicators (those England's figures name), in the order of the measure registry."""
    named = set((england if england is not None else read_england())["indicator"])
    return [name for name in MEASURES if name in named]


def read_comparators(path: str | Path, england: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read an LA's comparators CSV (``comparator, census_year, indicator, value``), checking every row.

    ``indicator`` must be one of the key indicators, ``census_year`` a census year in which it is
    measured, ``value`` a number in the indicator's unit (percent, or per 10,000 children) or one of
    the Department's symbols for no figure (c, z, x, :, u, low; kept as a missing value). A
    comparator's figure for an indicator and year may appear once. Any other problem is an error
    naming the file and line.
    """
    path = Path(path)
    keys = indicators(england)
    out, seen = [], {}
    for line, row in _rows(path, COMPARATOR_COLUMNS):
        if not row["comparator"]:
            raise CsvError(path, "comparator is empty", line)
        name = _indicator(path, line, row["indicator"], keys)
        year = _year(path, line, row["census_year"])
        if year not in MEASURES[name].years:
            raise CsvError(path, f"{name} is not measured in {year} "
                                 f"({spec.describe_years(MEASURES[name].years)})", line)
        _check_unique(path, seen, (row["comparator"], name, year), line)
        out.append({"comparator": row["comparator"], "census_year": year, "indicator": name,
                    "value": _value(path, line, row["value"], name), "line": line})
    if not out:
        raise CsvError(path, "no rows after the header")
    return pd.DataFrame(out).astype({"value": "float64"})


# -- bands ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Band:
    """The values an indicator is expected to lie within, and how that was decided."""

    low: float
    high: float
    reason: str


def _fmt(v: float) -> str:
    return f"{v:,.1f}"


def _widen(low: float, high: float, middle: float, unit: str, tolerance: float) -> tuple[float, float, str]:
    """Widen low..high by ``tolerance`` times ``middle`` (at least the unit's floor); say how."""
    floor = FLOOR.get(unit, 0.0)
    margin = max(tolerance * abs(middle), floor)
    top = 100.0 if unit == PERCENT else math.inf
    how = f"± {_fmt(margin)} ({tolerance:.0%} of {_fmt(middle)}" + (f", at least {_fmt(floor)} points)" if floor else ")")
    return max(low - margin, 0.0), min(high + margin, top), how


def band_for(indicator: str, year: str, england: pd.DataFrame, comparators: pd.DataFrame | None = None,
             tolerance: float = TOLERANCE) -> Band | None:
    """Return the band of ``indicator`` in ``year`` (see the module docstring), or None without figures."""
    unit = MEASURES[indicator].unit
    if comparators is not None:
        c = comparators[(comparators["indicator"] == indicator) & (comparators["census_year"] == year)]
        values = c["value"].dropna()
        if len(values) >= MIN_COMPARATORS:
            median = float(values.median())
            low, high, how = _widen(median, median, median, unit, tolerance)
            return Band(low, high, f"comparators' median {_fmt(median)} ({len(values)} comparators) {how}")
    end = spec.end_year(year)
    window = [y for y in spec.YEARS if end - ENGLAND_YEARS < spec.end_year(y) <= end]
    e = england[(england["indicator"] == indicator) & england["census_year"].isin(window)].dropna(subset=["value"])
    if e.empty:
        return None
    low, high = float(e["value"].min()), float(e["value"].max())
    blow, bhigh, how = _widen(low, high, float(e["value"].median()), unit, tolerance)
    return Band(blow, bhigh, f"England {_fmt(low)} to {_fmt(high)} in {spec.describe_years(frozenset(e['census_year']))} "
                             f"({len(e)} of the {ENGLAND_YEARS} years to {year} published) {how}")


# -- the LA beside England ----------------------------------------------------------------------

def _la_measures(la: object, population: float | Mapping[str, float] | None,
                 names: list[str]) -> tuple[pd.DataFrame, list[str], set[str]]:
    """Return the tidy key-indicator measures of ``la`` (returns, a Comparison, or a measures table),
    its census years, and those measured without the year before."""
    if isinstance(la, pd.DataFrame):
        if population is not None:
            raise CinqaError("benchmark() was given a measures table and a population: give the population "
                             "to measures() or compare() instead, or give benchmark() the returns")
        missing = [c for c in MEASURE_COLUMNS if c not in la]
        if missing:
            raise CinqaError(f"benchmark() needs a table of cinqa.measures.measures(); it lacks {', '.join(missing)}")
        tidy = la[la["measure"].isin(names) & (la["breakdown"] == ALL)]
        return tidy, sorted(tidy["census_year"].unique()), set()
    rets = getattr(la, "returns", la)  # a Comparison holds its returns, oldest first
    if isinstance(rets, CensusReturn):
        rets = [rets]
    rets = list(rets) if isinstance(rets, Iterable) else []
    if not rets or not all(isinstance(r, CensusReturn) for r in rets):
        raise CinqaError("benchmark() takes a CensusReturn, a list of them, a Comparison or a measures table, "
                         f"not {type(la).__name__}")
    by_year = {r.year: r for r in rets}
    if len(by_year) < len(rets):
        twice = sorted({r.year for r in rets if sum(o.year == r.year for o in rets) > 1})
        raise CinqaError(f"benchmark() was given more than one return for {', '.join(twice)}; give one per year")
    parts, lone = [], set()
    for r in sorted(rets, key=lambda r: r.year):
        # The Department counts re-referrals against referrals of the year before too.
        previous = by_year.get(spec.year_from_reference(spec.end_year(r.year) - 1))
        if previous is None:
            lone.add(r.year)
        parts.append(measures(r, population, previous=previous, names=names))
    tidy = pd.concat(parts, ignore_index=True)
    return tidy[tidy["breakdown"] == ALL], sorted(by_year), lone


def benchmark(la: object, population: float | Mapping[str, float] | None = None,
              comparators: pd.DataFrame | str | Path | None = None, *, england: pd.DataFrame | None = None,
              tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Lay each key indicator of the LA beside England's figure, its comparators and its band.

    ``la`` is a CensusReturn, a list of an LA's returns (each year measured with the year before,
    when given, as the Department counts re-referrals), a :class:`~cinqa.compare.Comparison`, or a
    table of :func:`cinqa.measures.measures`. ``population`` (children under 18, a number or census
    year -> number) gives the rates per 10,000; it is never estimated, and without it the rate rows
    say so. ``comparators`` is a table of :func:`read_comparators` or the path of its CSV.

    One row per indicator and census year of the LA (columns ``BENCHMARK_COLUMNS``): ``difference``
    is the LA's value minus England's; ``flag`` is "check recording" when the LA's value lies outside
    ``band_low``..``band_high``, and ``reason`` says how the band was set.
    """
    if not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 10:
        raise CinqaError(f"tolerance must be a fraction such as 0.25, not {tolerance!r}")
    england = read_england() if england is None else england
    names = indicators(england)
    if comparators is not None and not isinstance(comparators, pd.DataFrame):
        comparators = read_comparators(comparators, england)
    tidy, years, lone = _la_measures(la, population, names)
    la_values = tidy.set_index(["measure", "census_year"])["value"]
    eng = england.set_index(["indicator", "census_year"])
    rows = []
    for name in names:
        m = MEASURES[name]
        for year in years:
            if year not in m.years:
                continue
            value = float(la_values.get((name, year), np.nan))
            notes = []
            if math.isnan(value) and m.per_population:
                notes.append("no population given: a rate needs the LA's number of children under 18 "
                             "(population=), which cinqa never estimates")
            if year in lone and name == LONE_RETURN_INDICATOR:
                notes.append(f"measured without the return of the year before {year}: re-referrals whose earlier "
                             "referral was before 1 April are missed (see data/benchmarks/README.md)")
            e = eng.loc[(name, year)] if (name, year) in eng.index else None
            e_value = float(e["value"]) if e is not None else np.nan
            source = "" if e is None else (f"{e['release']}, {e['table']} ({e['basis']})" if e["basis"] != "not found"
                                           else f"no figure: {e['note']}")
            med, n = np.nan, 0
            if comparators is not None:
                c = comparators[(comparators["indicator"] == name) & (comparators["census_year"] == year)]["value"]
                n = int(c.notna().sum())
                med = float(c.median()) if n else np.nan
            band = band_for(name, year, england, comparators, tolerance)
            outside = band is not None and not math.isnan(value) and not band.low <= value <= band.high
            reason = band.reason if band else f"no band: no England figure for the {ENGLAND_YEARS} years to {year}" + (
                f" and fewer than {MIN_COMPARATORS} comparators" if comparators is not None else "")
            rows.append({
                "indicator": name, "description": m.description, "unit": m.unit, "census_year": year,
                "la_value": value, "england_value": e_value, "difference": value - e_value,
                "comparators_median": med, "comparators_n": n,
                "band_low": band.low if band else np.nan, "band_high": band.high if band else np.nan,
                "flag": CHECK if outside else "", "reason": reason, "england_source": source, "note": "; ".join(notes),
            })
    out = pd.DataFrame(rows, columns=list(BENCHMARK_COLUMNS))
    return out.astype({c: "float64" for c in ("la_value", "england_value", "difference", "comparators_median",
                                               "band_low", "band_high")})


# -- for reading --------------------------------------------------------------------------------

READABLE_COLUMNS = ("indicator", "year", "LA", "England", "difference", "comparators' median", "comparators",
                    "band", "flag", "note")


def describe_bands(tolerance: float = TOLERANCE) -> str:
    """Say in words how :func:`band_for` sets a band and what the flag means."""
    floors = "; ".join(f"at least {v:g} {'points' if u == PERCENT else u}" for u, v in FLOOR.items())
    return (f"Band: the median of the comparators where at least {MIN_COMPARATORS} have a figure, otherwise the "
            f"range of England's figures over the {ENGLAND_YEARS} census years to the year; either widened by "
            f"{tolerance:.0%} of its middle value ({floors}). '{CHECK}' marks a value outside its band: a figure far "
            "from everyone else's is often a recording problem that no validation rule catches. It is not a "
            "judgement of practice.")


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """Lay a :func:`benchmark` table out for reading: one row per indicator and year, rounded to one decimal.

    The comparators' columns appear only when some indicator has a comparator's figure. ``note``
    says why a value or England's figure is missing (a rate without a population, a year not yet
    published) and where a band could not be set.
    """
    def one(v: float) -> float | None:
        return None if pd.isna(v) else round(float(v), 1)

    rows = []
    for r in table.itertuples(index=False):
        notes = [r.note] if r.note else []
        if pd.isna(r.england_value) and r.england_source:
            notes.append(f"England: {r.england_source}")
        if pd.isna(r.band_low):
            notes.append(r.reason)
        band = "" if pd.isna(r.band_low) else f"{r.band_low:,.1f} to {r.band_high:,.1f}"
        rows.append({"indicator": r.description, "year": r.census_year, "LA": one(r.la_value),
                     "England": one(r.england_value), "difference": one(r.difference),
                     "comparators' median": one(r.comparators_median), "comparators": int(r.comparators_n),
                     "band": band, "flag": r.flag, "note": "; ".join(notes)})
    out = pd.DataFrame(rows, columns=list(READABLE_COLUMNS))
    if not (out["comparators"] > 0).any():
        out = out.drop(columns=["comparators' median", "comparators"])
    return out
