"""The ``cinqa`` command line: exit codes, outputs, pseudonymised sharing, batches, safety.

Most commands are tested here with their backend function (validate, compare, ...) replaced by a
quick stand-in (``fake_*``) that returns what the real one returns, so each test checks the
command line's own behaviour in a second; ``test_*_real_backend`` tests use the real functions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

import cinqa
import cinqa.benchmarks
import cinqa.report
import cinqa.rules
from cinqa.cli import app
from cinqa.failures import ERRORED_COLUMNS, FAILURE_COLUMNS, summarise
from cinqa.pseudonymise import Pseudonymiser, load_key, new_key
from cinqa.validate import Validation

FIXTURES = Path(__file__).parent / "fixtures"
RETURN_2324 = FIXTURES / "cin-2023-24.xml"
RETURN_1213 = FIXTURES / "cin-2012-13.xml"
IDENTIFIERS = ("C001", "C002", "C003", "A201123456789", "A201987654321", "A201111111111", "OLD01", "OLD02",
               "H873123456789")

runner = CliRunner()


def fake_failures(ret: cinqa.CensusReturn) -> pd.DataFrame:
    """Failures in the ``cinqa.validate`` shape: an error per child with a UPN, a query per episode."""
    rows = []
    for c in ret.children.itertuples():
        if isinstance(c.UPN, str):
            rows.append(("1510", "error", "UPN invalid (wrong check letter at character 1)", "children", c.child,
                         c.LAchildID, None, None, "UPN,PersonBirthDate",
                         {"UPN": c.UPN, "PersonBirthDate": pd.Timestamp(c.PersonBirthDate).date()}, c.line))
    for e in ret.episodes.itertuples():
        rows.append(("8614Q", "query", "Please check: referral source", "episodes", e.child, e.LAchildID,
                     e.episode, e.episode, "CINreferralDate", {"CINreferralDate": e.CINreferralDate.date()},
                     e.line))
    df = pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))
    for col in ("child", "episode", "item", "line"):
        df[col] = df[col].astype("Int64")
    return df


class FakeValidate(list):
    """Stand in for ``cinqa.validate``, remembering the returns it saw; ``errors_off`` keeps queries only."""

    errors_off = False

    def __call__(self, ret: cinqa.CensusReturn) -> Validation:
        self.append(ret)
        failures = fake_failures(ret)
        if self.errors_off:
            failures = failures[failures["severity"] == "query"].reset_index(drop=True)
        return Validation(year=ret.year, ret=ret, failures=failures, summary=summarise(failures),
                          errored=pd.DataFrame(columns=list(ERRORED_COLUMNS)), gx_result={}, checked=())


@pytest.fixture
def fake_validate(monkeypatch: pytest.MonkeyPatch) -> FakeValidate:
    fake = FakeValidate()
    monkeypatch.setattr(cinqa, "validate", fake)
    return fake


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, so a test can show that nothing was written into it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return new_key(tmp_path / "secret.key")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def output_bytes(folder: Path) -> dict[str, bytes]:
    """Every output file's bytes; for workbooks, the bytes of every part inside the zip."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix == ".xlsx":
            with zipfile.ZipFile(p) as z:
                out[str(p)] = b"".join(z.read(n) for n in z.namelist())
        elif p.is_file():
            out[str(p)] = p.read_bytes()
    return out


def assert_no_identifiers(folder: Path) -> None:
    files = output_bytes(folder)
    assert files
    for name, blob in files.items():
        for value in IDENTIFIERS:
            assert value.encode() not in blob, f"{value} found in {name}"


def batch_folder(tmp_path: Path) -> Path:
    """A folder of returns from two LAs and two years, plus one unreadable file."""
    folder = tmp_path / "returns"
    folder.mkdir()
    (folder / "a-201-2023-24.xml").write_bytes(RETURN_2324.read_bytes())
    ret = cinqa.read_return(RETURN_2324)
    cinqa.write_return(dataclasses.replace(ret, header=dataclasses.replace(ret.header, la="931")),
                       folder / "b-931-2023-24.xml")
    (folder / "c-873-2012-13.xml").write_bytes(RETURN_1213.read_bytes())
    (folder / "notes.txt").write_text("not a return; ignored")
    return folder


# -- help, version, usage ---------------------------------------------------------------------


def test_help_lists_every_command_with_examples() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "tables", "report", "compare", "synth", "rules", "key"):
        assert f"  {command}" in result.stdout
    assert "Examples:" in result.stdout and "cinqa validate cin-2023-24.xml" in result.stdout


def test_validate_help_documents_the_exit_status() -> None:
    result = runner.invoke(app, ["validate", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit status: 0 no errors" in text and "2 unreadable input or usage error" in text
    assert "--pseudonymise" in text and "--key-file" in text


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"cinqa {cinqa.__version__}"


def test_no_arguments_shows_help_and_unknown_options_are_usage_errors() -> None:
    assert "Usage" in runner.invoke(app, []).output
    assert runner.invoke(app, ["tables", str(RETURN_2324), "--bogus"]).exit_code == 2
    assert runner.invoke(app, ["tables", str(RETURN_2324), "--out", "x", "--format", "xls"]).exit_code == 2


# -- tables -----------------------------------------------------------------------------------


def test_tables_writes_one_csv_per_table_and_nothing_else(tmp_path: Path, workdir: Path) -> None:
    before, checksum = listing(workdir), digest(RETURN_2324)
    out = tmp_path / "tables"
    result = runner.invoke(app, ["tables", str(RETURN_2324), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{t}.csv" for t in cinqa.read_return(RETURN_2324).tables] + ["structural_issues.csv"])
    children = pd.read_csv(out / "children.csv", dtype=str)
    assert children["LAchildID"].tolist() == ["C001", "C002", "C003"]
    assert "3 children" in result.stdout and result.stderr == ""
    assert digest(RETURN_2324) == checksum and listing(workdir) == before


def test_tables_parquet_pseudonymised_holds_no_identifier(tmp_path: Path, workdir: Path, key_file: Path) -> None:
    out = tmp_path / "tables"
    result = runner.invoke(app, ["tables", str(RETURN_2324), "--out", str(out), "--format", "parquet",
                                 "--pseudonymise", "--key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    assert_no_identifiers(out)
    children = pd.read_parquet(out / "children.parquet")
    p = Pseudonymiser(load_key(key_file))
    assert children["LAchildID"].tolist() == [p.token("LAchildID", c) for c in ("C001", "C002", "C003")]
    assert children["PersonBirthDate"].iloc[0] == pd.Timestamp("2015-06-01")
    episodes = pd.read_parquet(out / "episodes.parquet")
    assert set(episodes["LAchildID"]) <= set(children["LAchildID"])
    assert listing(workdir) == []


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "the file is empty"),
    (b"this is not xml", "line 1: the file is not XML"),
    (b"<Message><Header>", "line 1:"),
    (b"<Other/>", "a CIN census return starts with <Message>"),
])
def test_unreadable_input_exits_2_with_one_clear_line(tmp_path: Path, workdir: Path, content: bytes,
                                                      problem: str) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(content)
    result = runner.invoke(app, ["tables", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cinqa: {bad}") and problem in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and listing(workdir) == []


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tables", str(tmp_path / "absent.xml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "absent.xml: no such file" in result.stderr


# -- keys and pseudonymisation options ------------------------------------------------------------


def test_key_new_creates_a_key_once(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    assert runner.invoke(app, ["key", "new", str(path)]).exit_code == 0
    key = load_key(path)
    again = runner.invoke(app, ["key", "new", str(path)])
    assert again.exit_code == 2 and "never overwritten" in again.stderr
    assert load_key(path) == key


@pytest.mark.parametrize("args", [["--pseudonymise"], ["--key-file", "{key}"]])
def test_pseudonymise_and_key_file_go_together(tmp_path: Path, key_file: Path, args: list[str]) -> None:
    args = [a.replace("{key}", str(key_file)) for a in args]
    result = runner.invoke(app, ["tables", str(RETURN_2324), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and result.stderr.startswith("cinqa: ")
    assert not (tmp_path / "o").exists()


def test_a_bad_key_file_exits_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("too short")
    result = runner.invoke(app, ["tables", str(RETURN_2324), "--out", str(tmp_path / "o"), "--pseudonymise",
                                 "-k", str(bad)])
    assert result.exit_code == 2 and f"cinqa: {bad}:" in result.stderr


# -- validate ---------------------------------------------------------------------------------


def test_validate_one_file_prints_the_summary_and_exits_1_on_errors(fake_validate: list, tmp_path: Path,
                                                                     workdir: Path) -> None:
    checksum = digest(RETURN_2324)
    xlsx, csv = tmp_path / "out" / "errors.xlsx", tmp_path / "out" / "failures.csv"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--xlsx", str(xlsx), "--csv", str(csv)])
    assert result.exit_code == 1, result.output
    assert "LA 201, 2023-24, 3 children" in result.stdout
    assert "1510" in result.stdout and "8614Q" in result.stdout
    assert "Verdict: Not ready to submit (errors)" in result.stdout
    failures = pd.read_csv(csv, dtype=str)
    assert tuple(failures.columns) == FAILURE_COLUMNS and len(failures) == 6
    assert failures["values"].iloc[0] == "UPN=A201123456789; PersonBirthDate=2015-06-01"
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["About", "Summary", "By child", "children", "episodes", "Structural issues"]
    assert wb["children"]["A2"].value == "C001"
    assert sorted(p.name for p in xlsx.parent.iterdir()) == ["errors.xlsx", "failures.csv"]
    assert digest(RETURN_2324) == checksum and listing(workdir) == []
    assert result.stderr == ""


def test_validate_exits_0_when_only_queries_fail(fake_validate: FakeValidate) -> None:
    fake_validate.errors_off = True
    result = runner.invoke(app, ["validate", str(RETURN_2324)])
    assert result.exit_code == 0, result.output
    assert "Verdict: Ready once the queries are explained (queries only)" in result.stdout


def test_validate_passes_the_year_on(fake_validate: list) -> None:
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--year", "2022-23"])
    assert result.exit_code == 1 and fake_validate[-1].year == "2022-23"
    assert runner.invoke(app, ["validate", str(RETURN_2324), "--year", "2023"]).exit_code == 2


def test_validate_unreadable_file_exits_2(fake_validate: list, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<Message>")
    result = runner.invoke(app, ["validate", str(bad), "--xlsx", str(tmp_path / "e.xlsx")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"cinqa: {bad}, line ") and "Traceback" not in result.output
    assert not (tmp_path / "e.xlsx").exists() and fake_validate == []


def test_validate_never_writes_over_an_input(fake_validate: list, tmp_path: Path) -> None:
    target = tmp_path / "cin.csv"  # named as the option's output would be, so only the input guard refuses it
    target.write_bytes(RETURN_2324.read_bytes())
    checksum = digest(target)
    result = runner.invoke(app, ["validate", str(target), "--csv", str(target)])
    assert result.exit_code == 2 and "input file" in result.stderr
    assert digest(target) == checksum


def test_validate_pseudonymised_outputs_hold_no_identifier(fake_validate: list, tmp_path: Path, workdir: Path,
                                                           key_file: Path) -> None:
    out = tmp_path / "share"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--xlsx", str(out / "errors.xlsx"),
                                 "--csv", str(out / "failures.csv"), "--out", str(out / "all"),
                                 "--pseudonymise", "--key-file", str(key_file)])
    assert result.exit_code == 1, result.output
    assert_no_identifiers(out)
    for value in IDENTIFIERS:
        assert value not in result.output
    p = Pseudonymiser(load_key(key_file))
    failures = pd.read_csv(out / "failures.csv", dtype=str)
    assert set(failures["LAchildID"]) == {p.token("LAchildID", "C001"), p.token("LAchildID", "C002"),
                                          p.token("LAchildID", "C003")}
    # Rule results are those of the original return: same rules, rows and children.
    original = fake_failures(cinqa.read_return(RETURN_2324))
    assert failures["rule"].tolist() == original["rule"].tolist()
    assert failures["line"].astype(int).tolist() == original["line"].tolist()
    facts = {r[0]: r[1] for r in openpyxl.load_workbook(out / "errors.xlsx")["About"].iter_rows(values_only=True)
             if r and r[0]}
    assert facts["Pseudonymised"].startswith("yes")
    assert listing(workdir) == []


def test_the_same_child_gets_the_same_token_in_every_file(fake_validate: list, tmp_path: Path,
                                                          key_file: Path) -> None:
    folder = batch_folder(tmp_path)
    (folder / "notes.txt").unlink()
    out = tmp_path / "out"
    runner.invoke(app, ["validate", str(folder), "--out", str(out), "--pseudonymise", "-k", str(key_file)])
    a = pd.read_csv(out / "a-201-2023-24-failures.csv", dtype=str)
    b = pd.read_csv(out / "b-931-2023-24-failures.csv", dtype=str)
    assert a["LAchildID"].tolist() == b["LAchildID"].tolist()
    assert_no_identifiers(out)


def test_validate_a_folder_gives_a_combined_summary_and_per_file_outputs(fake_validate: list, tmp_path: Path,
                                                                         workdir: Path) -> None:
    folder = batch_folder(tmp_path)
    (folder / "d-broken.xml").write_text("<Message><Header></Message>")
    before = {p.name: digest(p) for p in folder.iterdir()}
    out = tmp_path / "checked"
    result = runner.invoke(app, ["validate", str(folder), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "d-broken.xml" in result.stderr and "Traceback" not in result.output
    for name in ("a-201-2023-24.xml", "b-931-2023-24.xml", "c-873-2012-13.xml", "d-broken.xml"):
        assert name in result.stdout
    summary = pd.read_csv(out / "summary.csv", dtype={"LA": str})
    assert list(summary.columns[:8]) == ["file", "LA", "year", "children", "errors", "queries",
                                         "structural_issues", "verdict"]
    assert summary["LA"].tolist()[:3] == ["201", "931", "873"]
    assert summary["year"].tolist()[:3] == ["2023-24", "2023-24", "2012-13"]
    assert summary["verdict"].tolist() == ["errors", "errors", "errors", "unreadable"]
    assert summary["children"].tolist()[:3] == [3, 3, 2]
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "summary.csv", "summary.xlsx",
        *(f"{s}{x}" for s in ("a-201-2023-24", "b-931-2023-24", "c-873-2012-13") for x in (".xlsx", "-failures.csv")),
    ])
    assert openpyxl.load_workbook(out / "summary.xlsx")["Returns"]["H5"].value == "unreadable"
    assert {p.name: digest(p) for p in folder.iterdir()} == before and listing(workdir) == []


def test_validate_several_files_writes_the_combined_summary(fake_validate: list, tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(RETURN_2324), str(RETURN_1213), "--csv", str(tmp_path / "s.csv"),
                                 "--xlsx", str(tmp_path / "s.xlsx")])
    assert result.exit_code == 1, result.output
    summary = pd.read_csv(tmp_path / "s.csv")
    assert summary["file"].tolist() == [str(RETURN_2324), str(RETURN_1213)]
    ws = openpyxl.load_workbook(tmp_path / "s.xlsx")["Returns"]
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref == "A1:I3"


def test_an_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "no .xml census files" in result.stderr


def test_validate_html_hands_the_files_and_key_to_the_report(fake_validate: list, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, key_file: Path) -> None:
    calls = fake_function(monkeypatch, cinqa.report, "render_report")
    html = tmp_path / "r.html"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--html", str(html), "--pseudonymise",
                                 "-k", str(key_file)])
    assert result.exit_code == 1, result.output
    (args, kwargs), = calls
    assert args == ([RETURN_2324], html)
    given = kwargs.pop("validations")
    assert kwargs == {"year": None, "pseudonymise": True, "key": load_key(key_file)}
    assert len(fake_validate) == 1 and [v.ret for v in given] == fake_validate  # validated once, and handed over


def test_validate_html_shows_the_validation_it_made_without_validating_again(fake_validate: list,
                                                                           tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--html", str(html)])
    assert result.exit_code == 1, result.output
    # The stand-in's messages reach the page: the report's kernel did not validate the file itself.
    assert "Please check: referral source" in html.read_text(encoding="utf-8")
    assert len(fake_validate) == 1


# -- commands over other modules --------------------------------------------------------------


def fake_function(monkeypatch: pytest.MonkeyPatch, owner: Any, func: str, result: Any = None) -> list:
    """Replace ``owner.func`` by a stand-in that records its calls and returns ``result``."""
    calls: list = []

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        if func == "render_report":
            Path(args[1]).write_text("<html>report</html>")
        return result

    monkeypatch.setattr(owner, func, record)
    return calls


def test_report_calls_render_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_function(monkeypatch, cinqa.report, "render_report")
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(RETURN_2324), str(RETURN_1213), "-o", str(out), "--year", "2023-24"])
    assert result.exit_code == 0, result.output
    assert calls == [(([RETURN_2324, RETURN_1213], out), {"year": "2023-24", "pseudonymise": False, "key": None})]
    assert out.read_text() == "<html>report</html>"


def test_compare_prints_and_writes_the_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"measure": ["referrals"], "2022-23": [10], "2023-24": [12]})
    comparison = types.SimpleNamespace(summary=lambda: {"measures": frame}, to_frames=lambda: {"measures": frame},
                                       notes=[], national=NO_BENCHMARKS)
    calls = fake_function(monkeypatch, cinqa, "compare", result=comparison)
    result = runner.invoke(app, ["compare", str(RETURN_1213), str(RETURN_2324), "--out", str(tmp_path / "c"),
                                 "--threshold", "0.2"])
    assert result.exit_code == 0, result.output
    (args, kwargs), = calls
    assert [r.year for r in args[0]] == ["2012-13", "2023-24"] and kwargs == {"threshold": 0.2}
    assert "referrals" in result.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c" / "measures.csv"), frame)


NO_BENCHMARKS = pd.DataFrame(columns=list(cinqa.benchmarks.BENCHMARK_COLUMNS))


def fake_comparison(shown: dict[str, pd.DataFrame]) -> types.SimpleNamespace:
    return types.SimpleNamespace(summary=lambda: shown, to_frames=lambda: shown, notes=[], national=NO_BENCHMARKS)


@pytest.mark.parametrize(("given", "population"), [
    (["61200"], 61200.0),
    (["61,200"], 61200.0),
    (["2012-13=60900", "--population", "2023-24=61_200"], {"2012-13": 60900.0, "2023-24": 61200.0}),
])
def test_compare_takes_one_population_or_one_per_year_and_a_comparators_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: list[str], population: Any) -> None:
    calls = fake_function(monkeypatch, cinqa, "compare", result=fake_comparison({}))
    neighbours = tmp_path / "n.csv"
    result = runner.invoke(app, ["compare", str(RETURN_1213), str(RETURN_2324), "--population", *given,
                                 "--comparators", str(neighbours)])
    assert result.exit_code == 0, result.output
    (_, kwargs), = calls
    assert kwargs == {"population": population, "comparators": neighbours}


@pytest.mark.parametrize(("given", "problem"), [
    (["lots"], "--population 'lots': 'lots' is not a number of children"),
    (["0"], "--population '0': the number of children must be above 0"),
    (["2023-24=61200", "--population", "61200"], "give one number for every year, or YEAR=N for each year"),
    (["2023-4=61200"], "'2023-4' is not a census year"),
    (["2023-24=1", "--population", "2023-24=2"], "2023-24 is given twice"),
])
def test_a_bad_population_exits_2_saying_what_is_wrong(monkeypatch: pytest.MonkeyPatch, given: list[str],
                                                        problem: str) -> None:
    calls = fake_function(monkeypatch, cinqa, "compare", result=fake_comparison({}))
    result = runner.invoke(app, ["compare", str(RETURN_2324), "--population", *given])
    assert result.exit_code == 2 and problem in result.stderr and calls == []


def test_report_passes_the_population_and_refuses_a_bad_comparators_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_function(monkeypatch, cinqa.report, "render_report")
    neighbours = tmp_path / "n.csv"
    neighbours.write_text("comparator,census_year,indicator,value\nN1,2023-24,re_referral_share,21\n", "utf-8")
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(RETURN_2324), "-o", str(out), "--population", "2023-24=61200",
                                 "--comparators", str(neighbours)])
    assert result.exit_code == 0, result.output
    (_, kwargs), = calls
    assert kwargs["population"] == {"2023-24": 61200.0} and kwargs["comparators"] == neighbours
    neighbours.write_text("comparator,census_year,indicator,value\nN1,2023-24,referrals,21\n", "utf-8")
    result = runner.invoke(app, ["report", str(RETURN_2324), "-o", str(tmp_path / "s.html"), "--comparators",
                                 str(neighbours)])
    assert result.exit_code == 2 and "n.csv, line 2: indicator 'referrals' is not one of" in result.stderr
    assert len(calls) == 1


# -- --teams ----------------------------------------------------------------------------------------

TEAMS = "LAchildID,team,worker\nC001,East,Ann Smith\nC002,West ,Bo Jones\n"


def teams_file(tmp_path: Path, text: str = TEAMS) -> Path:
    path = tmp_path / "teams.csv"
    path.write_text(text, "utf-8")
    return path


def test_validate_teams_adds_a_sheet_per_team_and_says_what_reading_the_lookup_changed(
        fake_validate: list, tmp_path: Path) -> None:
    xlsx = tmp_path / "w.xlsx"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--xlsx", str(xlsx), "--teams",
                                 str(teams_file(tmp_path))])
    assert result.exit_code == 1, result.output
    assert "cinqa: note: teams.csv: spaces or line breaks around team removed on line 3" in result.stderr
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["About", "Summary", "By child", "East", "West", "(no team in the lookup)", "children",
                             "episodes", "Structural issues"]
    assert [r[:3] for r in wb["East"].iter_rows(values_only=True)] == [("team", "LAchildID", "worker"),
                                                                       ("East", "C001", "Ann Smith")]


def test_validate_teams_in_a_folder_gives_each_files_report_its_team_sheets(fake_validate: list,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "checked"
    result = runner.invoke(app, ["validate", str(batch_folder(tmp_path)), "--out", str(out), "--teams",
                                 str(teams_file(tmp_path))])
    assert result.exit_code == 1, result.output
    assert "West" in openpyxl.load_workbook(out / "a-201-2023-24.xlsx").sheetnames


def test_validate_teams_pseudonymised_names_no_child_nor_worker(fake_validate: list, tmp_path: Path,
                                                                 key_file: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--xlsx", str(out / "p.xlsx"), "--teams",
                                 str(teams_file(tmp_path)), "--pseudonymise", "-k", str(key_file)])
    assert result.exit_code == 1, result.output
    assert "East" in openpyxl.load_workbook(out / "p.xlsx").sheetnames
    assert_no_identifiers(out)
    assert not any(b"Ann Smith" in blob or b"Bo Jones" in blob for blob in output_bytes(out).values())


@pytest.mark.parametrize("args", [["--csv", "f.csv"], []])
def test_teams_without_an_output_it_feeds_is_a_usage_error(fake_validate: list, tmp_path: Path, args: list[str],
                                                           workdir: Path) -> None:
    result = runner.invoke(app, ["validate", str(RETURN_2324), *args, "--teams", str(teams_file(tmp_path))])
    assert result.exit_code == 2 and "--teams adds worklists to the Excel report" in result.stderr
    assert listing(workdir) == [] and fake_validate == []


def test_a_bad_teams_file_is_refused_with_its_line_before_any_work(fake_validate: list, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bad = teams_file(tmp_path, "LAchildID,team\nC001,East\nC002,\n")
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--xlsx", str(tmp_path / "w.xlsx"), "--teams",
                                 str(bad)])
    assert result.exit_code == 2 and f"cinqa: {bad}, line 3: team is blank" in result.stderr
    assert fake_validate == [] and not (tmp_path / "w.xlsx").exists()
    calls = fake_function(monkeypatch, cinqa.report, "render_report")
    result = runner.invoke(app, ["report", str(RETURN_2324), "-o", str(tmp_path / "r.html"), "--teams", str(bad)])
    assert result.exit_code == 2 and "teams.csv, line 3: team is blank" in result.stderr and calls == []


def test_report_and_validate_html_pass_the_teams_to_the_report(fake_validate: list, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_function(monkeypatch, cinqa.report, "render_report")
    teams = teams_file(tmp_path)
    result = runner.invoke(app, ["report", str(RETURN_2324), "-o", str(tmp_path / "r.html"), "--teams", str(teams)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--html", str(tmp_path / "v.html"), "--teams",
                                 str(teams)])
    assert result.exit_code == 1, result.output
    assert [kwargs["teams"] for _, kwargs in calls] == [teams, teams]


def test_compare_tables_fit_the_terminal_without_wrapping_a_header(monkeypatch: pytest.MonkeyPatch) -> None:
    years = ["2022-23", "2023-24", "2024-25", "2025-26"]
    wide = pd.DataFrame([{"description": "Re-referrals within 12 months as a percentage of referrals",
                          "unit": "percent", **{y: 15.7 for y in years},
                          **{f"{k} {y}": -8.4 for y in years[1:] for k in ("change", "% change")}, "flag": True}])
    many = pd.DataFrame([{name: 319 for name in ("earlier_year", "later_year", "children_earlier", "children_later",
                                                 "matched_by_LAchildID", "matched_by_UPN", "only_earlier",
                                                 "only_later", "open_at_earlier_reference", "findings")}] * 3)
    fake_function(monkeypatch, cinqa, "compare", result=fake_comparison({"Headline": wide, "Continuity": many}))
    result = runner.invoke(app, ["compare", str(RETURN_2324)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 160
    for header in [*wide.columns, *many.columns]:
        assert any(header in line for line in lines), header
    assert any("percentage of" in line for line in lines) and "Re-referrals within 12 months" in result.stdout


def test_synth_passes_its_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_function(monkeypatch, cinqa.synth, "generate_file")
    out = tmp_path / "s.xml"
    result = runner.invoke(app, ["synth", "2023-24", "--children", "7", "--seed", "3", "--la", "201", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert calls == [((out, "2023-24"), {"children": 7, "seed": 3, "la": "201"})]


@pytest.mark.parametrize(("args", "problem"), [
    (["1999-00"], "not a census year synth can generate"),
    (["2023-24", "--la", "999"], "not a local authority code"),
    (["2023-24", "--truth", "t.csv"], "use it with --errors"),
])
def test_synth_refuses_bad_options(tmp_path: Path, workdir: Path, args: list[str], problem: str) -> None:
    result = runner.invoke(app, ["synth", *args, "-o", str(tmp_path / "s.xml")])
    assert result.exit_code == 2 and problem in result.stderr
    assert listing(tmp_path) == ["cwd"]


def test_synth_with_errors_writes_the_return_and_the_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    truth = pd.DataFrame({"rule": ["8500"], "LAchildID": ["C001"], "child": [1]})
    calls = fake_function(monkeypatch, cinqa.synth, "generate", result=(cinqa.read_return(RETURN_2324), truth))
    out, truth_csv = tmp_path / "s.xml", tmp_path / "t.csv"
    result = runner.invoke(app, ["synth", "2023-24", "-n", "3", "--errors", "0.1", "-o", str(out),
                                 "--truth", str(truth_csv)])
    assert result.exit_code == 0, result.output
    assert calls == [(("2023-24",), {"children": 3, "seed": 0, "la": "931", "errors": 0.1})]
    assert len(cinqa.read_return(out).children) == 3
    pd.testing.assert_frame_equal(pd.read_csv(truth_csv, dtype={"rule": str, "LAchildID": str}), truth)


def test_an_interrupt_leaves_no_half_written_output(tmp_path: Path, fake_validate: list,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cinqa import export

    def interrupted(df: pd.DataFrame, path: Path) -> None:
        path.write_text("rule,severity\n1510,")
        raise KeyboardInterrupt

    monkeypatch.setitem(export._WRITERS, "csv", interrupted)
    out = tmp_path / "out"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--csv", str(out / "f.csv")])
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert listing(out) == []


def test_rules_lists_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"rule": ["8500"], "severity": ["error"], "message": ["LA Child ID missing"]})
    calls = fake_function(monkeypatch, cinqa.rules, "list_rules", result=frame)
    result = runner.invoke(app, ["rules", "--year", "2024-25", "--csv", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    assert calls == [(("2024-25",), {})]
    assert "LA Child ID missing" in result.stdout and "1 rules in 2024-25" in result.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "r.csv", dtype=str), frame)


# -- with the real backends ---------------------------------------------------------------------


def test_synth_real_backend_injects_errors(tmp_path: Path) -> None:
    out, truth = tmp_path / "s.xml", tmp_path / "truth.csv"
    result = runner.invoke(app, ["synth", "2023-24", "-n", "30", "--seed", "2", "--errors", "0.2", "-o", str(out),
                                 "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    assert len(cinqa.read_return(out).children) == 30
    assert len(pd.read_csv(truth)) > 0


def test_synth_real_backend_writes_a_readable_return(tmp_path: Path, workdir: Path) -> None:
    out = tmp_path / "synth" / "s.xml"
    result = runner.invoke(app, ["synth", "2023-24", "--children", "20", "--seed", "5", "--la", "201", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ret = cinqa.read_return(out)
    assert len(ret.children) == 20 and ret.header.la == "201" and ret.year == "2023-24"
    assert listing(tmp_path / "synth") == ["s.xml"] and listing(workdir) == []


def test_synth_real_backend_writes_a_provisional_year_with_pre_proceedings(tmp_path: Path) -> None:
    out = tmp_path / "s.xml"
    result = runner.invoke(app, ["synth", "2026-27", "--children", "400", "--seed", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ret = cinqa.read_return(out)
    assert ret.year == "2026-27" and ret.issues.empty and len(ret.children) == 400
    assert not ret.tables["pre_proceedings"].empty


def test_validate_real_backend_pseudonymised_keeps_the_rule_results(tmp_path: Path, workdir: Path,
                                                                    key_file: Path) -> None:
    from cinqa.validate import validate

    out = tmp_path / "share"
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--out", str(out), "--csv", str(out / "f.csv"),
                                 "--pseudonymise", "--key-file", str(key_file)])
    original = validate(cinqa.read_return(RETURN_2324)).failures
    assert result.exit_code == (1 if (original["severity"] == "error").any() else 0), result.output
    assert_no_identifiers(out)
    shared = pd.read_csv(out / "f.csv", dtype=str)
    assert shared["rule"].tolist() == original["rule"].astype(str).tolist()
    assert shared["line"].fillna("").tolist() == original["line"].astype("string").fillna("").tolist()
    wb = openpyxl.load_workbook(out / "cin-2023-24.xlsx")
    assert wb.sheetnames[:2] == ["About", "Summary"] and wb.sheetnames[-1] == "Structural issues"
    assert listing(workdir) == []


def test_rules_real_backend() -> None:
    result = runner.invoke(app, ["rules", "--year", "2023-24"])
    assert result.exit_code == 0, result.output
    assert "8500" in result.stdout and "LA Child ID missing" in result.stdout


def test_compare_real_backend_pseudonymised_keeps_continuity(tmp_path: Path, workdir: Path, key_file: Path) -> None:
    ret = cinqa.read_return(RETURN_2324, year="2022-23")
    earlier = tmp_path / "cin-2022-23.xml"
    cinqa.write_return(dataclasses.replace(ret, header=dataclasses.replace(ret.header, year=2023,
                                                                           reference_date=None)), earlier)
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(earlier), str(RETURN_2324), "--out", str(out), "--pseudonymise",
                                 "-k", str(key_file)])
    assert result.exit_code == 0, result.output
    assert_no_identifiers(out)
    summary = pd.read_csv(out / "continuity_summary.csv")
    assert summary[["children_earlier", "matched_by_LAchildID", "only_later"]].values.tolist() == [[3, 3, 0]]
    assert listing(workdir) == []


def test_report_real_backend_pseudonymised_html_holds_no_identifier(tmp_path: Path, workdir: Path,
                                                                    key_file: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", str(RETURN_2324), "-o", str(out / "r.html"), "--pseudonymise",
                                 "-k", str(key_file)])
    assert result.exit_code == 0, result.output
    assert b"<html" in (out / "r.html").read_bytes()[:2000].lower()
    assert_no_identifiers(out)
    assert listing(workdir) == []


@pytest.mark.parametrize("args", [
    ["validate", str(RETURN_2324), "--xlsx", "OUT/errors.csv"],
    ["validate", str(RETURN_2324), "--csv", "OUT/failures.xlsx"],
    ["validate", str(RETURN_2324), "--html", "OUT/report.xlsx"],
    ["report", str(RETURN_2324), "-o", "OUT/report.pdf"],
    ["synth", "2023-24", "-n", "2", "-o", "OUT/synthetic.csv"],
    ["synth", "2023-24", "-n", "2", "--errors", "0.5", "-o", "OUT/s.xml", "--truth", "OUT/truth.xlsx"],
    ["rules", "--csv", "OUT/rules"],
])
def test_an_output_with_the_wrong_extension_is_refused_before_any_work(args: list[str], tmp_path: Path,
                                                                        fake_validate: list) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, [a.replace("OUT", str(out)) for a in args])
    assert result.exit_code == 2, result.output
    wrong = [a for a in args if a.startswith("OUT/")][-1].replace("OUT/", "")
    assert "must end in ." in result.stderr and wrong in result.stderr
    assert list(out.iterdir()) == [] and fake_validate == []


def test_an_output_extension_is_matched_whatever_its_case(tmp_path: Path, fake_validate: list) -> None:
    result = runner.invoke(app, ["validate", str(RETURN_2324), "--xlsx", str(tmp_path / "ERRORS.XLSX")])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "ERRORS.XLSX").is_file()


def test_validate_real_backend_prints_structural_issues_first_with_their_lines(tmp_path: Path) -> None:
    text = RETURN_2324.read_text("utf-8").replace("<ReferenceDate>2024-03-31</ReferenceDate>",
                                                  "<ReferenceDate>2023-03-31</ReferenceDate>")
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace("</LAchildID>", "</LAchildID><Shoe>9</Shoe>", 1), "utf-8")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "2 structural issues (lines of bad.xml):" in out
    assert "line 7, error: <ReferenceDate> 2023-03-31 falls in the 2022-23 census" in out
    assert "unknown element <Shoe>" in out
    assert out.index("structural issues") < out.index("severity") < out.index("Verdict: Not fully checked")


def test_rules_real_backend_shows_the_guidance_beside_the_message() -> None:
    result = runner.invoke(app, ["rules", "--year", "2024-25", "--guidance"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    head = next(line for line in result.stdout.splitlines() if "severity" in line)
    assert "how to fix" in head and "message" in head and "note" not in head
    text = " ".join(result.stdout.split())
    entry = next(e for e in cinqa.rules.rules_for_year("2024-25") if e.rule == "8805")
    assert " ".join(entry.guidance.split()[:6]) in text and "A CIN case cannot have a CIN closure date" in text


def test_rules_real_backend_shows_status_and_notes() -> None:
    result = runner.invoke(app, ["rules", "--year", "2012-13"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    head = next(line for line in result.stdout.splitlines() if "severity" in line)
    assert "status" in head and "note" in head
    assert "Provisional code and wording" in result.stdout
    assert "U unverified" in result.stdout
