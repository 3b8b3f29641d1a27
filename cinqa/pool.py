"""Pool many returns into one Parquet store, partitioned by census year and LA, and read them back.

A store is a folder with one sub-folder per table (``children``, ``episodes``, ...,
``structural_issues`` and ``header``), each partitioned Hive-style::

    store/children/census_year=2024-25/la=931/part-0.parquet

so Spark, pyarrow or DuckDB read a table of every LA-year at once and take ``census_year`` and
``la`` from the folder names: with them every key (``child``, ``episode``, ...) names one row of
the whole store. The files keep the types :func:`cinqa.read_return` gives (the ``header`` table
holds the facts of each return's ``<Header>``), so :func:`read_pooled` gives back the very return
that was written. Spark must read ``la`` as text (``931``, ``202``, ``050``):
:data:`cinqa.spark.SETTINGS` turns partition type inference off.

A file that cannot be read, or whose header names no LA, is skipped with its reason and the rest
are pooled: one bad return among a hundred should not stop the others, and the command that pools
them says which were left out and exits non-zero. Pooling an LA-year that is already in the store
replaces it (a corrected return is resubmitted); a second file of an LA-year already pooled in the
same run stops the run, naming both files, since which to keep is not cinqa's to guess (the LA-years
written before it stay in the store).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from cinqa import spec
from cinqa.errors import CinqaError, ReadError
from cinqa.export import ISSUES_NAME, write_frame
from cinqa.returns import CensusReturn, Header, table_schema

PARTITIONS: tuple[str, ...] = ("census_year", "la")
"""The store's partition columns, outermost first; they lead every key of a pooled table."""
HEADER_NAME = "header"
"""The store's table of header facts, one row per LA-year."""
STORE_TABLES: tuple[str, ...] = (*spec.TABLE_KEYS, ISSUES_NAME, HEADER_NAME)
"""Every table a store holds."""
_PART = "part-0.parquet"


@dataclass
class Pooled:
    """What pooling wrote: the LA-years written (and which of them replaced one already there), and
    each file skipped with why."""

    written: list[tuple[str, str, Path]] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def pool_returns(paths: Sequence[Path], store: str | Path, *, year: str | None = None,
                 prepare: Callable[[CensusReturn], CensusReturn] | None = None,
                 tick: Callable[[int], Any] | None = None) -> Pooled:
    """Read each census file of ``paths`` and write its tables into ``store`` (see the module docstring).

    ``prepare`` is applied to each return before it is written (pseudonymisation); ``tick(1)`` is
    told of each file done. A file that cannot be read is skipped and named in the result.
    """
    from cinqa import read_return

    store, out = Path(store), Pooled()
    seen: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            ret = read_return(path, year=year)
        except CinqaError as exc:
            out.skipped.append((Path(path), str(exc)))
        else:
            la = (ret.header.la or "").strip()
            if not la:
                out.skipped.append((Path(path), f"{path}: the header names no LA (<LEA>), so the return has no "
                                                f"place in a pooled store"))
            elif (ret.year, la) in seen:
                raise ReadError(path, f"LA {la}'s {ret.year} return is also {seen[ret.year, la]}; pool one of them")
            else:
                seen[ret.year, la] = Path(path)
                if _partition(store, ret.year, la).exists():
                    out.replaced.append((ret.year, la))
                write_pooled(prepare(ret) if prepare else ret, store)
                out.written.append((ret.year, la, Path(path)))
        if tick:
            tick(1)
    return out


def write_pooled(ret: CensusReturn, store: str | Path) -> list[Path]:
    """Write one return's tables into its census year's and LA's partition of ``store``, replacing any there."""
    la = ret.header.la
    if not la:
        raise ValueError("a return whose header names no LA cannot be pooled")
    frames = {**ret.tables, ISSUES_NAME: ret.issues, HEADER_NAME: _header_frame(ret.header)}
    written = []
    for name, frame in frames.items():
        folder = Path(store) / name / f"census_year={ret.year}" / f"la={la}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        written.append(write_frame(frame, folder / _PART, "parquet"))
    return written


def pooled_returns(store: str | Path) -> list[tuple[str, str]]:
    """List the (census year, LA) pairs that ``store`` holds, in that order."""
    root = Path(store) / HEADER_NAME
    if not root.is_dir():
        raise ReadError(store, "this is not a cinqa store: it has no header/ folder (make one with cinqa tables)")
    out = []
    for year_dir in sorted(root.glob("census_year=*")):
        for la_dir in sorted(year_dir.glob("la=*")):
            if (la_dir / _PART).is_file():
                out.append((year_dir.name.split("=", 1)[1], la_dir.name.split("=", 1)[1]))
    return out


def read_pooled(store: str | Path, year: str, la: str) -> CensusReturn:
    """Read LA ``la``'s ``year`` return back from ``store``, its tables as :func:`cinqa.read_return` gave them."""
    def part(name: str) -> pd.DataFrame:
        path = _partition(Path(store), year, la, name) / _PART
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise ReadError(path, f"cannot read this part of the store ({exc})") from None

    tables = {name: _typed(part(name), table_schema(name, year)) for name in spec.TABLE_KEYS}
    header = _header_from(part(HEADER_NAME))
    ret = CensusReturn(year=year, header=header, tables=tables, issues=part(ISSUES_NAME),
                       path=Path(store) / f"{la}-{year}")
    ret.check_tables()
    return ret


def read_table(store: str | Path, table: str, pairs: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Read ``table`` of every LA-year of ``store`` (or of ``pairs``) as one frame led by census_year and la."""
    parts = []
    for year, la in (pairs if pairs is not None else pooled_returns(store)):
        frame = pd.read_parquet(_partition(Path(store), year, la, table) / _PART)
        parts.append(frame.assign(census_year=year, la=la)[[*PARTITIONS, *frame.columns]])
    return pd.concat(parts, ignore_index=True)


def _typed(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    # Parquet has no second resolution: census dates come back in milliseconds unless cast.
    dates = {c: t for c, t in schema.items() if t.startswith("datetime64") and c in frame.columns}
    return frame.astype(dates) if dates else frame


def _partition(store: Path, year: str, la: str, table: str = HEADER_NAME) -> Path:
    return store / table / f"census_year={year}" / f"la={la}"


def _header_frame(header: Header) -> pd.DataFrame:
    row = asdict(header)
    row["extra"] = json.dumps([list(pair) for pair in header.extra])
    frame = pd.DataFrame([row])
    for column in ("reference_date", "datetime"):
        frame[column] = pd.to_datetime(frame[column])
    return frame.astype({"year": "Int64"})


def _header_from(frame: pd.DataFrame) -> Header:
    row = frame.iloc[0].to_dict()

    def value(name: str) -> Any:
        v = row.get(name)
        return None if v is None or v is pd.NaT or (not isinstance(v, str) and pd.isna(v)) else v

    return Header(collection=value("collection"), year=None if value("year") is None else int(row["year"]),
                  reference_date=value("reference_date"), la=value("la"), source_level=value("source_level"),
                  software=value("software"), release=value("release"), serial=value("serial"),
                  datetime=value("datetime"), extra=tuple(tuple(p) for p in json.loads(row.get("extra") or "[]")))
