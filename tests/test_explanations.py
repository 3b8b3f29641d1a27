"""Query explanations: the file, matching across runs, merging what was typed into the workbook, the COLLECT note."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

import cinqa
from cinqa import explanations as ex
from cinqa.cli import app
from cinqa.errors import CsvError
from cinqa.files import OutputError, inputs_protected
from cinqa.pseudonymise import return_scrubber
from cinqa.validate import Validation

FIXTURE = Path(__file__).parent / "fixtures" / "cin-2023-24.xml"
# The fixture's queries: 1560Q (C003's FormerUPN), 2887Q (the return's disability codes), 2991Q (C003's episode).
RULES = ["1510", "1560Q", "2887Q", "2991Q"]
HEADER = ",".join(ex.COLUMNS)

runner = CliRunner()


def checked(ret: cinqa.CensusReturn) -> Validation:
    return cinqa.validate(ret, rules=RULES, progress=False)


@pytest.fixture(scope="module")
def run1() -> Validation:
    return checked(cinqa.read_return(FIXTURE))


def with_former_upn(ret: cinqa.CensusReturn, value: str | None) -> cinqa.CensusReturn:
    """Return run 1's return edited as next week's extract: child C003's former UPN changed."""
    children = ret.children.copy()
    children.loc[children["LAchildID"] == "C003", "FormerUPN"] = value
    return dataclasses.replace(ret, tables={**ret.tables, "children": children})


def explanation(v: Validation, rule: str, text: str) -> dict[str, str]:
    """Return a row of the explanations file explaining ``rule``'s query in validation ``v``."""
    q = ex.explain(v, ex.empty()).queries
    row = q[q["rule"] == rule].iloc[0]
    return {"census_year": v.year, "LA": v.ret.header.la, "rule": rule, "LAchildID": row["LAchildID"],
            "row": row["row"], "explanation": text, "who": "A. Analyst", "date": "2024-05-02",
            "values_hash": row["values_hash"]}


# -- matching across runs ------------------------------------------------------------------------


def test_an_explanation_stays_while_its_query_persists_and_is_stale_when_its_values_change_or_it_goes(run1):
    given = pd.DataFrame([explanation(run1, "1560Q", "Former UPN as the previous LA sent it"),
                          explanation(run1, "2991Q", "Strategy discussion only")]).astype("str")
    first = ex.explain(run1, given)
    assert (first.explained, first.unexplained, first.stale) == (2, 1, 0)
    assert first.queries.set_index("rule")["status"].to_dict() == {
        "1560Q": ex.EXPLAINED, "2887Q": ex.UNEXPLAINED, "2991Q": ex.EXPLAINED}

    same = ex.explain(checked(with_former_upn(run1.ret, "A201111111111")), given)
    assert (same.explained, same.unexplained, same.stale) == (2, 1, 0)

    changed = ex.explain(checked(with_former_upn(run1.ret, "B20199999999")), given)
    q = changed.queries.set_index("rule")
    assert q.at["1560Q", "status"] == ex.UNEXPLAINED and q.at["1560Q", "explanation"] == ""
    assert q.at["1560Q", "stale"] == "Former UPN as the previous LA sent it"
    state = changed.explanations.set_index("rule")
    assert state.at["1560Q", "state"] == ex.STALE and state.at["1560Q", "why_stale"] == ex.VALUES_CHANGED
    assert state.at["2991Q", "state"] == ex.CURRENT
    assert (changed.explained, changed.unexplained, changed.stale) == (1, 2, 1)

    gone = ex.explain(checked(with_former_upn(run1.ret, None)), given)
    assert "1560Q" not in set(gone.queries["rule"])
    state = gone.explanations.set_index("rule")
    assert state.at["1560Q", "state"] == ex.STALE and state.at["1560Q", "why_stale"] == ex.GONE
    assert (gone.explained, gone.unexplained, gone.stale) == (1, 1, 1)
    assert gone.summary() == "1 query explained, 1 query unexplained; 1 explanation stale."


def test_explanations_of_another_la_or_year_explain_nothing(run1):
    row = explanation(run1, "2991Q", "Strategy discussion only")
    others = pd.DataFrame([{**row, "LA": "931"}, {**row, "census_year": "2024-25"}]).astype("str")
    got = ex.explain(run1, others)
    assert got.explained == 0 and got.explanations.empty


def test_the_verdict_stays_whatever_is_explained(run1):
    q = ex.explain(run1, ex.empty()).queries
    every = pd.DataFrame([explanation(run1, r, "explained") for r in q["rule"]]).astype("str")
    assert ex.explain(run1, every).unexplained == 0
    assert run1.verdict == checked(run1.ret).verdict


def test_a_pseudonymised_view_names_no_child_and_no_member_of_staff(run1):
    given = pd.DataFrame([explanation(run1, "1560Q", "C003's former UPN came from the previous LA")]).astype("str")
    key = b"k" * 32
    shown = ex.pseudonymise_explained(ex.explain(run1, given), key, return_scrubber(run1.ret, key))
    for frame in (shown.queries, shown.explanations):
        cells = frame.astype("str").to_numpy().ravel().tolist()
        assert not any("C003" in c or "A. Analyst" in c for c in cells)
        assert set(frame["who"]) <= {""} and "values_hash" not in frame
    assert shown.explained == 1 and "former UPN came from the previous LA" in shown.explanations["explanation"].iloc[0]


# -- the file --------------------------------------------------------------------------------


def test_the_file_round_trips_with_crlf_and_formula_like_text_kept_inert(tmp_path: Path):
    rows = pd.DataFrame([
        {"census_year": "2025-26", "LA": "931", "rule": "8863Q", "LAchildID": "C1", "row": "assessments 2.2",
         "explanation": "=HYPERLINK(\"x\") is what was typed, with a comma", "who": "A", "date": "2026-01-05",
         "values_hash": "0123456789abcdef"},
        {"census_year": "2025-26", "LA": "931", "rule": "2886Q", "LAchildID": "", "row": "return",
         "explanation": "line one\nline two", "who": "B", "date": "2026-01-06", "values_hash": "fedcba9876543210"},
    ]).astype("str")
    path = ex.write_explanations(rows, tmp_path / "explanations-2025-26.csv")
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == 3 and b"'=HYPERLINK" in raw
    back = ex.read_explanations(path)
    # Written sorted by rule number: 2886Q first.
    pd.testing.assert_frame_equal(back, rows.iloc[::-1].reset_index(drop=True))


def test_a_missing_file_is_no_explanations_yet(tmp_path: Path):
    assert ex.read_explanations(tmp_path / "explanations-2025-26.csv").empty
    with pytest.raises(CsvError, match="no such explanations file"):
        ex.read_explanations(tmp_path / "explanations-2025-26.csv", missing_ok=False)


def test_the_file_is_never_written_over_an_input(tmp_path: Path):
    path = tmp_path / "explanations-2025-26.csv"
    path.write_text(HEADER + "\n", encoding="utf-8")
    with inputs_protected([path]), pytest.raises(OutputError, match="input"):
        ex.write_explanations(ex.empty(), path)


ROW = "2025-26,931,8863Q,C1,assessments 2.2,Late authorisation agreed,A,2026-01-05,0123456789abcdef"


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("census_year,LA,rule,LAchildID,row,explanation,date\n", 1, "lacks the columns who, values_hash"),
    (HEADER + "\n" + ROW + "\n2025-26,931,,C1,children,Moved,A,2026-01-05,0\n", 3, "has no rule"),
    (HEADER + "\n" + ROW + "\n2025-26,931,8863Q,C1,assessments 2.2,,A,2026-01-05,0\n", 3, "has no explanation"),
    (HEADER + "\n" + ROW + "\n" + ROW.replace("Late authorisation agreed", "Other words") + "\n", 3,
     "explained again with different words \\(first on line 2\\)"),
    (HEADER + "\n" + ROW.replace("2026-01-05", "05/01/2026") + "\n", 2, "'05/01/2026' is not a date"),
    (HEADER + "\n" + ROW + ",extra\n", 2, "has 10 values but the header names 9"),
])
def test_a_bad_file_is_named_with_its_line_and_problem(tmp_path: Path, text: str, line: int, problem: str):
    path = tmp_path / "explanations-2025-26.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CsvError, match=f"^{path}, line {line}: .*{problem}"):
        ex.read_explanations(path)


def test_the_same_explanation_twice_is_one(tmp_path: Path):
    path = tmp_path / "explanations-2025-26.csv"
    path.write_text(f"{HEADER}\r\n{ROW}\r\n{ROW}\r\n", encoding="utf-8")
    assert len(ex.read_explanations(path)) == 1


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path):
    path = tmp_path / "explanations-2025-26.csv"
    path.write_bytes((HEADER + "\n" + ROW.replace("Late", "L\xe4te") + "\n").encode("latin-1"))
    with pytest.raises(CsvError, match="not UTF-8"):
        ex.read_explanations(path)


# -- merging ---------------------------------------------------------------------------------


def typed_rows(*rows: tuple[str, str, str, str, str, str | None]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["rule", "severity", "LAchildID", "row", "values_hash", "explanation"])


def test_merge_adds_updates_keeps_and_never_deletes_on_a_blank():
    day = dt.date(2026, 1, 9)
    before = pd.DataFrame([
        {"census_year": "2025-26", "LA": "931", "rule": r, "LAchildID": c, "row": "children", "explanation": t,
         "who": "A", "date": "2026-01-02", "values_hash": h}
        for r, c, t, h in (("1560Q", "C1", "Moved LA", "h1"), ("1560Q", "C2", "Moved LA", "h2"),
                           ("8525Q", "C3", "Unborn", "h3"), ("8525Q", "C4", "Old words", "h4"))]).astype("str")
    typed = typed_rows(("1560Q", "query", "C1", "children", "h1", "Moved LA"),        # unchanged
                       ("1560Q", "query", "C2", "children", "h2", "Moved LA in May"),  # updated: words
                       ("8525Q", "query", "C3", "children", "h3", None),               # blank: kept
                       ("8525Q", "query", "C4", "children", "h9", "Checked again"),    # updated: values changed
                       ("8670Q", "query", "C5", "episodes 1", "h5", "Agreed with the team"),  # added
                       ("1510", "error", "C6", "children", "h6", "Will fix"))          # an error: skipped
    merged = ex.merge(before, typed, year="2025-26", la="931", who="B", on=day)
    assert (merged.added, merged.updated, merged.unchanged, merged.kept_blank, merged.skipped_errors) == (1, 2, 1, 1, 1)
    assert str(merged).startswith("1 added, 2 updated, 1 unchanged, 1 explanation kept although blank")
    out = merged.explanations.set_index("LAchildID")
    assert len(out) == 5 and "C6" not in out.index
    assert out.loc["C1", ["explanation", "who", "date"]].tolist() == ["Moved LA", "A", "2026-01-02"]
    assert out.loc["C2", ["explanation", "who", "date"]].tolist() == ["Moved LA in May", "B", "2026-01-09"]
    assert out.loc["C3", "explanation"] == "Unborn"
    assert out.loc["C4", ["explanation", "values_hash"]].tolist() == ["Checked again", "h9"]
    assert out.loc["C5", ["rule", "row", "who"]].tolist() == ["8670Q", "episodes 1", "B"]


# -- the note for COLLECT --------------------------------------------------------------------


def test_the_note_groups_explanations_by_rule_with_counts_and_names_no_child():
    ids = [("8863Q", f"C{i}", f"assessments {i}.1") for i in range(1, 6)] + [("2887Q", "", "return")]
    failures = pd.DataFrame({
        "rule": [r for r, _, _ in ids], "severity": "query", "entity": [e.split()[0] for _, _, e in ids],
        "LAchildID": [c or None for _, c, _ in ids],
        "episode": pd.array([int(e.split()[1][0]) if " " in e else None for _, _, e in ids], dtype="Int64"),
        "item": pd.array([1 if " " in e else None for _, _, e in ids], dtype="Int64"),
        "values": [{"n": i} for i in range(len(ids))]})
    hashes = cinqa.failures.identity(failures)["values_hash"].tolist()
    words = ["Authorised late after a complaint", "Authorised late after a complaint", "Manager on leave", None,
             None, "Fewer disabilities recorded this year"]
    given = pd.DataFrame([{"census_year": "2025-26", "LA": "931", "rule": r, "LAchildID": c, "row": row,
                           "explanation": w, "who": "A", "date": "2026-01-02", "values_hash": h}
                          for (r, c, row), w, h in zip(ids, words, hashes) if w]).astype("str")
    text = ex.note_text(ex.match(failures, given), la="931", year="2025-26")
    assert text.splitlines() == [
        "Queries in the CIN census return of LA 931, 2025-26:",
        "2887Q — 1 query, all explained: Fewer disabilities recorded this year",
        "8863Q — 5 queries, 3 explained: Authorised late after a complaint (2); Manager on leave (1); 2 unexplained",
    ]
    assert not any(f"C{i}" in text for i in range(1, 6))
    assert ex.note_text(ex.match(failures.iloc[:0], given), year="2025-26") == (
        "Queries in the CIN census return, 2025-26: none.")


# -- the workbook round trip and the commands ------------------------------------------------------


def test_explanations_typed_into_the_workbook_are_imported_shown_and_noted(tmp_path: Path):
    folder = tmp_path / "returns"
    folder.mkdir()
    xml = shutil.copy(FIXTURE, folder / "cin-2023-24.xml")
    book = tmp_path / "out" / "errors.xlsx"
    assert runner.invoke(app, ["validate", str(xml), "--xlsx", str(book)]).exit_code == 1

    wb = openpyxl.load_workbook(book)
    about = {r[0]: r[1] for r in wb["About"].iter_rows(values_only=True) if r[0]}
    assert about["Queries unexplained"] == 3 and about["Explanations file"] == str(folder / "explanations-2023-24.csv")
    typed = 0
    for ws in wb.worksheets[1:]:
        head = [c.value for c in ws[1]]
        if "explanation" not in head:
            continue
        for r in range(2, ws.max_row + 1):
            if ws.cell(r, head.index("severity") + 1).value == "query":
                ws.cell(r, head.index("explanation") + 1).value = f"Checked with the team ({ws.title})"
                typed += 1
    assert typed == 3
    wb.save(book)

    done = runner.invoke(app, ["explain", "import", str(book), "--who", "A. Analyst"])
    assert done.exit_code == 0, done.output
    assert "3 added, 0 updated, 0 unchanged" in done.output
    file = ex.read_explanations(folder / "explanations-2023-24.csv", missing_ok=False)
    assert sorted(file["rule"]) == ["1560Q", "2887Q", "2991Q"] and set(file["who"]) == {"A. Analyst"}
    again = runner.invoke(app, ["explain", "import", str(book), "--who", "A. Analyst"])
    assert "0 added, 0 updated, 3 unchanged" in again.output

    shown = runner.invoke(app, ["validate", str(xml), "--xlsx", str(tmp_path / "out" / "again.xlsx")])
    assert "Explanations: 3 queries explained, 0 queries unexplained." in shown.output
    cells = openpyxl.load_workbook(tmp_path / "out" / "again.xlsx")["episodes"]
    head = [c.value for c in cells[1]]
    assert cells.cell(2, head.index("explanation") + 1).value == "Checked with the team (episodes)"
    assert cells.cell(2, head.index("explanation status") + 1).value.startswith("explained (A. Analyst, ")

    note = runner.invoke(app, ["notes", str(xml)])
    assert note.exit_code == 0, note.output
    assert "2991Q — 1 query, all explained: Checked with the team (episodes)" in note.output


def test_import_refuses_a_workbook_of_another_census_year(tmp_path: Path):
    xml = shutil.copy(FIXTURE, tmp_path / "cin-2023-24.xml")
    book = tmp_path / "errors.xlsx"
    runner.invoke(app, ["validate", str(xml), "--xlsx", str(book)])
    other = tmp_path / "explanations-2024-25.csv"
    other.write_text(HEADER + "\r\n" + ROW.replace("2025-26", "2024-25") + "\r\n", encoding="utf-8")
    before = other.read_bytes()
    done = runner.invoke(app, ["explain", "import", str(book), "--into", str(other)])
    assert done.exit_code == 2
    assert "holds explanations of census year 2024-25" in done.output and "of a 2023-24 return" in done.output
    assert other.read_bytes() == before


def test_import_refuses_a_pseudonymised_workbook(tmp_path: Path):
    xml = shutil.copy(FIXTURE, tmp_path / "cin-2023-24.xml")
    key = tmp_path / "k.key"
    runner.invoke(app, ["key", "new", str(key)])
    book = tmp_path / "share.xlsx"
    runner.invoke(app, ["validate", str(xml), "--xlsx", str(book), "--pseudonymise", "--key-file", str(key)])
    done = runner.invoke(app, ["explain", "import", str(book), "--into", str(tmp_path / "explanations-2023-24.csv")])
    assert done.exit_code == 2 and "pseudonymised" in done.output
    assert not (tmp_path / "explanations-2023-24.csv").exists()


def test_validate_names_a_bad_explanations_file_with_its_line(tmp_path: Path):
    xml = shutil.copy(FIXTURE, tmp_path / "cin-2023-24.xml")
    bad = tmp_path / "explanations-2023-24.csv"
    bad.write_text(HEADER + "\n" + ROW.replace("8863Q", "") + "\n", encoding="utf-8")
    done = runner.invoke(app, ["validate", str(xml)])
    assert done.exit_code == 2
    assert done.output.strip() == f"cinqa: {bad}, line 2: the row has no rule"


def test_report_takes_the_explanations_file_and_names_a_bad_one_before_rendering(tmp_path: Path, monkeypatch):
    import cinqa.report

    calls = []
    monkeypatch.setattr(cinqa.report, "render_report", lambda *a, **kw: calls.append(kw))
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(f"{HEADER}\r\n{ROW}\r\n", encoding="utf-8")
    bad.write_text("census_year,rule\r\n", encoding="utf-8")
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(FIXTURE), "-o", str(out), "--explanations", str(good)]).exit_code == 0
    assert calls[0]["explanations"] == good
    refused = runner.invoke(app, ["report", str(FIXTURE), "-o", str(out), "--explanations", str(bad)])
    assert refused.exit_code == 2 and f"{bad}, line 1: the header lacks the columns LA" in refused.output
    assert len(calls) == 1
