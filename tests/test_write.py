"""The writer: read -> write -> read gives the same tables for every year; writes are atomic; inputs untouched."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from cinqa import ReturnWriter, read_return, spec, write_return
from test_read import FIXTURE_YEARS, fixture, relabel

SOURCES = {y: ("2013-14" if y not in FIXTURE_YEARS else y) for y in spec.YEARS}


def source(tmp_path: Path, year: str) -> Path:
    """Return a clean file of ``year``: its fixture, or the 2013-14 fixture relabelled."""
    if SOURCES[year] == year:
        return fixture(year)
    path = tmp_path / f"in-{year}.xml"
    path.write_text(relabel(fixture(SOURCES[year]).read_text(), year), encoding="utf-8")
    return path


def assert_same_tables(a, b) -> None:
    assert a.year == b.year
    assert list(a.tables) == list(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name].drop(columns="line"), b.tables[name].drop(columns="line"),
                                      obj=name)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("year", [*spec.SUPPORTED_YEARS, "2026-27"])
def test_round_trip_gives_equal_tables(tmp_path, year):
    src = source(tmp_path, year)
    first = read_return(src)
    out = write_return(first, tmp_path / "out.xml")
    second = read_return(out)
    assert second.issues.empty, second.issues.to_string()
    assert_same_tables(first, second)
    assert second.header == first.header or second.header == dataclasses.replace(first.header, extra=())
    # Writing what was read again gives the same bytes: the writer is deterministic.
    again = write_return(second, tmp_path / "again.xml")
    assert again.read_bytes() == out.read_bytes()


def test_round_trip_keeps_2012_13_initial_and_core_assessments(tmp_path):
    first = read_return(fixture("2012-13"))
    text = write_return(first, tmp_path / "out.xml").read_text()
    for name in ("InitialAssessmentActualStartDate", "InitialAssessmentAuthorisationDate",
                 "CoreAssessmentActualStartDate", "CoreAssessmentAuthorisationDate"):
        assert f"<{name}>" in text
    assert "<Assessments>" not in text and "<ReferralSource>" not in text
    assert read_return(tmp_path / "out.xml").assessments["kind"].astype(str).tolist() == [
        "initial", "core", "initial", "initial"]


def test_round_trip_escapes_markup_in_values(tmp_path):
    ret = read_return(fixture("2023-24"))
    children = ret.children.copy()
    children["LAchildID"] = children["LAchildID"].astype("object")
    children.loc[0, "LAchildID"] = "A&B<1>"
    ret.tables["children"] = children
    ret.header = dataclasses.replace(ret.header, software="Tom & Jerry's <CMS>")
    back = read_return(write_return(ret, tmp_path / "out.xml"))
    assert back.children.loc[0, "LAchildID"] == "A&B<1>"
    assert back.header.software == "Tom & Jerry's <CMS>"
    assert back.episodes["LAchildID"].tolist()[:2] == ["A&B<1>", "A&B<1>"]


def test_chunked_writes_equal_one_write(tmp_path):
    ret = read_return(fixture("2016-17"))
    with ReturnWriter(tmp_path / "chunked.xml", ret.year, ret.header) as w:
        for ids in ([1], [2, 3]):
            w.write_children({n: df[df["child"].isin(ids)] for n, df in ret.tables.items()})
    assert_same_tables(ret, read_return(tmp_path / "chunked.xml"))


def test_failed_write_leaves_no_file(tmp_path):
    ret = read_return(fixture("2023-24"))
    target = tmp_path / "out.xml"
    with pytest.raises(RuntimeError, match="interrupted"):
        with ReturnWriter(target, ret.year, ret.header) as w:
            w.write_children(ret.tables)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    ret = read_return(fixture("2023-24"))
    target = write_return(ret, tmp_path / "out.xml")
    before = sha(target)
    with pytest.raises(KeyboardInterrupt):
        with ReturnWriter(target, ret.year, ret.header) as w:
            w.write_children(ret.tables)
            raise KeyboardInterrupt
    assert sha(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.xml"]


def test_writer_refuses_an_unknown_year(tmp_path):
    with pytest.raises(ValueError, match="2030-31"):
        ReturnWriter(tmp_path / "x.xml", "2030-31", read_return(fixture("2023-24")).header)


@pytest.mark.parametrize("year", FIXTURE_YEARS)
def test_reading_never_modifies_the_input(tmp_path, year):
    src = tmp_path / "in.xml"
    src.write_bytes(fixture(year).read_bytes())
    before, mtime = sha(src), src.stat().st_mtime_ns
    ret = read_return(src)
    write_return(ret, tmp_path / "out.xml")
    read_return(src, year="2025-26")
    assert sha(src) == before and src.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.xml", "out.xml"]



@pytest.mark.parametrize("year", spec.SUPPORTED_YEARS)
def test_round_trip_of_a_generated_return(tmp_path, year):
    synth = pytest.importorskip("cinqa.synth")
    generated = synth.generate(year, children=40, seed=5)
    first = read_return(write_return(generated, tmp_path / "one.xml"))
    second = read_return(write_return(first, tmp_path / "two.xml"))
    assert first.issues.empty and second.issues.empty
    assert_same_tables(first, second)
    assert (tmp_path / "one.xml").read_bytes() == (tmp_path / "two.xml").read_bytes()
