"""The lookup of children to teams: reading it, its errors by line, and joining it to a failures table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from cinqa.errors import CsvError
from cinqa.failures import FAILURE_COLUMNS
from cinqa.pseudonymise import Pseudonymiser
from cinqa.teams import NO_TEAM, join_teams, pseudonymise_teams, read_teams, team_counts


def failures(*rows) -> pd.DataFrame:
    """A failures table of (rule, severity, child, LAchildID) rows, the other columns filled plainly."""
    df = pd.DataFrame([{"rule": r, "severity": s, "message": "m", "entity": "children", "child": c,
                        "LAchildID": i, "episode": None, "item": None, "fields": "UPN", "values": {"UPN": None},
                        "line": 10} for r, s, c, i in rows], columns=list(FAILURE_COLUMNS))
    for col in ("child", "episode", "item", "line"):
        df[col] = df[col].astype("Int64")
    return df


FAILS = failures(("8500", "error", 1, "C001"), ("8525Q", "query", 1, "C001"), ("1510", "error", 2, "C002"),
                 ("8606", "error", 3, "C404"), ("2886Q", "query", None, None))


def lookup_file(tmp_path: Path, text: str | bytes, name: str = "teams.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_a_lookup_is_read_with_any_accepted_header_spelling(tmp_path):
    path = lookup_file(tmp_path, "LA Child ID,Team Name,Social_Worker,extra\nC001,East,Ann Smith,x\nC002,West,,y\n")
    teams = read_teams(path)
    assert teams.table[["LAchildID", "team", "worker", "line"]].values.tolist() == [
        ["C001", "East", "Ann Smith", 2], ["C002", "West", None, 3]]
    assert teams.changes == () and teams.has_workers and teams.teams() == ["East", "West"]


def test_the_worker_column_is_optional(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "lachildid,team\nC001,East\n"))
    assert teams.table["worker"].isna().all() and not teams.has_workers


def test_children_not_in_the_lookup_are_listed_under_no_team_never_dropped(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "LAchildID,team,worker\nC001,East,Ann\nC002,West,Bo\nC009,North,Cy\n"))
    joined = join_teams(FAILS, teams)
    assert len(joined) == len(FAILS)
    assert joined["team"].tolist() == ["East", "East", "West", NO_TEAM, NO_TEAM]
    assert joined["worker"].tolist()[:3] == ["Ann", "Ann", "Bo"] and joined["worker"].iloc[3:].isna().all()


def test_team_counts_list_every_team_and_the_no_team_group_last(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "LAchildID,team\nC001,East\nC002,West\nC009,Adoption\n"))
    counts = team_counts(FAILS, teams)
    assert counts.values.tolist() == [["Adoption", 0, 0, 0], ["East", 1, 1, 1], ["West", 1, 1, 0],
                                      [NO_TEAM, 1, 1, 1]]
    assert counts[["errors", "queries"]].to_numpy().sum() == len(FAILS)


def test_the_no_team_group_is_listed_when_every_child_has_a_team(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "LAchildID,team\nC001,East\n"))
    counts = team_counts(FAILS.iloc[:2], teams)
    assert counts.values.tolist() == [["East", 1, 1, 1], [NO_TEAM, 0, 0, 0]]


@pytest.mark.parametrize("text, line, problem", [
    ("child,team\nC001,East\n", 1, "no LAchildID column: the header must name LAchildID and team"),
    ("LAchildID,worker\nC001,Ann\n", 1, "no team column"),
    ("LAchildID,Team,team name\nC001,East,West\n", 1, "two columns are team ('Team' and 'team name')"),
    ("LAchildID,team\nC001,East\nC002,\n", 3, "team is blank"),
    ("LAchildID,team\nC001,East\n ,West\n", 3, "LAchildID is blank"),
    ("LAchildID,team\nC001,East\nC002,West\nC001,West\n", 4,
     "this LAchildID is listed on line 2 too, with team 'East', and here with 'West'"),
    ("LAchildID,team,worker\nC001,East,Ann\nC001,East,Bo\n", 3, "with worker 'Ann', and here with 'Bo'"),
    ("LAchildID,team\nC001,East\nC002,West,extra\n", 3, "3 fields, but the header has 2"),
    ("LAchildID,team\nC001,\"East\n", 2, "not valid CSV"),
    (f"LAchildID,team\nC001,{NO_TEAM}\n", 2, "is the name cinqa gives children the lookup does not list"),
    ("LAchildID,team\n", None, "no rows after the header"),
    ("", None, "empty file"),
])
def test_a_bad_lookup_is_refused_naming_file_line_and_problem(tmp_path, text, line, problem):
    path = lookup_file(tmp_path, text)
    with pytest.raises(CsvError) as info:
        read_teams(path)
    assert info.value.line == line and problem in info.value.problem
    assert str(info.value).startswith(f"{path}, line {line}: " if line else f"{path}: ")


def test_a_lookup_that_is_not_utf8_is_refused_at_its_line(tmp_path):
    path = lookup_file(tmp_path, "LAchildID,team\nC001,East\nC002,S\xf8r\n".encode("latin-1"))
    with pytest.raises(CsvError, match=r"teams.csv, line 3: not UTF-8 text .*CSV UTF-8"):
        read_teams(path)


def test_missing_files_and_folders_are_refused(tmp_path):
    with pytest.raises(CsvError, match="file not found"):
        read_teams(tmp_path / "nope.csv")
    with pytest.raises(CsvError, match="is a folder"):
        read_teams(tmp_path)


def test_bom_crlf_and_spaces_are_tolerated_and_changed_values_reported_by_line(tmp_path):
    text = "\ufeffLAchildID,team,worker\r\nC001, East ,Ann\r\nC002,West,Bo\r\n C003,West,Cy \r\n"
    teams = read_teams(lookup_file(tmp_path, text))
    assert teams.table[["LAchildID", "team", "worker"]].values.tolist() == [
        ["C001", "East", "Ann"], ["C002", "West", "Bo"], ["C003", "West", "Cy"]]
    assert teams.changes == ("teams.csv: spaces or line breaks around team removed on line 2",
                             "teams.csv: spaces or line breaks around LAchildID removed on line 4",
                             "teams.csv: spaces or line breaks around worker removed on line 4")


def test_a_clean_file_with_crlf_and_a_bom_reports_no_change(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "\ufeffLAchildID,team\r\nC001,East\r\n\r\n"))
    assert teams.changes == () and teams.table["LAchildID"].tolist() == ["C001"]


def test_a_formula_like_cell_is_read_as_text(tmp_path):
    teams = read_teams(lookup_file(tmp_path, 'LAchildID,team\nC001,"=HYPERLINK(""http://x"",""y"")"\n'))
    assert teams.teams() == ['=HYPERLINK("http://x","y")']


def test_a_child_listed_twice_alike_is_read_once(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "LAchildID,team\nC001,East\nC001,East\n"))
    assert teams.table["LAchildID"].tolist() == ["C001"]


def test_pseudonymised_lookup_has_tokens_scrubbed_teams_and_no_workers(tmp_path):
    p = Pseudonymiser(bytes(range(32)))
    teams = read_teams(lookup_file(tmp_path, "LAchildID,team,worker\nC001,East C002,Ann\nC002,West,Bo\n"))
    shared = pseudonymise_teams(teams, p, p.scrubber([("LAchildID", "C001"), ("LAchildID", "C002")]))
    tokens = [p.token("LAchildID", "C001"), p.token("LAchildID", "C002")]
    assert shared.table["LAchildID"].tolist() == tokens
    assert shared.table["team"].tolist() == [f"East {tokens[1]}", "West"]
    assert shared.table["worker"].isna().all() and not shared.has_workers
    assert teams.table["worker"].tolist() == ["Ann", "Bo"]  # the lookup read stays as it was
    fails = FAILS.assign(LAchildID=FAILS["LAchildID"].map({"C001": tokens[0], "C002": tokens[1]}))
    assert join_teams(fails, shared)["team"].tolist()[:3] == [f"East {tokens[1]}"] * 2 + ["West"]


def test_dates_in_failures_do_not_matter_to_the_join(tmp_path):
    teams = read_teams(lookup_file(tmp_path, "LAchildID,team\nC001,East\n"))
    fails = FAILS.assign(values=[{"CPPstartDate": dt.date(2024, 1, 1)}] * len(FAILS))
    assert join_teams(fails, teams)["values"].tolist() == fails["values"].tolist()
