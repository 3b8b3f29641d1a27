"""The in-memory census return: header facts, one table per entity, structural issues."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cinqa import spec
from cinqa.errors import TableError

ISSUE_COLUMNS = ("line", "severity", "table", "child", "LAchildID", "element", "problem", "value")
SHOWN_ISSUE_COLUMNS = tuple(c for c in ISSUE_COLUMNS if c != "child")
"""The columns of the issues table that people read (``child`` is only the return's own ordinal)."""


def issues_first(issues: pd.DataFrame) -> pd.DataFrame:
    """Return the structural issues as people read them: errors first, each in file order, shown columns only."""
    if not len(issues):
        return issues.loc[:, [c for c in SHOWN_ISSUE_COLUMNS if c in issues]].reset_index(drop=True)
    order = pd.DataFrame({"warning": issues["severity"].astype("str").ne("error").to_numpy(),
                          "line": pd.array(issues["line"], dtype="Int64")})
    order = order.sort_values(["warning", "line"], kind="stable", na_position="first")
    return issues.iloc[order.index].loc[:, [c for c in SHOWN_ISSUE_COLUMNS if c in issues]].reset_index(drop=True)


def issue_lines(issues: pd.DataFrame) -> list[str]:
    """Spell each structural issue on one line, errors first: "line 12, error: <problem> (element, LAchildID X)"."""
    out = []
    for r in issues_first(issues).to_dict("records"):
        where = "no line" if pd.isna(r.get("line")) else f"line {int(r['line'])}"
        # The value is left out when the problem already quotes it.
        about = [str(r[k]) if k == "element" else f"{k} {r[k]}" for k in ("element", "LAchildID", "value")
                 if k in r and not pd.isna(r[k]) and str(r[k])
                 and not (k == "value" and str(r[k]) in str(r["problem"]))]
        out.append(f"{where}, {r['severity']}: {r['problem']}" + (f" ({', '.join(about)})" if about else ""))
    return out

VALUE_DTYPES = {"date": "datetime64[s]", "datetime": "datetime64[s]", "bool": "boolean", "int": "Int64",
                "gyear": "Int64", "str": "str"}
"""The dtype of a column holding each type of census value (a code column is ``category``)."""


def column_dtype(node: spec.Node) -> str:
    """Return the dtype of the column that ``node``'s values fill."""
    return "category" if node.codeset else VALUE_DTYPES[node.type]


def table_schema(table: str, year: str) -> dict[str, str]:
    """Map each column that reading a ``year`` return gives ``table`` to its dtype, in column order.

    A column of another year is left out: the reader adds one only when the file has a value for it.
    """
    keys = spec.TABLE_KEYS[table]
    out = {k: "int64" for k in keys} | {"LAchildID": "str"}
    if spec.has_kind_column(table):
        out["kind"] = "category"
    for node in spec.value_columns(table):
        if year in spec.column_years(table, node.column):
            out[node.column] = column_dtype(node)
    return out | {"line": "Int64"}


@dataclass(frozen=True)
class Header:
    """Facts from the return's ``<Header>``; any of them may be missing from a bad file."""

    collection: str | None = None
    year: int | None = None
    reference_date: pd.Timestamp | None = None
    la: str | None = None
    source_level: str | None = None
    software: str | None = None
    release: str | None = None
    serial: str | None = None
    datetime: pd.Timestamp | None = None
    extra: tuple[tuple[str, str], ...] = ()
    """Values of header elements cinqa reads but does not model (old CBDS levels), as (path, value)."""


@dataclass
class CensusReturn:
    """One census return as linked tables.

    Every table has the key columns of ``spec.TABLE_KEYS`` (``child``, ``episode``, an ordinal of
    its own), the child's ``LAchildID`` and the XML ``line`` its row came from.
    """

    year: str
    header: Header
    tables: dict[str, pd.DataFrame]
    issues: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ISSUE_COLUMNS)))
    path: Path | None = None

    @property
    def reference_date(self) -> pd.Timestamp:
        """The census reference date, 31 March of the census year."""
        return spec.reference_date(self.year)

    @property
    def census_start(self) -> pd.Timestamp:
        """The first day of the census period, 1 April."""
        return spec.census_start(self.year)

    @property
    def children(self) -> pd.DataFrame:
        return self.tables["children"]

    @property
    def disabilities(self) -> pd.DataFrame:
        return self.tables["disabilities"]

    @property
    def episodes(self) -> pd.DataFrame:
        return self.tables["episodes"]

    @property
    def assessments(self) -> pd.DataFrame:
        return self.tables["assessments"]

    @property
    def assessment_factors(self) -> pd.DataFrame:
        return self.tables["assessment_factors"]

    @property
    def cin_plans(self) -> pd.DataFrame:
        return self.tables["cin_plans"]

    @property
    def section47(self) -> pd.DataFrame:
        return self.tables["section47"]

    @property
    def cp_plans(self) -> pd.DataFrame:
        return self.tables["cp_plans"]

    @property
    def cp_reviews(self) -> pd.DataFrame:
        return self.tables["cp_reviews"]

    @property
    def pre_proceedings(self) -> pd.DataFrame:
        return self.tables["pre_proceedings"]

    def check_tables(self) -> None:
        """Raise :class:`~cinqa.errors.TableError` naming every table, column or dtype that differs from what
        :func:`cinqa.read_return` gives a return of this year (extra columns are allowed).

        Tables edited in a notebook would otherwise be checked wrongly: a dropped column reads as
        a missing value in every row, and a date held as text compares as text.
        """
        problems: list[str] = []
        for table in spec.TABLE_KEYS:
            df = self.tables.get(table)
            if not isinstance(df, pd.DataFrame):
                problems.append(f"there is no table {table!r}" if df is None else
                                f"table {table!r} is a {type(df).__name__}, not a DataFrame")
                continue
            for column, dtype in table_schema(table, self.year).items():
                if column not in df.columns:
                    problems.append(f"{table}.{column} is missing (a {dtype} column)")
                elif str(df[column].dtype) != dtype:
                    problems.append(f"{table}.{column} is {df[column].dtype}, not {dtype}")
        if problems:
            raise TableError(f"the {self.year} return's tables are not as read_return gives them: "
                             + "; ".join(problems))

    def sizes(self) -> pd.Series:
        """Return the number of rows of each table."""
        return pd.Series({name: len(df) for name, df in self.tables.items()}, name="rows")

    def __repr__(self) -> str:
        where = f" from {self.path.name}" if self.path else ""
        return (
            f"<CensusReturn {self.year} LA {self.header.la or '?'}{where}: "
            f"{len(self.children)} children, {len(self.episodes)} episodes, {len(self.issues)} issues>"
        )
