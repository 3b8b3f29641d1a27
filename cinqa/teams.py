"""Read an LA's lookup of children to teams (and workers) and join it to a failures table.

The lookup is a CSV file the LA exports from its case-management system, one row per child. Its
header names the columns; case, spaces, underscores, hyphens and dots in a header are ignored, so
"LA child ID", "la_child_id" and "LAchildID" are the same column. Accepted spellings:

* LAchildID (required): ``LAchildID``, ``child ID``, ``LA child``
* team (required): ``team``, ``team name``
* worker (optional): ``worker``, ``worker name``, ``social worker``, ``allocated worker``,
  ``key worker``, ``case worker``

Any other column is ignored. Every cell is read as text, a formula-like one (``=SUM(A1)``) as
well: nothing from the file is ever evaluated, and every writer makes such text inert. Spaces and
line breaks around a value, a byte-order mark and CRLF line ends are tolerated; a value that
reading changed is reported in :attr:`TeamLookup.changes` (by line, never quoting the value). A
missing column, a blank LAchildID or team, or a child given two different teams or workers is an
error naming the file, the line and the problem.

Children that the lookup does not list are never dropped: their failures go to the explicit group
:data:`NO_TEAM`, as do failures of the return as a whole, which belong to no child.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cinqa.errors import CsvError
from cinqa.files import csv_text
from cinqa.pseudonymise import Pseudonymiser, Scrubber

NO_TEAM = "(no team in the lookup)"
"""The group of failures whose child the lookup does not list (or that belong to no child)."""
LOOKUP_COLUMNS = ("LAchildID", "team", "worker")
HEADERS: Mapping[str, tuple[str, ...]] = {
    "LAchildID": ("lachildid", "childid", "lachild"),
    "team": ("team", "teamname"),
    "worker": ("worker", "workername", "socialworker", "allocatedworker", "keyworker", "caseworker"),
}
"""Accepted header spellings of each column, once case, spaces, underscores, hyphens and dots are removed."""
REQUIRED = ("LAchildID", "team")
TEAM_COUNT_COLUMNS = ("team", "children", "errors", "queries")
_HEADER_NOISE = re.compile(r"[\s_.\-]+")
_SHOWN_LINES = 5


@dataclass(frozen=True)
class TeamLookup:
    """An LA's lookup of children to teams, as read from ``path``.

    ``table`` has one row per child: ``LAchildID``, ``team``, ``worker`` (None where the file has
    no worker column or the cell is blank) and ``line``, the line of the file it was read from.
    ``changes`` says which values reading changed (spaces trimmed), by line.
    """

    path: str
    table: pd.DataFrame
    changes: tuple[str, ...] = ()

    @property
    def has_workers(self) -> bool:
        """Whether any child has a worker."""
        return bool(self.table["worker"].notna().any())

    def teams(self) -> list[str]:
        """List the lookup's teams in name order."""
        return sorted(set(self.table["team"]), key=str.casefold)


def _canonical(header: str) -> str:
    return _HEADER_NOISE.sub("", header).casefold()


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    """Return the place of each lookup column in ``header``; refuse a header without the required ones."""
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        canonical = _canonical(name)
        for column, spellings in HEADERS.items():
            if canonical in spellings:
                if column in found:
                    raise CsvError(path, f"two columns are {column} ({header[found[column]].strip()!r} and "
                                         f"{name.strip()!r}); keep one", 1)
                found[column] = i
    for column in REQUIRED:
        if column not in found:
            spelt = ", ".join(repr(s) for s in HEADERS[column])
            raise CsvError(path, f"no {column} column: the header must name LAchildID and team (worker is "
                                 f"optional); {column} may be spelt {spelt}, in any case and spacing", 1)
    return found


def read_teams(path: str | Path) -> TeamLookup:
    """Read the lookup of children to teams at ``path``, checking every row (see the module's docstring)."""
    path = Path(path)
    reader = csv.reader(io.StringIO(csv_text(path), newline=""), strict=True)
    rows: list[dict[str, object]] = []
    first: dict[str, int] = {}
    trimmed: dict[str, list[int]] = {}
    try:
        header = next(reader, None)
        if header is None:
            raise CsvError(path, "empty file; expected a header naming LAchildID and team")
        where = _columns(path, header)
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise CsvError(path, f"{len(fields)} fields, but the header has {len(header)}", line)
            values: dict[str, str | None] = {}
            for column in LOOKUP_COLUMNS:
                raw = fields[where[column]] if column in where else ""
                value = raw.strip()
                if value != raw:
                    trimmed.setdefault(column, []).append(line)
                values[column] = value or None
            if values["LAchildID"] is None:
                raise CsvError(path, "LAchildID is blank", line)
            if values["team"] is None:
                raise CsvError(path, "team is blank; every child listed needs a team", line)
            if values["team"] == NO_TEAM:
                raise CsvError(path, f"team {NO_TEAM!r} is the name cinqa gives children the lookup does not "
                                     "list; name the team otherwise", line)
            child = values["LAchildID"]
            if child in first:
                earlier = rows[first[child]]
                for column in ("team", "worker"):
                    if earlier[column] != values[column]:
                        raise CsvError(path, f"this LAchildID is listed on line {earlier['line']} too, with "
                                             f"{column} {earlier[column]!r}, and here with {values[column]!r}; "
                                             "a child has one team and one worker", line)
                continue
            first[child] = len(rows)
            rows.append({**values, "line": line})
    except csv.Error as exc:
        raise CsvError(path, f"not valid CSV ({exc})", reader.line_num) from None
    if not rows:
        raise CsvError(path, "no rows after the header")
    dtypes = {"LAchildID": "str", "team": "str", "worker": "object", "line": "int64"}
    table = pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=t) for c, t in dtypes.items()})
    changes = tuple(f"{path.name}: spaces or line breaks around {column} removed on {_lines(lines)}"
                    for column, lines in trimmed.items())
    return TeamLookup(str(path), table, changes)


def _lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:_SHOWN_LINES]))
    more = f" and {len(lines) - _SHOWN_LINES:,} more" if len(lines) > _SHOWN_LINES else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def lookup(teams: TeamLookup | str | Path) -> TeamLookup:
    """Return ``teams`` as a :class:`TeamLookup`, reading it when given its path."""
    return teams if isinstance(teams, TeamLookup) else read_teams(teams)


def join_teams(frame: pd.DataFrame, teams: TeamLookup) -> pd.DataFrame:
    """Return a copy of ``frame`` (a failures table, or any table with LAchildID) with its ``team`` and ``worker``.

    A row whose LAchildID the lookup does not list, or that has none (a failure of the return as a
    whole), gets the team :data:`NO_TEAM` and no worker: it is listed there, never dropped.
    """
    by_child = teams.table.set_index("LAchildID")
    ids = frame["LAchildID"].astype("object")
    out = frame.copy()
    out["team"] = ids.map(by_child["team"]).fillna(NO_TEAM).astype("str")
    out["worker"] = ids.map(by_child["worker"]).astype("object")
    return out


def team_counts(failures: pd.DataFrame, teams: TeamLookup) -> pd.DataFrame:
    """Count failures by team (:data:`TEAM_COUNT_COLUMNS`): children with a failure, errors, queries.

    Every team of the lookup is listed, those with nothing to fix at zero, in name order; the
    :data:`NO_TEAM` group comes last, always, so that a reader sees whether any failure is unowned.
    """
    joined = join_teams(failures, teams)
    severity = joined["severity"].astype("str")
    g = joined.assign(_error=severity.eq("error"), _query=severity.eq("query")).groupby("team")
    counted = pd.DataFrame({"children": g["child"].nunique(), "errors": g["_error"].sum(),
                            "queries": g["_query"].sum()})
    order = [*[t for t in teams.teams() if t != NO_TEAM], NO_TEAM]
    out = counted.reindex(order, fill_value=0).astype("int64").rename_axis("team").reset_index()
    out["team"] = out["team"].astype("str")
    return out.loc[:, list(TEAM_COUNT_COLUMNS)]


def pseudonymise_teams(teams: TeamLookup, key: bytes | Pseudonymiser, scrub: Scrubber | None = None) -> TeamLookup:
    """Return the lookup as pseudonymised outputs may use it: LAchildIDs as tokens, team names scrubbed, no workers.

    Workers are dropped rather than scrubbed: their names are staff's personal data, which the
    scrubber (it knows the return's child identifiers only) would leave as they are.
    """
    p = key if isinstance(key, Pseudonymiser) else Pseudonymiser(key)
    table = p.frame(teams.table)
    table["team"] = (scrub or Scrubber({})).series(table["team"])
    return without_workers(dataclasses.replace(teams, table=table))


def without_workers(teams: TeamLookup) -> TeamLookup:
    """Return the lookup with no worker's name in it, for an output that is pseudonymised."""
    table = teams.table.assign(worker=pd.Series(None, index=teams.table.index, dtype="object"))
    return dataclasses.replace(teams, table=table)
