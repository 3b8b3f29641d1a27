"""Table exports: one file per table plus the structural issues, written atomically."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

import cinqa
from cinqa import export
from cinqa.export import atomic_path, write_failures_csv, write_frame, write_tables

FIXTURE = Path(__file__).parent / "fixtures" / "cin-2023-24.xml"


@pytest.fixture(scope="module")
def ret() -> cinqa.CensusReturn:
    return cinqa.read_return(FIXTURE)


def test_write_tables_csv_writes_every_table_and_the_issues(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    paths = write_tables(ret, tmp_path / "out", "csv")
    assert [p.name for p in paths] == [f"{n}.csv" for n in ret.tables] + ["structural_issues.csv"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    children = pd.read_csv(tmp_path / "out" / "children.csv", dtype=str)
    assert children["LAchildID"].tolist() == ["C001", "C002", "C003"]
    assert children["PersonBirthDate"].tolist()[0] == "2015-06-01"
    episodes = pd.read_csv(tmp_path / "out" / "episodes.csv")
    assert len(episodes) == len(ret.episodes) and list(episodes.columns) == list(ret.episodes.columns)


def test_write_tables_parquet_keeps_types(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    write_tables(ret, tmp_path, "parquet")
    back = pd.read_parquet(tmp_path / "cp_plans.parquet")
    assert back["CPPstartDate"].dtype.kind == "M"
    assert back["NumberOfPreviousCPP"].tolist() == ret.cp_plans["NumberOfPreviousCPP"].tolist()
    assert back["CPPstartDate"].tolist() == ret.cp_plans["CPPstartDate"].tolist()
    assert len(pd.read_parquet(tmp_path / "structural_issues.parquet")) == len(ret.issues)


def test_unknown_format_is_refused(ret: cinqa.CensusReturn, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv, parquet"):
        write_tables(ret, tmp_path, "xls")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "failures.csv"
    write_failures_csv(pd.DataFrame({"rule": ["8500"]}), target)
    old = target.read_bytes()

    def explode(df: pd.DataFrame, path: Path) -> None:
        path.write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setitem(export._WRITERS, "csv", explode)
    with pytest.raises(KeyboardInterrupt):
        write_frame(pd.DataFrame({"rule": ["8510"]}), target)
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["failures.csv"]


def test_atomic_path_creates_the_folder_and_renames_on_success(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
