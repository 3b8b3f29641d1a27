"""The generator's parameter table (``params.yaml``) and fast draws from it.

Every share, rate and duration the generator uses is read from the YAML through :class:`Params`,
resolved for one census year (year ending 31 March). Draws use :class:`random.Random`, which is
fast per call and reproducible for a given seed.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from functools import cache
from importlib import resources
from typing import Any, Hashable, Mapping, Sequence

import pandas as pd
import yaml

Band = tuple[int, int, float]


@cache
def _raw() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("params.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    if total <= 0:
        raise ValueError("nothing to draw from: every weight is zero")
    cum, run = [], 0.0
    for w in weights:
        run += w
        cum.append(run / total)
    cum[-1] = 2.0  # a draw of (almost) 1.0 must still land in the last entry
    return cum


class Pick:
    """Draw a key of ``weights`` with probability proportional to its weight."""

    __slots__ = ("keys", "cum", "draw")

    def __init__(self, weights: Mapping[Any, float]) -> None:
        items = [(k, float(w)) for k, w in weights.items() if w > 0]
        self.keys = [k for k, _ in items]
        self.cum = _cumulative([w for _, w in items])
        keys, cum = self.keys, self.cum

        def draw(rnd: random.Random) -> Any:
            return keys[bisect_right(cum, rnd.random())]

        self.draw = draw

    def __call__(self, rnd: random.Random) -> Any:
        return self.draw(rnd)


class Bands:
    """Draw an integer: first a band by its share, then uniformly within the band."""

    __slots__ = ("bands", "draw")

    def __init__(self, bands: Sequence[Sequence[float]]) -> None:
        self.bands = [(int(lo), int(hi), float(share)) for lo, hi, share in bands]
        cum = _cumulative([share for _, _, share in self.bands])
        los = [lo for lo, _, _ in self.bands]
        widths = [hi - lo + 1 for lo, hi, _ in self.bands]

        def draw(rnd: random.Random) -> int:
            i = bisect_right(cum, rnd.random())
            return los[i] + int(rnd.random() * widths[i])

        self.draw = draw

    def __call__(self, rnd: random.Random) -> int:
        return self.draw(rnd)

    def share_at_most(self, value: int) -> float:
        """Return the probability that a draw is at most ``value``."""
        total = sum(s for _, _, s in self.bands)
        p = 0.0
        for lo, hi, share in self.bands:
            if hi <= value:
                p += share
            elif lo <= value:
                p += share * (value - lo + 1) / (hi - lo + 1)
        return p / total


class Params:
    """The parameter table resolved for one census year (``end_year``, e.g. 2024 for 2023-24)."""

    def __init__(self, end_year: int) -> None:
        self.end_year = end_year
        self.raw = _raw()

    def _resolve(self, name: str) -> Any:
        entry = self.raw[name]
        if "by_year" not in entry:
            return entry.get("value", entry.get("bands"))
        table: dict[int, Any] = {int(k): v for k, v in entry["by_year"].items()}
        years = sorted(table)
        y = self.end_year
        if entry.get("interpolate", "linear") == "step" or y <= years[0] or y >= years[-1]:
            at_or_before = [k for k in years if k <= y]
            return table[at_or_before[-1] if at_or_before else years[0]]
        hi = next(k for k in years if k >= y)
        lo = max(k for k in years if k <= y)
        if hi == lo:
            return table[lo]
        t = (y - lo) / (hi - lo)
        return _blend(table[lo], table[hi], t)

    def scalar(self, name: str) -> float:
        """Return a rate or share."""
        return float(self._resolve(name))

    def shares(self, name: str) -> dict[Any, Any]:
        """Return a mapping of shares (or of nested mappings)."""
        return dict(self._resolve(name))

    def pick(self, name: str, allowed: Sequence[Hashable] | None = None) -> Pick:
        """Return a drawer over the shares of ``name``, restricted to ``allowed`` keys if given."""
        shares = self.shares(name)
        if allowed is not None:
            shares = {k: v for k, v in shares.items() if k in allowed}
        return Pick(shares)

    def bands(self, name: str) -> Bands:
        """Return a drawer over the duration bands of ``name``."""
        return Bands(self._resolve(name))


def _blend(a: Any, b: Any, t: float) -> Any:
    if isinstance(a, dict):
        keys = list(dict.fromkeys([*a, *b]))
        return {k: _blend(a.get(k, 0.0), b.get(k, 0.0), t) for k in keys}
    if isinstance(a, list):
        return b if t >= 0.5 else a
    return float(a) + (float(b) - float(a)) * t


def parameter_table() -> pd.DataFrame:
    """Return the parameter table as one row per value: name, key, year, value, unit, source, status."""
    rows: list[dict[str, Any]] = []
    for name, entry in _raw().items():
        meta = {"unit": entry.get("unit", ""), "source": entry.get("source", ""),
                "status": entry.get("status", "")}
        if "by_year" in entry:
            for year, value in entry["by_year"].items():
                for key, v in _flatten(value):
                    rows.append({"name": name, "key": key, "year": int(year), "value": v, **meta})
        else:
            value = entry.get("value", entry.get("bands"))
            for key, v in _flatten(value):
                rows.append({"name": name, "key": key, "year": entry.get("year"), "value": v, **meta})
    df = pd.DataFrame(rows, columns=["name", "key", "year", "value", "unit", "source", "status"])
    df["year"] = df["year"].astype("Int64")
    return df


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(_flatten(v, f"{prefix}{k}" if not prefix else f"{prefix}.{k}"))
        return out
    if isinstance(value, list):
        return [(f"{prefix}[{lo}, {hi}]" if prefix else f"[{lo}, {hi}]", share) for lo, hi, share in value]
    return [(prefix, value)]
