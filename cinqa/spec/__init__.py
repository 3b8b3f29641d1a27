"""The census format of every supported year, loaded from ``census.yaml``.

The YAML is the one place that says which elements, code sets and codes belong to which
census year; everything else asks this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Iterator

import yaml

# libyaml's loader, where PyYAML was built with it, reads the format in a tenth of the time.
_RAW: dict[str, Any] = yaml.load(resources.files(__name__).joinpath("census.yaml").read_text("utf-8"),
                                 Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

YEARS: tuple[str, ...] = tuple(_RAW["years"])
"""Every census year the package reads, oldest first, spelt like ``"2012-13"``."""

SUPPORTED_YEARS: tuple[str, ...] = tuple(y for y in YEARS if y <= "2025-26")
"""The years the product supports; later years are read provisionally."""

TABLE_KEYS: dict[str, tuple[str, ...]] = {t: tuple(k) for t, k in _RAW["tables"].items()}
"""Key columns of each table, parents first; the last is the table's own ordinal."""

_YEAR_RE = re.compile(r"^(\d{4})-(\d{2})$")

VALUE_LENGTHS: dict[str, int] = {"date": 10, "bool": 5, "int": 19, "gyear": 4}
"""The most characters a value of each type can have as the reader accepts it (YYYY-MM-DD, "false",
a sign and 18 digits, YYYY); a code is at most as long as its code set's longest code."""


def year_from_reference(end_year: int) -> str:
    """Return the census year ending 31 March of ``end_year`` (2023 -> ``"2022-23"``)."""
    return f"{end_year - 1}-{end_year % 100:02d}"


def end_year(year: str) -> int:
    """Return the calendar year in which census ``year`` ends (``"2022-23"`` -> 2023)."""
    m = _YEAR_RE.match(year)
    if not m:
        raise ValueError(f"census year {year!r} is not of the form '2022-23'")
    return int(m.group(1)) + 1


def parse_years(expr: str | None) -> frozenset[str]:
    """Expand a years expression (``"2013-14.."``, ``"..2023-24"``, ``"2012-13"``, ``None``)."""
    if expr is None:
        return frozenset(YEARS)
    expr = str(expr)
    if ".." not in expr:
        if expr not in YEARS:
            raise ValueError(f"unknown census year {expr!r} in census.yaml")
        return frozenset([expr])
    lo, hi = expr.split("..")
    return frozenset(y for y in YEARS if (not lo or y >= lo) and (not hi or y <= hi))


def describe_years(years: frozenset[str]) -> str:
    """Spell a set of census years compactly (``2013-14..2025-26``)."""
    ordered = [y for y in YEARS if y in years]
    if not ordered:
        return "no year"
    if len(ordered) == 1:
        return ordered[0]
    return f"{ordered[0]}..{ordered[-1]}"


@dataclass(frozen=True)
class Node:
    """One element of the format: where it sits, what it holds and in which years."""

    name: str
    kind: str  # group | table | list | leaf | opaque
    parent: str | None = None
    type: str = "str"
    table: str | None = None
    min: int = 0
    max: int | None = 1  # None: any number
    years: frozenset[str] = frozenset(YEARS)
    restricted: bool = False
    item: str | None = None
    status: str = "V"
    note: str | None = None
    pattern: str | None = None
    length: int | None = None  # the most characters a text value can have, where the format says
    length_status: str = "V"  # V, I or U as for ``status``; a value past a U (provisional) limit is a warning
    length_note: str | None = None
    aliases: tuple[str, ...] = ()
    row: dict[str, str] | None = None
    fixed: dict[str, str] = field(default_factory=dict)
    leaf: "Node | None" = None
    children: tuple["Node", ...] = ()

    @property
    def codeset(self) -> str | None:
        """Name of the code set of a ``code:`` leaf."""
        return self.type[5:] if self.type.startswith("code:") else None

    @property
    def max_length(self) -> int | None:
        """Return the most characters a value of this leaf can have (None: the format sets no limit)."""
        if self.length is not None:
            return self.length
        if self.codeset:
            return longest_code(self.codeset)
        return VALUE_LENGTHS.get(self.type)

    @property
    def column(self) -> str:
        """The table column this leaf fills."""
        return self.row["column"] if self.row else self.name

    def walk(self) -> Iterator["Node"]:
        """Yield this node and every node below it."""
        yield self
        for c in self.children:
            yield from c.walk()
        if self.leaf is not None:
            yield self.leaf


def _build(raw: dict[str, Any], parent: str | None, parent_years: frozenset[str] = frozenset(YEARS)) -> Node:
    """Build a node; its ``years`` are its own narrowed by its parent's."""
    kind = raw.get("kind", "leaf")
    years = parse_years(raw.get("years")) & parent_years
    children = tuple(_build(c, raw["name"], years) for c in raw.get("children", ()))
    leaf = _build(raw["leaf"], raw["name"], years) if "leaf" in raw else None
    return Node(
        name=raw["name"],
        kind=kind,
        parent=parent,
        type=raw.get("type", "str"),
        table=raw.get("table") or (leaf.table if leaf else None),
        min=int(raw.get("min", 0)),
        max=raw.get("max", None if kind == "table" else 1),
        years=years,
        restricted=years != parent_years,
        item=raw.get("item"),
        status=raw.get("status", "V"),
        note=raw.get("note"),
        pattern=raw.get("pattern"),
        length=raw.get("length"),
        length_status=raw.get("length_status", "V"),
        length_note=raw.get("length_note"),
        aliases=tuple(raw.get("aliases", ())),
        row=raw.get("row"),
        fixed=dict(raw.get("fixed", {})),
        leaf=leaf,
        children=children,
    )


HEADER: Node = _build(_RAW["header"], "Message")
CHILD: Node = _build(_RAW["child"], "Children")


def nodes() -> Iterator[Node]:
    """Yield every node of the format, header first."""
    yield from HEADER.walk()
    yield from CHILD.walk()


@cache
def table_nodes() -> dict[str, Node]:
    """Map each table to the node whose occurrences are its rows."""
    out: dict[str, Node] = {}
    for n in CHILD.walk():
        if n.kind in ("table", "list") and n.table:
            out.setdefault(n.table, n)
    return out


@cache
def table_parent(table: str) -> str | None:
    """Return the table one level up (``assessments`` -> ``episodes``)."""
    keys = TABLE_KEYS[table]
    if len(keys) == 1:
        return None
    for t, k in TABLE_KEYS.items():
        if k == keys[:-1]:
            return t
    raise KeyError(table)


@cache
def value_columns(table: str) -> tuple[Node, ...]:
    """Return the leaves that fill ``table``'s value columns, in document order, de-duplicated."""
    seen: dict[str, Node] = {}

    def collect(node: Node, owner: str | None) -> None:
        for c in node.children:
            if c.kind == "leaf":
                target = c.row["table"] if c.row else owner
                if target == table and c.column not in seen:
                    seen[c.column] = c
            elif c.kind == "group":
                collect(c, owner)
            elif c.kind == "table":
                collect(c, c.table)
            elif c.kind == "list" and c.table == table and c.leaf is not None:
                seen.setdefault(c.leaf.column, c.leaf)

    collect(CHILD, CHILD.table)
    return tuple(seen.values())


@cache
def column_years(table: str, column: str) -> frozenset[str]:
    """Return the census years in which ``table`` has ``column`` (any element may feed it)."""
    years: frozenset[str] = frozenset()
    for n in CHILD.walk():
        if n.kind != "leaf" or n.column != column:
            continue
        target = n.row["table"] if n.row else _owner_table(n)
        if target == table:
            years |= n.years
    return years


@cache
def table_years(table: str) -> frozenset[str]:
    """Return the census years in which ``table`` can have rows."""
    years: frozenset[str] = frozenset()
    for n in CHILD.walk():
        if (n.kind in ("table", "list") and n.table == table) or (n.row and n.row["table"] == table):
            years |= n.years
    return years


def _owner_table(leaf: Node) -> str | None:
    """Return the table whose rows a leaf's value lands in."""
    by_name = {n.name: n for n in CHILD.walk() if n.kind != "leaf"}
    parent = by_name.get(leaf.parent or "")
    while parent is not None and parent.kind == "group":
        parent = by_name.get(parent.parent or "")
    if parent is None:
        return None
    return parent.table


ASSESSMENT_KINDS = ("continuous", "initial", "core")
"""The kinds of assessment a row of ``assessments`` is, in the order they are shown (its ``kind``)."""


@cache
def has_kind_column(table: str) -> bool:
    """Tell whether rows of ``table`` carry a ``kind`` (assessments: continuous, initial, core)."""
    return any(n.table == table and n.fixed for n in CHILD.walk()) or any(
        n.row and n.row["table"] == table for n in CHILD.walk()
    )


def _code_entries(name: str) -> dict[str, tuple[str, frozenset[str], str]]:
    raw = _RAW["codesets"][name]
    out: dict[str, tuple[str, frozenset[str], str]] = {}
    if name == "la":
        for r in raw["ranges"]:
            lo, _, hi = r.partition("-")
            for n in range(int(lo), int(hi or lo) + 1):
                out[f"{n:03d}"] = ("", frozenset(YEARS), "V")
        for code, v in raw["extra"].items():
            out[str(code)] = (v.get("label", ""), parse_years(v.get("years")), v.get("status", "V"))
        return out
    for code, v in raw.items():
        if isinstance(v, dict):
            out[str(code)] = (v["label"], parse_years(v.get("years")), v.get("status", "V"))
        else:
            out[str(code)] = (str(v), frozenset(YEARS), "V")
    return out


CODESETS: tuple[str, ...] = tuple(_RAW["codesets"])


@cache
def codes(codeset: str, year: str | None = None) -> tuple[str, ...]:
    """Return the valid codes of ``codeset`` in census ``year`` (every year's codes if None)."""
    return tuple(c for c, (_, ys, _) in _code_entries(codeset).items() if year is None or year in ys)


@cache
def longest_code(codeset: str) -> int:
    """Return the length of the longest code ``codeset`` has in any year."""
    return max(map(len, codes(codeset)))


@cache
def code_labels(codeset: str) -> dict[str, str]:
    """Return each code's label, for display."""
    return {c: label for c, (label, _, _) in _code_entries(codeset).items()}


def code_status(codeset: str, code: str) -> str:
    """Return how ``code`` of ``codeset`` is known: V verified, I inferred, U unverified."""
    return _code_entries(codeset)[code][2]


def code_years(codeset: str, code: str) -> frozenset[str]:
    """Return the census years in which ``code`` belongs to ``codeset`` (empty if never)."""
    entry = _code_entries(codeset).get(code)
    return entry[1] if entry else frozenset()


def reference_date(year: str) -> "Any":
    """Return the census reference date (31 March) of ``year`` as a pandas Timestamp."""
    import pandas as pd

    return pd.Timestamp(end_year(year), 3, 31)


def census_start(year: str) -> "Any":
    """Return the first day (1 April) of census ``year`` as a pandas Timestamp."""
    import pandas as pd

    return pd.Timestamp(end_year(year) - 1, 4, 1)
