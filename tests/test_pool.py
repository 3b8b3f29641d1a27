"""cinqa.pool and ``cinqa tables`` over many returns: a Parquet store by census year and LA, read back unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import cinqa
from cinqa import pool
from cinqa.cli import app
from cinqa.write import write_return

runner = CliRunner()


@pytest.fixture(scope="module")
def returns(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three synthetic returns as XML: LA 931 and LA 202 in 2024-25, and LA 931 in 2025-26."""
    folder = tmp_path_factory.mktemp("returns")
    made = [("2024-25", "931"), ("2024-25", "202"), ("2025-26", "931")]
    return [write_return(cinqa.synth.generate(year, children=40, seed=3, la=la), folder / f"{la}-{year}.xml")
            for year, la in made]


def test_a_pooled_return_reads_back_as_read_return_gives_it(returns: list[Path], tmp_path: Path) -> None:
    pooled = pool.pool_returns(returns, tmp_path / "store")
    assert pooled.skipped == [] and len(pooled.written) == 3
    assert pool.pooled_returns(tmp_path / "store") == [("2024-25", "202"), ("2024-25", "931"), ("2025-26", "931")]
    for path in returns:
        original = cinqa.read_return(path)
        back = pool.read_pooled(tmp_path / "store", original.year, original.header.la)
        for name, frame in original.tables.items():
            pd.testing.assert_frame_equal(back.tables[name], frame, obj=f"{path.name} {name}")
        assert back.header == original.header
        pd.testing.assert_frame_equal(cinqa.validate(back, progress=False).failures,
                                      cinqa.validate(original, progress=False).failures)


def test_every_table_is_partitioned_and_its_keys_lead_with_year_and_la(returns: list[Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    pool.pool_returns(returns, store)
    for table in pool.STORE_TABLES:
        assert (store / table / "census_year=2024-25" / "la=202").is_dir(), table
    children = pool.read_table(store, "children")
    assert list(children.columns[:3]) == ["census_year", "la", "child"]
    # Child ordinals restart in each return: only with la and census_year does a key name one child.
    assert children.duplicated(["census_year", "child"]).any()
    assert not children.duplicated(["census_year", "la", "child"]).any()


def test_pooling_names_an_unreadable_file_pools_the_rest_and_exits_1(returns: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.xml"
    bad.write_text("<Message><Header>", encoding="utf-8")
    store = tmp_path / "store"
    result = runner.invoke(app, ["tables", str(returns[0]), str(bad), str(returns[2]), "--out", str(store)])
    assert result.exit_code == 1, result.output
    assert f"{bad}" in result.stderr and "(not pooled)" in result.stderr
    assert "Traceback" not in result.output
    assert "Pooled 2 of 3 returns" in result.stdout
    assert pool.pooled_returns(store) == [("2024-25", "931"), ("2025-26", "931")]


def test_pooling_a_folder_again_replaces_its_la_years(returns: list[Path], tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert runner.invoke(app, ["tables", str(returns[0].parent), "--out", str(store)]).exit_code == 0
    again = runner.invoke(app, ["tables", str(returns[0].parent), "--out", str(store)])
    assert again.exit_code == 0, again.output
    assert again.stdout.count("replacing the one in the store") == 3
    assert len(pool.read_table(store, "children")) == sum(len(cinqa.read_return(p).children) for p in returns)


def test_two_files_of_one_la_year_are_refused_naming_both(returns: list[Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy.xml"
    copy.write_bytes(returns[0].read_bytes())
    result = runner.invoke(app, ["tables", str(returns[0]), str(copy), "--out", str(tmp_path / "store")])
    assert result.exit_code == 2
    assert str(copy) in result.stderr and str(returns[0]) in result.stderr and "Traceback" not in result.output


def test_a_pooled_store_is_parquet_only(returns: list[Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["tables", *map(str, returns[:2]), "--out", str(tmp_path / "s"), "--format", "csv"])
    assert result.exit_code == 2 and "Parquet only" in result.stderr
    assert not (tmp_path / "s").exists()


def test_validate_on_spark_refuses_what_it_cannot_write_and_a_folder_that_is_no_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path), "--engine", "spark", "--xlsx", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2 and "--xlsx cannot be used with --engine spark" in result.stderr
    result = runner.invoke(app, ["validate", str(tmp_path), "--engine", "spark"])
    assert result.exit_code == 2 and "not a cinqa store" in result.stderr and "Traceback" not in result.output
