"""Write a :class:`CensusReturn` as the census XML of its year.

Element names, order and year-membership come from :mod:`cinqa.spec`, so the same code writes
every year. Files are written to a temporary name beside the target and renamed when complete,
so an interrupted write never leaves a half-written return.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from xml.sax.saxutils import escape

import pandas as pd

from cinqa import spec
from cinqa.files import atomic_path
from cinqa.returns import CensusReturn, Header

Formatted = dict[str, str | None]


def write_return(ret: CensusReturn, path: str | Path) -> Path:
    """Write ``ret`` to ``path`` in the XML format of ``ret.year``; return the path."""
    with ReturnWriter(path, ret.year, ret.header) as w:
        w.write_children(ret.tables)
    return Path(path)


class ReturnWriter:
    """Write a return in chunks of children, for files too large to hold in memory at once.

    >>> with ReturnWriter("big.xml", "2023-24", header) as w:   # doctest: +SKIP
    ...     for tables in chunks:
    ...         w.write_children(tables)
    """

    def __init__(self, path: str | Path, year: str, header: Header) -> None:
        if year not in spec.YEARS:
            raise ValueError(f"census year {year!r} is not supported")
        self.path = Path(path)
        self.year = year
        self.header = header
        self._fh: TextIO | None = None
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "ReturnWriter":
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._fh = self._stack.enter_context(tmp.open("w", encoding="utf-8", newline="\n"))
        self._fh.write('<?xml version="1.0" encoding="utf-8"?>\n<Message>\n')
        self._fh.write("".join(_header_lines(self.header, self.year)))
        self._fh.write("  <Children>\n")
        return self

    def write_children(self, tables: dict[str, pd.DataFrame]) -> None:
        """Append the children in ``tables`` (keyed as a CensusReturn's tables are)."""
        assert self._fh is not None, "use ReturnWriter as a context manager"
        grouped = {name: _group(name, df, self.year) for name, df in tables.items() if name in spec.TABLE_KEYS}
        children = grouped.get("children", {}).get((), [])
        out: list[str] = []
        for row in children:
            out.append("    <Child>\n")
            _container(spec.CHILD, row, grouped, self.year, 3, out)
            out.append("    </Child>\n")
            if len(out) > 20000:
                self._fh.write("".join(out))
                out.clear()
        self._fh.write("".join(out))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._fh is not None and self._stack is not None
        if exc_type is None:
            self._fh.write("  </Children>\n</Message>\n")
        self._stack.__exit__(exc_type, exc, tb)


def _header_lines(header: Header, year: str) -> list[str]:
    values = {
        "Collection": header.collection or "CIN",
        "Year": str(header.year or spec.end_year(year)),
        "ReferenceDate": _fmt_date(header.reference_date) or f"{spec.end_year(year)}-03-31",
        "SourceLevel": header.source_level or "L",
        "LEA": header.la,
        "SoftwareCode": header.software,
        "Release": header.release,
        "SerialNo": header.serial,
        "DateTime": header.datetime.isoformat(timespec="seconds") if header.datetime is not None else None,
    }
    values = {k: None if v is None else escape(v) for k, v in values.items()}
    out = ["  <Header>\n"]
    _container(spec.HEADER, values, {}, year, 2, out)
    out.append("  </Header>\n")
    return out


_Plan = list[tuple[str, spec.Node, str, Any, Any]]
_PLANS: dict[tuple[int, str], _Plan] = {}


def _plan(node: spec.Node, year: str) -> _Plan:
    """Return, once per node and year, what to write for each sub-element: (kind, node, name, a, b)."""
    key = (id(node), year)
    if key not in _PLANS:
        plan: _Plan = []
        for c in node.children:
            if year not in c.years or c.kind == "opaque":
                continue
            if c.kind == "leaf":
                plan.append(("redirect" if c.row else "leaf", c, c.name, c.column, None))
            elif c.kind == "group":
                plan.append(("group", c, c.name, None, None))
            elif c.kind == "table" and c.table:
                plan.append(("table", c, c.name, c.table, c.fixed.get("kind")))
            elif c.kind == "list" and c.table and c.leaf is not None:
                plan.append(("list", c, c.name, c.table, (c.leaf.name, c.leaf.column)))
        _PLANS[key] = plan
    return _PLANS[key]


def _container(node: spec.Node, row: Formatted, grouped: dict[str, dict[tuple[int, ...], list[Formatted]]],
               year: str, depth: int, out: list[str]) -> None:
    """Append the sub-elements of ``node`` for ``row`` to ``out``."""
    pad = "  " * depth
    keys = _own_keys(row)
    for kind, c, name, a, b in _plan(node, year):
        if kind == "leaf":
            value = row.get(a)
            if value is not None:
                out.append(f"{pad}<{name}>{value}</{name}>\n")
        elif kind == "table":
            for sub in grouped.get(a, {}).get(keys, ()):
                if b is not None and sub.get("kind") != b:
                    continue
                out.append(f"{pad}<{name}>\n")
                _container(c, sub, grouped, year, depth + 1, out)
                out.append(f"{pad}</{name}>\n")
        elif kind == "group":
            inner: list[str] = []
            _container(c, row, grouped, year, depth + 1, inner)
            if inner or c.min:
                out.append(f"{pad}<{name}>\n")
                out.extend(inner)
                out.append(f"{pad}</{name}>\n")
        elif kind == "list":
            leaf_name, leaf_col = b
            values = [v for i in grouped.get(a, {}).get(keys, ()) if (v := i.get(leaf_col)) is not None]
            if values:
                out.append(f"{pad}<{name}>\n")
                out.extend(f"{pad}  <{leaf_name}>{v}</{leaf_name}>\n" for v in values)
                out.append(f"{pad}</{name}>\n")
        else:  # redirect: a 2012-13 initial/core assessment date
            value = _redirected(c, keys, grouped)
            if value is not None:
                out.append(f"{pad}<{name}>{value}</{name}>\n")


def _redirected(leaf: spec.Node, keys: tuple[int, ...],
                grouped: dict[str, dict[tuple[int, ...], list[Formatted]]]) -> str | None:
    """Return a 2012-13 initial/core assessment date from its row in the assessments table."""
    target = leaf.row or {}
    for sub in grouped.get(target["table"], {}).get(keys, []):
        if sub.get("kind") == target["kind"]:
            return sub.get(target["column"])
    return None


def _own_keys(row: Formatted) -> tuple[int, ...]:
    return row.get("__keys__", ())  # type: ignore[return-value]


def _group(table: str, df: pd.DataFrame, year: str) -> dict[tuple[int, ...], list[Formatted]]:
    """Format ``df``'s values as XML text and group its rows under their parent's keys."""
    keys = list(spec.TABLE_KEYS[table])
    if df.empty:
        return {}
    df = df.sort_values(keys, kind="stable")
    cols: dict[str, list[Any]] = {}
    for node in spec.value_columns(table):
        if node.column in df:
            cols[node.column] = _format(df[node.column], node)
    if "kind" in df:
        cols["kind"] = df["kind"].astype("object").where(df["kind"].notna(), None).tolist()
    key_values = [df[k].astype("int64").tolist() for k in keys]
    grouped: dict[tuple[int, ...], list[Formatted]] = defaultdict(list)
    names = list(cols)
    columns = [cols[n] for n in names]
    names.append("__keys__")
    for values in zip(*columns, zip(*key_values)):
        row: dict[str, Any] = dict(zip(names, values))
        grouped[values[-1][:-1]].append(row)
    return grouped


def _format(s: pd.Series, node: spec.Node) -> list[str | None]:
    """Turn a typed column back into XML text, ``None`` where missing."""
    t = node.type
    if t == "date":
        out = pd.to_datetime(s, errors="coerce").dt.strftime("%Y-%m-%d")
    elif t == "datetime":
        out = pd.to_datetime(s, errors="coerce").dt.strftime("%Y-%m-%dT%H:%M:%S")
    elif t == "bool":
        out = s.astype("boolean").map({True: "true", False: "false"})
    elif t in ("int", "gyear"):
        missing = s.isna().to_numpy()
        return [None if m else str(int(v)) for v, m in zip(s.tolist(), missing)]
    else:
        out = s.astype("object").map(lambda v: escape(str(v)), na_action="ignore")
    missing = out.isna().to_numpy()
    return [None if m else v for v, m in zip(out.astype("object").tolist(), missing)]


def _fmt_date(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")
