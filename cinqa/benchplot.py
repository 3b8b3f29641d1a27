"""Draw an LA's key indicator by census year against England's published figures and the band.

Kept apart from :mod:`cinqa.benchmarks` so that computing never loads matplotlib; the function is
written to move into :mod:`cinqa.display` as it stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.benchmarks import read_england
from cinqa.errors import CinqaError
from cinqa.measures import MEASURES

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_benchmark(table: pd.DataFrame, indicator: str, england: pd.DataFrame | None = None) -> "Figure":
    """Draw ``indicator`` of a :func:`cinqa.benchmarks.benchmark` table: the LA's years, England's, the band.

    England's line spans every year it has a figure; the LA's points carry their band as a grey bar
    and are ringed in red when flagged.
    """
    from matplotlib.figure import Figure  # imported here: plotting is optional and matplotlib is slow to load
    rows = table[table["indicator"] == indicator].sort_values("census_year")
    if rows.empty:
        raise CinqaError(f"no benchmark rows for indicator {indicator!r}")
    england = read_england() if england is None else england
    e = england[(england["indicator"] == indicator)].dropna(subset=["value"])
    years = [y for y in spec.YEARS if y in set(rows["census_year"]) | set(e["census_year"])]
    x = {y: i for i, y in enumerate(years)}
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([x[y] for y in e["census_year"]], e["value"], marker="s", color="0.35", label="England")
    banded = rows.dropna(subset=["band_low", "band_high"])
    ax.vlines([x[y] for y in banded["census_year"]], banded["band_low"], banded["band_high"], color="0.8",
              linewidth=8, label="band")
    ax.plot([x[y] for y in rows["census_year"]], rows["la_value"], marker="o", color="tab:blue", label="LA")
    flagged = rows[rows["flag"] != ""]
    ax.plot([x[y] for y in flagged["census_year"]], flagged["la_value"], "o", ms=13, mfc="none", mec="red",
            mew=1.5, label="check recording")
    ax.set_title(MEASURES[indicator].description, fontsize=10)
    ax.set_xticks(range(len(years)), years, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(MEASURES[indicator].unit)
    top = np.nanmax([*rows["la_value"], *rows["band_high"].replace(np.inf, np.nan), *e["value"], 1.0])
    ax.set_ylim(0, top * 1.1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return fig
