"""Hostile and malformed input: a clear ReadError or an issue row, never a crash, a hang, a file or network access."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

import cinqa.pseudonymise
import cinqa.read
from cinqa import read_return
from cinqa.errors import ReadError
from hostile.corpus import (BASE, BASE_FILE, BASE_TEXT, CASES, NO_LINE, Case, Context, huge_attribute_file, huge_text_file,
                            replicated_file, swap, truncations)

pytestmark = pytest.mark.timeout(60)
CINQA = str(Path(sys.executable).with_name("cinqa"))


class Listener:
    """A local TCP port that records any connection, to prove the parser (C code included) never dials out."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/secret.dtd"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener():
    lst = Listener()
    yield lst
    lst.close()
    assert lst.connections == 0


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, listener) -> Context:
    secret = tmp_path_factory.mktemp("secret") / "sentinel.txt"
    secret.write_text(f"SENTINEL-{uuid.uuid4().hex}", encoding="utf-8")
    return Context(sentinel=secret, url=listener.url)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any Python-level attempt to reach the network while a test runs."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def base():
    return read_return(BASE_FILE)


def everything_said(ret) -> str:
    """All text a return holds, to search for leaked secrets."""
    parts = [ret.issues.astype(str).to_csv(), repr(ret.header)]
    parts += [df.astype(str).to_csv() for df in ret.tables.values()]
    return "\n".join(parts)


def assert_same_tables(ret, base) -> None:
    assert ret.issues.empty, ret.issues.to_string()
    for name, df in base.tables.items():
        pd.testing.assert_frame_equal(ret.tables[name].drop(columns="line"), df.drop(columns="line"), obj=name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_case(tmp_path, ctx, listener, base, case: Case):
    path = tmp_path / f"{case.name}.xml"
    path.write_bytes(case.build(ctx))
    secret = ctx.sentinel.read_text()
    if case.error is not None:
        with pytest.raises(ReadError) as info:
            read_return(path)
        err = info.value
        assert err.path == str(path)
        assert re.search(case.error, err.problem), err.problem
        if case.line == NO_LINE:
            assert err.line is None
        elif case.line is not None:
            assert err.line == case.line, str(err)
        expected = f"{path}, line {err.line}: " if err.line else f"{path}: "
        assert str(err) == expected + err.problem
        assert secret not in str(err)
        assert "Traceback" not in str(err)
    else:
        ret = read_return(path)
        said = everything_said(ret)
        assert secret not in said
        if case.same:
            assert_same_tables(ret, base)
        if case.issue is not None:
            element, problem = case.issue
            rows = ret.issues[ret.issues["element"] == element]
            assert len(rows) >= 1, ret.issues.to_string()
            assert rows["problem"].str.contains(problem, regex=True).any(), rows["problem"].tolist()
            assert rows["line"].notna().all()
            assert len(ret.children) >= 1
    assert listener.connections == 0


def test_latin1_declared_values_are_decoded(tmp_path, ctx):
    (case,) = [c for c in CASES if c.name == "latin1-declared"]
    path = tmp_path / "latin1.xml"
    path.write_bytes(case.build(ctx))
    assert read_return(path).header.software == "Système"


def test_a_doctype_inside_cdata_is_a_value(tmp_path, ctx):
    (case,) = [c for c in CASES if c.name == "doctype-in-cdata"]
    path = tmp_path / "cdata.xml"
    path.write_bytes(case.build(ctx))
    ret = read_return(path)
    assert ret.header.software == "<!DOCTYPE Message>" and ret.issues.empty


def test_attribute_values_are_reported_not_lost(tmp_path, ctx):
    (case,) = [c for c in CASES if c.name == "attribute"]
    path = tmp_path / "attr.xml"
    path.write_bytes(case.build(ctx))
    issues = read_return(path).issues
    assert issues["value"].tolist() == ["secret"] and issues["line"].tolist() == [20]


@pytest.mark.parametrize("cut", truncations())
def test_truncated_file(tmp_path, cut):
    path = tmp_path / "cut.xml"
    path.write_bytes(BASE[:cut])
    with pytest.raises(ReadError) as info:
        read_return(path)
    problem = info.value.problem
    assert re.search(r"truncated or malformed XML|not well-formed XML|not XML|has no element", problem), problem
    assert str(info.value).startswith(f"{path}, line ") or str(info.value).startswith(f"{path}: ")
    assert info.value.line is None or 1 <= info.value.line <= BASE[:cut].count(b"\n") + 1


def test_whole_file_is_fine():
    assert truncations()[-1] < len(BASE) and len(truncations()) == 20


@pytest.mark.timeout(120)
def test_huge_text_node_is_refused_quickly(tmp_path):
    # libxml2 without huge_tree stops at a 10 MB text node, so the parser never holds more than that:
    # a 1 GB node fails the same way, after reading its first 10 MB (measured here with 50 MB).
    path = huge_text_file(tmp_path / "huge.xml", megabytes=50)
    assert path.stat().st_size > 50 * 2**20
    with pytest.raises(ReadError) as info:
        read_return(path)
    assert info.value.line == 22
    assert info.value.problem.startswith("a value is too large to be a census value")


@pytest.mark.timeout(120)
def test_huge_attribute_is_refused_at_its_line(tmp_path):
    # libxml2 gives up on an attribute past 10 MB at the end of the file; the error names the attribute's line.
    path = huge_attribute_file(tmp_path / "huge.xml", megabytes=11)
    with pytest.raises(ReadError) as info:
        read_return(path)
    assert info.value.problem.startswith("a value is too large to be a census value")
    assert info.value.line == BASE[:BASE.index(b"<ReferralNFA>")].count(b"\n") + 1


def test_missing_or_unreadable_paths(tmp_path):
    with pytest.raises(ReadError, match="no such file"):
        read_return(tmp_path / "nope.xml")
    with pytest.raises(ReadError, match="not a regular file"):
        read_return(tmp_path)


# -- memory stays bounded ------------------------------------------------------------------------


def retained_children(monkeypatch, path: Path) -> tuple[int, int, int]:
    """Read ``path``; return the most children <Children> ever held, the most read children it kept
    (those before the one just read) and how many were read."""
    held, kept = [0], [0]
    original = cinqa.read._Reader._child

    def watch(self, elem):
        original(self, elem)
        parent = elem.getparent()
        if parent is not None:
            held[0] = max(held[0], len(parent))
            kept[0] = max(kept[0], parent.index(elem))

    monkeypatch.setattr(cinqa.read._Reader, "_child", watch)
    ret = read_return(path)
    return held[0], kept[0], len(ret.children)


def test_elements_are_freed_while_reading(tmp_path, monkeypatch):
    small = retained_children(monkeypatch, replicated_file(tmp_path / "small.xml", 2_000))
    large = retained_children(monkeypatch, replicated_file(tmp_path / "large.xml", 20_000))
    assert small[2] == 2_001 and large[2] == 20_001
    # Children already read are freed in batches of _BATCH (after one XPath looks for attributes in
    # the batch); beyond them the tree holds only the parser's look-ahead (children parsed from the
    # current input chunk, not yet reported): the same handful whatever the file's size.
    batch = cinqa.read._BATCH
    assert small[1] == large[1] < batch
    assert small[0] <= batch + 64 and large[0] <= batch + 64


def test_attributes_are_found_in_any_batch(tmp_path):
    # Children are checked for attributes a batch at a time, and only once an '=' has been read.
    text = replicated_file(tmp_path / "many.xml", 900).read_text()
    pos = -1
    for _ in range(700):
        pos = text.index("<Child>", pos + 1)
    text = text[:pos] + '<Child note="x=1">' + text[pos + len("<Child>"):]
    path = tmp_path / "attr.xml"
    path.write_text(text.replace("<SoftwareCode>Hand written", "<SoftwareCode>a=b", 1), encoding="utf-8")
    ret = read_return(path)
    (row,) = ret.issues.itertuples()
    assert row.problem == "<Child> has attributes (note); census elements have none"
    assert row.child == 700 and row.LAchildID == ret.children.loc[699, "LAchildID"]
    assert row.line == text.count("\n", 0, pos) + 1 and row.value == "x=1"
    # An '=' in a value alone is no attribute.
    path.write_text(text.replace('<Child note="x=1">', "<Child>"), encoding="utf-8")
    assert read_return(path).issues.empty


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", ["entity-file", "external-dtd-file", "doctype-after-long-comment", "xinclude"])
def test_referenced_files_are_never_opened(tmp_path, listener, name):
    # A FIFO blocks whoever opens it for reading until a writer comes: had the parser followed the
    # reference, this test would hang and time out instead of passing.
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)
    (case,) = [c for c in CASES if c.name == name]
    path = tmp_path / f"{name}.xml"
    path.write_bytes(case.build(Context(sentinel=fifo, url=listener.url)))
    if case.error:
        with pytest.raises(ReadError):
            read_return(path)
    else:
        assert len(read_return(path).issues) >= 1


def test_a_flood_of_other_elements_is_refused_in_bounded_memory(tmp_path):
    # Elements that are never a <Child> would pile up in the tree; past 16 MiB without a child the
    # read stops.
    head, tail = BASE.split(b"</Child>", 1)
    path = tmp_path / "flood.xml"
    with path.open("wb") as fh:
        fh.write(head + b"</Child>")
        for _ in range(20):
            fh.write(b"<Note>0123456789</Note>" * (2**20 // 23))
        fh.write(tail)
    with pytest.raises(ReadError) as info:
        read_return(path)
    assert info.value.problem.startswith("more than 16 MiB without a complete <Child> (the last one read was "
                                         "number 1)")


# -- outputs shared under --pseudonymise ------------------------------------------------------------

PLANTED_RUNS = {
    "validate": ["validate", "{planted}", "--xlsx", "{out}/v.xlsx", "--csv", "{out}/v.csv", "--html", "{out}/v.html"],
    "validate-teams": ["validate", "{planted}", "--xlsx", "{out}/v.xlsx", "--html", "{out}/v.html", "--teams",
                       "{teams}"],
    "validate-folder": ["validate", "{folder}", "--out", "{out}/checked"],
    "tables-csv": ["tables", "{planted}", "--out", "{out}/csv"],
    "tables-parquet": ["tables", "{planted}", "--out", "{out}/parquet", "--format", "parquet"],
    "report": ["report", "{earlier}", "{planted}", "-o", "{out}/r.html"],
    "compare": ["compare", "{earlier}", "{planted}", "--out", "{out}/yoy"],
}


def output_texts(folder: Path) -> dict[str, str]:
    """Every output under ``folder`` as text: workbooks unzipped member by member, Parquet read back."""
    import zipfile

    found: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        found[str(path)] = raw.decode("utf-8", "replace")
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    found[f"{path}!{member}"] = z.read(member).decode("utf-8", "replace")
        elif path.suffix == ".parquet":
            found[f"{path}!table"] = pd.read_parquet(path).astype(str).to_csv()
    return found


@pytest.fixture
def planted_cli(tmp_path):
    """Return a runner of one command over the planted files, written to a fresh folder ``in``.

    ``runner(words, *extra, payloads=None, timeout=..., before=None)`` fills ``{planted}``, ``{earlier}``,
    ``{folder}``, ``{teams}`` (a lookup of the children to teams and workers) and ``{out}`` in the
    words, calls ``before(planted, identifiers)`` if given (to put more inputs beside the return; the
    identifiers are then the return's own),
    runs the command line on them with ``extra`` after, checks it ended with 0 or 1, and returns the
    process, the output folder and the planted identifiers (the workers' names among them).
    """
    from hostile.planted import planted_files, planted_teams

    def runner(words: list[str], *extra: str, payloads=None, timeout: float, before=None):
        folder = tmp_path / "in"
        folder.mkdir()
        planted, earlier, ids = planted_files(folder, payloads)
        if before is not None:
            before(planted, ids)
        # Workers' names are personal data too: a pseudonymised output names none.
        ids += planted_teams(tmp_path / "teams.csv", ids, payloads)
        out = tmp_path / "out"
        fill = {"planted": planted, "folder": folder, "out": out, "earlier": earlier, "teams": tmp_path / "teams.csv"}
        done = run_cli([a.format(**fill) for a in words] + list(extra), tmp_path, timeout=timeout)
        assert done.returncode in (0, 1), done.stderr.decode()
        return done, out, ids

    return runner


@pytest.mark.timeout(900)
@pytest.mark.parametrize("run", list(PLANTED_RUNS))
def test_pseudonymised_outputs_hold_no_planted_identifier(tmp_path, planted_cli, run):
    key = tmp_path / "k.key"
    cinqa.pseudonymise.new_key(key)
    planted_at: list[Path] = []
    explained = 0

    def explain_queries(planted: Path, ids: list[str]) -> None:
        nonlocal explained
        planted_at.append(planted)
        if run.startswith("validate"):
            explained = plant_explanations(planted, ids)

    done, out, ids = planted_cli(PLANTED_RUNS[run], "--pseudonymise", "--key-file", str(key), timeout=840,
                                 before=explain_queries)
    planted = planted_at[0]
    texts = {"stdout": done.stdout.decode(), "stderr": done.stderr.decode(), **output_texts(out)}
    assert len(texts) > 2
    leaks = [(where, i) for where, text in texts.items() for i in ids if i in text]
    assert leaks == []
    if explained:
        book = out / "checked" / f"{planted.stem}.xlsx" if run == "validate-folder" else out / "v.xlsx"
        shown = [cell for ws in openpyxl.load_workbook(book).worksheets if ws.title != "About"
                 for row in ws.iter_rows(values_only=True) for cell in row if isinstance(cell, str)]
        assert sum("Explained by" in c for c in shown) == explained


def plant_explanations(planted: Path, ids: list[str]) -> int:
    """Explain the planted return's queries in its default explanations file, every identifier typed into the
    words and into who gave them, half of them current and half stale (values changed); return how many
    explanations the workbook shows, in its explanation or its explanation status column."""
    from cinqa import explanations as ex

    v = cinqa.validate(cinqa.read_return(planted), progress=False)
    queries = ex.explain(v, ex.empty()).queries
    typed = " ".join(ids)
    rows = [{"census_year": v.year, "LA": v.ret.header.la or "", "rule": q.rule, "LAchildID": q.LAchildID,
             "row": q.row, "explanation": f"Explained by {typed}", "who": typed, "date": "2026-01-05",
             "values_hash": q.values_hash if i % 2 else "0" * 16}
            for i, q in enumerate(queries.drop_duplicates(["rule", "LAchildID", "row"]).itertuples())]
    assert rows, "the planted return has no query to explain"
    ex.write_explanations(pd.DataFrame(rows), ex.default_path(planted, v.year))
    return len(queries)


# Runs whose messages quote the returns: a parser's error about a file that could not be read (no
# return behind it), the same error among a folder's files (stderr and summary.csv), two LAs compared.
MESSAGE_RUNS = {
    "validate-unreadable": ["validate", "{unreadable}", "--csv", "{out}/v.csv"],
    "validate-folder-unreadable": ["validate", "{folder}", "--out", "{out}/checked"],
    "tables-unreadable": ["tables", "{unreadable}", "--out", "{out}/t"],
    "report-unreadable": ["report", "{unreadable}", "-o", "{out}/r.html"],
    "compare-other-la": ["compare", "{other}", "{planted}", "--out", "{out}/yoy"],
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("run", list(MESSAGE_RUNS))
def test_pseudonymised_messages_hold_no_planted_identifier(tmp_path, run):
    from hostile.planted import other_la, planted_files, unreadable_planted

    folder = tmp_path / "in"
    folder.mkdir()
    planted, earlier, ids = planted_files(folder)
    fill = {"planted": planted, "folder": folder, "unreadable": unreadable_planted(folder, planted, ids),
            "other": other_la(folder, earlier, ids)}
    key = tmp_path / "k.key"
    cinqa.pseudonymise.new_key(key)
    said = {}
    for shared in (False, True):
        out = tmp_path / ("shared" if shared else "plain")
        args = [a.format(out=out, **fill) for a in MESSAGE_RUNS[run]]
        done = run_cli(args + (["--pseudonymise", "--key-file", key] if shared else []), tmp_path, timeout=420)
        err = done.stderr.decode()
        assert done.returncode in (1, 2) and err.startswith("cinqa: ") and "Traceback" not in err, err
        said[shared] = {"stdout": done.stdout.decode(), "stderr": err, **(output_texts(out) if out.exists() else {})}
    # Unshared, the message quotes an identifier: the run provokes what the shared run must scrub.
    assert any(i in said[False]["stderr"] for i in ids), said[False]["stderr"]
    assert [(where, i) for where, text in said[True].items() for i in ids if i in text] == []
    assert said[True]["stderr"].count("\n") == said[False]["stderr"].count("\n")


def test_pseudonymised_warnings_and_internal_errors_hold_no_planted_identifier(tmp_path, monkeypatch):
    import warnings

    from typer.testing import CliRunner

    import cinqa.cli
    from hostile.planted import planted_files

    folder = tmp_path / "in"
    folder.mkdir()
    planted, _, ids = planted_files(folder)
    key = tmp_path / "k.key"
    cinqa.pseudonymise.new_key(key)

    def quoting(ret):
        warnings.warn(f"an odd value {ids[1]} in the return", UserWarning, stacklevel=1)
        raise KeyError(ids[0])

    monkeypatch.setattr(cinqa, "validate", quoting)
    done = CliRunner().invoke(cinqa.cli.app, ["validate", str(planted), "--pseudonymise", "--key-file", str(key)])
    lines = done.output.splitlines()
    assert done.exit_code == 2, done.output
    assert lines[0].startswith("cinqa: warning: an odd value U") and lines[-1].startswith("cinqa: internal error (KeyError: 'P")
    assert [i for i in ids if i in done.output] == []


def test_pseudonymised_report_charts_hold_no_planted_identifier(tmp_path):
    import matplotlib.text

    from cinqa.report import QAReport
    from hostile.planted import planted_return

    data, ids = planted_return()
    planted = tmp_path / "planted.xml"
    planted.write_bytes(data)
    qa = QAReport.load([planted], pseudonymise=True, key=b"k" * 32)
    labels = [t.get_text() for fig in (qa.distributions(), qa.assessment_durations())
              for t in fig.findobj(matplotlib.text.Text)]
    assert any(labels)
    assert [i for i in ids if any(i in label for label in labels)] == []


# -- text that a spreadsheet would run as a formula ---------------------------------------------------

FORMULA_RUNS = {
    "validate": ["validate", "{planted}", "--xlsx", "{out}/v.xlsx", "--csv", "{out}/v.csv"],
    "validate-teams": ["validate", "{planted}", "--xlsx", "{out}/v.xlsx", "--teams", "{teams}"],
    "validate-folder": ["validate", "{folder}", "--out", "{out}/checked", "--xlsx", "{out}/s.xlsx",
                        "--csv", "{out}/s.csv"],
    "tables": ["tables", "{planted}", "--out", "{out}/csv"],
    "compare": ["compare", "{earlier}", "{planted}", "--out", "{out}/yoy"],
}


def run_cli(args: list[str], cwd: Path, **kwargs):
    """Run the command line in a process of its own, as a user would."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "from cinqa.cli import app; app()", *map(str, args)],
                          capture_output=True, cwd=cwd, **kwargs)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.timeout(600)
@pytest.mark.parametrize("run", list(FORMULA_RUNS))
def test_no_output_cell_is_a_formula(planted_cli, run):
    import csv
    import zipfile

    from cinqa.export import FORMULA_STARTS
    from hostile.planted import FORMULAS

    _, out, _ = planted_cli(FORMULA_RUNS[run], payloads=FORMULAS, timeout=540)
    cells, sheets = [], []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                cells += [(path.name, c) for row in csv.reader(fh) for c in row]
        elif path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                sheets += [(f"{path.name}!{m}", z.read(m).decode()) for m in z.namelist() if m.startswith("xl/")]
    live = [(f, c) for f, c in cells if c.startswith(FORMULA_STARTS) and not _is_number(c)]
    assert live == []
    assert any(f in c for _, c in cells for f in FORMULAS) or sheets, "the planted formulas reached no output"
    formulas = [name for name, xml in sheets if "worksheets/" in name and re.search(r"<(?:\w+:)?f[ >]", xml)]
    assert formulas == []
    if sheets:
        assert any("=1+2" in xml for _, xml in sheets)


# -- Excel's limits ------------------------------------------------------------------------------------

EMPTY_FAILURES = pd.DataFrame({c: pd.Series([], dtype="object") for c in
                               ("rule", "severity", "message", "entity", "child", "LAchildID", "episode", "item",
                                "fields", "values", "line")})


def issues_frame(n: int, problem: str = "unknown element <X> inside <Child>") -> pd.DataFrame:
    return pd.DataFrame({"line": pd.array(range(1, n + 1), dtype="Int64"), "severity": "warning",
                         "table": "children", "LAchildID": "C001", "element": "X", "problem": problem,
                         "value": [f"v{i}" for i in range(n)]})


def test_a_sheet_past_excels_rows_is_cut_with_a_note_and_written_whole_beside(tmp_path, monkeypatch):
    import openpyxl

    import cinqa.excel
    from cinqa.failures import FAILURE_COLUMNS

    # Excel's real limit is a million rows; the same code path is exercised with a small one.
    monkeypatch.setattr(cinqa.excel, "_MAX_ROWS", 5)
    out = tmp_path / "errors.xlsx"
    cinqa.excel.write_error_report(out, EMPTY_FAILURES[list(FAILURE_COLUMNS)], issues=issues_frame(12))
    wb = openpyxl.load_workbook(out, read_only=True)
    rows = list(wb["Structural issues"].iter_rows(values_only=True))
    assert len(rows) == 1 + 5
    about = " ".join(str(v) for row in wb["About"].iter_rows(values_only=True) for v in row if v)
    full = cinqa.excel.companion_csv(out, "Structural issues")
    assert full.name in about and "12" in about
    assert pd.read_csv(full)["value"].tolist() == [f"v{i}" for i in range(12)]


def test_a_table_workbook_past_excels_rows_is_cut_with_a_note_and_written_whole_beside(tmp_path, monkeypatch):
    import openpyxl

    import cinqa.excel

    monkeypatch.setattr(cinqa.excel, "_MAX_ROWS", 3)
    out = tmp_path / "summary.xlsx"
    cinqa.excel.write_table_workbook(out, {"Returns": pd.DataFrame({"file": [f"f{i}.xml" for i in range(7)]})})
    wb = openpyxl.load_workbook(out, read_only=True)
    assert len(list(wb["Returns"].iter_rows(values_only=True))) == 1 + 3
    notes = " ".join(str(v) for row in wb[wb.sheetnames[0]].iter_rows(values_only=True) for v in row if v)
    full = cinqa.excel.companion_csv(out, "Returns")
    assert full.name in notes
    assert len(pd.read_csv(full)) == 7


def test_a_value_past_excels_cell_limit_is_cut_visibly_and_kept_whole_beside(tmp_path):
    import openpyxl

    import cinqa.excel
    from cinqa.failures import FAILURE_COLUMNS

    long = "x" * 40_000 + "END"
    out = tmp_path / "errors.xlsx"
    cinqa.excel.write_error_report(out, EMPTY_FAILURES[list(FAILURE_COLUMNS)], issues=issues_frame(2, long))
    wb = openpyxl.load_workbook(out, read_only=True)
    cells = [v for row in wb["Structural issues"].iter_rows(values_only=True) for v in row if isinstance(v, str)]
    cut = [v for v in cells if v.startswith("xxx")]
    full = cinqa.excel.companion_csv(out, "Structural issues")
    assert len(cut) == 2
    assert all(len(v) <= 32_767 and "cut at Excel's limit" in v and full.name in v for v in cut)
    assert pd.read_csv(full)["problem"].tolist() == [long, long]


# -- where outputs go: never over an input, never two runs at once, no stray folders -------------------

OVERWRITES = {
    # (command, where the input is put, in the folder "d")
    "tables-own-input": (["tables", "{d}/children.csv", "--out", "{d}"], "children.csv"),
    "tables-hard-link": (["tables", "{d}/cin.xml", "--out", "{d}/t"], "cin.xml"),
    "compare-own-input": (["compare", "{d}/table.csv", "--out", "{d}"], "table.csv"),
    # The key files are named as the outputs would be, so the extension check lets them through to the guard.
    "validate-key-file": (["validate", "{d}/cin.xml", "--csv", "{d}/k.csv", "--pseudonymise", "-k", "{d}/k.csv"],
                          "cin.xml"),
    "report-key-file": (["report", "{d}/cin.xml", "-o", "{d}/k.html", "--pseudonymise", "-k", "{d}/k.html"],
                        "cin.xml"),
    "validate-explanations": (["validate", "{d}/cin.xml", "--csv", "{d}/e.csv", "--explanations", "{d}/e.csv"],
                              "cin.xml"),
    "notes-own-input": (["notes", "{d}/cin.txt", "--out", "{d}/cin.txt"], "cin.txt"),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(OVERWRITES))
def test_no_command_writes_over_its_inputs(tmp_path, case):
    args, name = OVERWRITES[case]
    d = tmp_path / "d"
    d.mkdir()
    (d / name).write_bytes(BASE)
    key = args[args.index("-k") + 1].format(d=d) if "-k" in args else str(d / "k.key")
    cinqa.pseudonymise.new_key(Path(key))
    if case == "tables-hard-link":
        (d / "t").mkdir()
        os.link(d / name, d / "t" / "children.csv")
    before = {p.name: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    done = run_cli([a.format(d=d) for a in args], tmp_path, timeout=240)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "input file" in err and len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_an_output_path_through_a_missing_folder_and_back_creates_no_folder(tmp_path):
    (tmp_path / "cin.xml").write_bytes(BASE)
    done = run_cli(["tables", "cin.xml", "--out", "stray/../tables"], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "tables" / "children.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cin.xml", "tables"]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("output", ["--csv", "--out"])
def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(tmp_path, output):
    from cinqa.files import outputs_claimed

    (tmp_path / "cin.xml").write_bytes(BASE)
    folder = output == "--out"
    target = tmp_path / ("checked" if folder else "f.csv")
    with outputs_claimed(folders=[target]) if folder else outputs_claimed([target]):
        done = run_cli(["validate", "cin.xml", output, target], tmp_path, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "another cinqa run is writing" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()
    again = run_cli(["validate", "cin.xml", output, target], tmp_path, timeout=120)
    assert again.returncode in (0, 1), again.stderr.decode()
    assert target.exists()
    assert [p.name for p in tmp_path.rglob("*") if "lock" in p.name] == []


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder no output can be written into: read-only, or (as root, whom modes do not stop) in sysfs."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        folder = Path("/sys/cinqa-read-only")
    with pytest.raises(OSError):
        (folder / "probe").mkdir(parents=True)
    return folder


@pytest.mark.timeout(600)
@pytest.mark.parametrize("args", [["validate", "cin.xml", "--xlsx", "{ro}/e.xlsx"],
                                  ["validate", "cin.xml", "--out", "{ro}"],
                                  ["tables", "cin.xml", "--out", "{ro}/t"],
                                  ["report", "cin.xml", "-o", "{ro}/r.html"]], ids=lambda a: a[0] + a[2])
def test_a_read_only_output_folder_gives_one_line_and_exit_2(tmp_path, args):
    (tmp_path / "cin.xml").write_bytes(BASE)
    ro = unwritable_folder(tmp_path)
    done = run_cli([a.format(ro=ro) for a in args], tmp_path, timeout=540)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"cinqa: {ro}") and "part" not in err and "lock" not in err, err


# -- Ctrl-C ----------------------------------------------------------------------------------------------

def _kernel_started(pid: int) -> bool:
    """Tell whether process ``pid`` has a Jupyter kernel among its children (the report is rendering)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"ipykernel" in (stat.parent / "cmdline").read_bytes():
                return True
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while we looked
    return False


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command, delay", [("validate", 0.5), ("validate", 1.5), ("report", "kernel")],
                         ids=["validate-while-loading", "validate-while-loading-later", "report-while-rendering"])
def test_ctrl_c_gives_one_line_and_exit_130(tmp_path, command, delay):
    import subprocess
    import sys
    import time

    from cinqa_launch import EXIT_INTERRUPTED

    (tmp_path / "cin.xml").write_bytes(BASE)
    output = ["--xlsx", "e.xlsx"] if command == "validate" else ["-o", "r.html"]
    # The installed console script, as a user starts it; its own process group gets the Ctrl-C, kernel and all.
    cli = Path(sys.executable).parent / "cinqa"
    proc = subprocess.Popen([cli, command, "cin.xml", *output], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    if delay == "kernel":
        # Rendering is under way once the report's kernel runs: a fixed delay raced a quick machine's report.
        deadline = time.monotonic() + 180
        while not _kernel_started(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the report ended before its kernel was seen"
        time.sleep(1.0)
    else:
        time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    text = err.decode()
    assert proc.returncode == EXIT_INTERRUPTED, text
    assert len(text.strip().splitlines()) == 1 and text.startswith("cinqa: interrupted"), text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cin.xml"]


def test_ctrl_c_while_typer_builds_the_command_line_gives_one_line_and_exit_130(monkeypatch, capsys):
    """CI once saw the Ctrl-C land after cinqa.cli was imported, while typer read the commands' signatures."""
    import cinqa.cli
    import cinqa_launch

    def building() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cinqa.cli, "app", building)
    with pytest.raises(SystemExit) as ended:
        cinqa_launch.main()
    assert ended.value.code == cinqa_launch.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "cinqa: interrupted while starting; nothing was written\n"


def test_ctrl_c_that_python_drops_in_a_finaliser_still_stops_the_run(tmp_path, capfd):
    """Python drops an exception raised in a finaliser ("Exception ignored in ..."); CI once saw the
    report's Ctrl-C land there, and the run wrote its report and exited 0."""
    from cinqa.files import atomic_path
    from cinqa.scratch import private_run

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # bytecode for the handler to run in, inside the finaliser
                pass

    out = tmp_path / "report.html"
    with pytest.raises(KeyboardInterrupt), private_run():
        with atomic_path(out) as part:
            part.write_text("complete", encoding="utf-8")
            Finalised()  # dropped at once: its finaliser runs, and the interrupt is raised inside it
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "Exception ignored" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # The interrupt was that run's: what is written after it, outside a run, is written.
    with atomic_path(out) as part:
        part.write_text("later", encoding="utf-8")
    assert out.read_text(encoding="utf-8") == "later"


def _written_table(out: Path) -> bool:
    """Tell whether ``cinqa tables`` has begun writing into ``out``: a table, or a part of one, is there."""
    return any(p.name != ".cinqa-lock" for p in out.glob("*")) if out.is_dir() else False


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command, moment", [("tables", "reading"), ("tables", "writing"), ("compare", "reading")])
def test_ctrl_c_stops_tables_and_compare_leaving_nothing(tmp_path, command, moment):
    from cinqa_launch import EXIT_INTERRUPTED

    later = replicated_file(tmp_path / "cin.xml", 30_000)
    earlier = tmp_path / "cin-2022-23.xml"
    earlier.write_text(later.read_text(encoding="utf-8").replace("<Year>2024<", "<Year>2023<", 1)
                       .replace("<ReferenceDate>2024-03-31<", "<ReferenceDate>2023-03-31<", 1), encoding="utf-8")
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    args = ["tables", later.name, "--out", out.name] if command == "tables" else \
        ["compare", earlier.name, later.name, "--out", out.name]
    # The installed console script in its own process group, as a terminal's Ctrl-C reaches it.
    proc = subprocess.Popen([CINQA, *args], cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    if moment == "reading":
        _wait_for(proc, lambda: list(tmp.glob("cinqa-run-*")), "private run folder")
    else:
        _wait_for(proc, lambda: _written_table(out), "first table written")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("cinqa: interrupted"), err
    assert list(tmp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [earlier.name, later.name, "tmp"]


# -- labels from data are drawn as text ----------------------------------------------------------


def test_labels_from_data_are_drawn_as_plain_text(tmp_path):
    # A pair of '$' is mathtext to matplotlib, and '\q' is no TeX it knows: drawing would raise.
    text = swap("<Ethnicity>WBRI", r"<Ethnicity>$\q$").decode("utf-8").replace("<LAchildID>C001<", r"<LAchildID>$\q$1<")
    path = tmp_path / "dollars.xml"
    path.write_text(text, encoding="utf-8")
    ret = read_return(path)
    assert r"$\q$" in set(ret.children["Ethnicity"].astype(str)) and ret.children["LAchildID"].iat[0] == r"$\q$1"
    from matplotlib.text import Text

    from cinqa import display

    figures = [display.plot_distributions(ret), display.child_timeline(ret, 1),
               display.plot_counts(pd.Series({r"$\q$": 1, "$1 and $2": 2}), r"$\q$ counts")]
    for fig in figures:
        assert display.png_bytes(fig).startswith(b"\x89PNG")
    labels = [t.get_text() for fig in figures for ax in fig.axes
              for t in [*ax.get_yticklabels(), *ax.get_xticklabels()]]
    labels += [ax.get_title(loc=loc) for fig in figures for ax in fig.axes for loc in ("left", "center")]
    # What matplotlib draws for a label: the text after its own mathtext preprocessing.
    drawn = [Text(text=label)._preprocess_math(label) for label in labels if "$" in label]
    assert {text for text, _ in drawn} == {r"$\q$ (invalid)", r"Child $\q$1, born 06/2015: census year 2023-24 shaded", r"$\q$",
                                           "$1 and $2", r"$\q$ counts"}
    assert not any(math for _, math in drawn)


# -- tables edited before validating -------------------------------------------------------------


def _dropped(ret, table, column):
    ret.tables[table] = ret.tables[table].drop(columns=[column])


def _retyped(ret, table, column, dtype):
    ret.tables[table][column] = ret.tables[table][column].astype(dtype)


@pytest.mark.parametrize("edit, named", [
    (lambda r: _dropped(r, "episodes", "CINreferralDate"),
     r"episodes\.CINreferralDate is missing \(a datetime64\[s\] column\)"),
    (lambda r: _dropped(r, "children", "line"), r"children\.line is missing"),
    (lambda r: _retyped(r, "children", "PersonBirthDate", "str"), r"children\.PersonBirthDate is str, not datetime64\[s\]"),
    (lambda r: _retyped(r, "children", "Ethnicity", "str"), r"children\.Ethnicity is str, not category"),
    (lambda r: _retyped(r, "section47", "ICPCnotRequired", "str"), r"section47\.ICPCnotRequired is str, not boolean"),
    (lambda r: r.tables.pop("cp_plans"), r"there is no table 'cp_plans'"),
], ids=["dropped-date", "dropped-line", "date-as-text", "code-as-text", "flag-as-text", "dropped-table"])
def test_validate_names_each_column_edited_out_of_shape(edit, named):
    from cinqa import validate

    ret = read_return(BASE_FILE)
    edit(ret)
    with pytest.raises(cinqa.errors.CinqaError, match=named) as info:
        validate(ret)
    assert str(info.value).startswith("the 2023-24 return's tables are not as read_return gives them: ")


def test_validate_lists_every_problem_at_once_and_allows_extra_columns():
    from cinqa import validate

    ret = read_return(BASE_FILE)
    ret.tables["children"]["note"] = "checked"
    clean = validate(ret)
    _dropped(ret, "episodes", "ReasonForClosure")
    _retyped(ret, "cp_plans", "CPPstartDate", "object")
    with pytest.raises(cinqa.errors.CinqaError) as info:
        validate(ret)
    assert str(info.value).endswith("episodes.ReasonForClosure is missing (a category column); "
                                    "cp_plans.CPPstartDate is object, not datetime64[s]")
    assert len(clean.failures) == len(validate(read_return(BASE_FILE)).failures)
    with pytest.raises(cinqa.errors.CinqaError, match="validate checks a CensusReturn"):
        validate(ret.tables)


# -- values longer than their field can be -------------------------------------------------------

LONG = 2_000_000


@pytest.mark.parametrize("old, element, table, column", [
    ("<Ethnicity>WBRI<", "Ethnicity", "children", "Ethnicity"),
    ("<Disability>AUT<", "Disability", "disabilities", "Disability"),
    ("<AssessmentFactors>3A<", "AssessmentFactors", "assessment_factors", "AssessmentFactors"),
    ("<UPN>A201123456789<", "UPN", "children", "UPN"),
    ("<PersonBirthDate>2015-06-01<", "PersonBirthDate", "children", "PersonBirthDate"),
    ("<ReferralNFA>false<", "ReferralNFA", "episodes", "ReferralNFA"),
    ("<LAchildID>C001<", "LAchildID", "children", "LAchildID"),
], ids=lambda v: v if v.isalpha() else None)
def test_a_value_longer_than_its_field_is_an_issue_quoted_short(tmp_path, old, element, table, column):
    path = tmp_path / "long.xml"
    path.write_bytes(swap(old, f"<{element}>{'W' * LONG}<"))
    line = BASE_TEXT[:BASE_TEXT.index(old)].count("\n") + 1
    ret = read_return(path)
    (issue,) = ret.issues[ret.issues["element"] == element].itertuples()
    assert issue.line == line and len(issue.value) == LONG  # nothing lost: the issue keeps the value
    assert f"'{'W' * 60}... (2,000,000 characters)'" in issue.problem and len(issue.problem) < 400
    assert f"no <{element}> is longer than" in issue.problem
    longest = max(df[c].astype(str).str.len().max() for df in ret.tables.values() for c in df.columns
                  if len(df) and df[c].dtype in ("str", "category", "object"))
    assert longest < 100, f"a table holds a value of {longest} characters"
    assert ret.tables[table][column].isna().sum() == base_missing(table, column) + 1


def base_missing(table, column):
    return int(read_return(BASE_FILE).tables[table][column].isna().sum())


def test_short_invalid_values_stay_in_the_tables_with_their_problem(tmp_path):
    # Only values too long to quote whole leave the tables: a mistyped code is still there to be checked.
    path = tmp_path / "short.xml"
    path.write_bytes(swap("<Ethnicity>WBRI<", "<Ethnicity>WBRIT<"))
    ret = read_return(path)
    assert ret.children["Ethnicity"].iat[0] == "WBRIT"
    (problem,) = ret.issues["problem"]
    assert problem == ("<Ethnicity> 'WBRIT' is not a valid ethnicity code in 2023-24; no <Ethnicity> is longer "
                       "than 4 characters")


@pytest.mark.timeout(600)
def test_report_of_a_hostile_but_readable_file_is_written_at_the_usual_cost(tmp_path):
    # A two-million-character code, and '$' pairs in values that the charts draw, in one readable file.
    text = BASE_TEXT.replace("<Ethnicity>WBRI", "<Ethnicity>" + "W" * LONG, 1)
    text = text.replace("<Ethnicity>NOBT", r"<Ethnicity>$\q$", 1).replace("<LAchildID>C002<", r"<LAchildID>$\q$2<")
    hostile, plain = tmp_path / "hostile.xml", tmp_path / "plain.xml"
    hostile.write_text(text, encoding="utf-8")
    plain.write_bytes(BASE)
    cost = {}
    for path in (plain, hostile):
        out = tmp_path / f"{path.stem}.html"
        done = subprocess.run([CINQA, "report", str(path), "-o", str(out)],
                              capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, done.stderr
        cost[path.stem] = out.stat().st_size
    # The value is quoted short wherever it is shown: the report is no larger than the plain one's
    # by more than the issue's row.
    assert cost["hostile"] < cost["plain"] + 50_000, cost


@pytest.mark.parametrize("element, limit, attribute", [("SoftwareCode", 100, "software"), ("Release", 100, "release"),
                                                      ("SerialNo", 20, "serial")])
def test_free_text_in_the_header_has_a_provisional_limit(tmp_path, element, limit, attribute):
    # Free text past its provisional limit (census.yaml's length_status: U) is a warning: the format's own
    # limit is not known, so the file is not called unreadable for it. Too long to quote, it leaves the header.
    head = BASE_TEXT[:BASE_TEXT.index(f"<{element}>") + len(element) + 2]
    end = BASE_TEXT.index(f"</{element}>")
    for value, kept in (("7" * limit, True), ("7" * (limit + 1), limit + 1 <= 60), ("7" * 5_000, False)):
        path = tmp_path / f"{element}.xml"
        path.write_text(head + value + BASE_TEXT[end:], encoding="utf-8")
        ret = read_return(path)
        rows = ret.issues[ret.issues["element"] == element]
        assert (getattr(ret.header, attribute) == value) is kept
        if len(value) == limit:
            assert rows.empty, rows.to_string()
            continue
        (issue,) = rows.itertuples()
        assert issue.severity == "warning" and issue.value == value
        assert issue.problem.startswith(f"<{element}> '{value[:60]}")
        assert f"is too long; no <{element}> is longer than {limit} characters (a provisional limit)" in issue.problem


def test_an_over_long_la_child_id_is_a_warning_beside_rule_1570(tmp_path):
    from cinqa import validate

    for year, rule_fails in (("2023-24", False), ("2024-25", True)):
        path = tmp_path / f"{year}.xml"
        path.write_bytes(swap("<LAchildID>C001<", "<LAchildID>C0010000000000000000000<"))
        ret = read_return(path, year=year)
        (issue,) = ret.issues[ret.issues["element"] == "LAchildID"].itertuples()
        assert issue.severity == "warning" and issue.line == BASE_TEXT[:BASE_TEXT.index("<LAchildID>C001<")].count("\n") + 1
        assert issue.problem == ("<LAchildID> 'C0010000000000000000000' is too long; no <LAchildID> is longer than 20 "
                                 "characters (a provisional limit)")
        assert ret.children["LAchildID"].iat[0] == "C0010000000000000000000"
        assert ("1570" in set(validate(ret).failures["rule"])) is rule_fails


def test_a_header_value_longer_than_its_field_is_left_out_of_the_header(tmp_path):
    path = tmp_path / "la.xml"
    path.write_bytes(swap("<LEA>201<", f"<LEA>{'9' * LONG}<"))
    ret = read_return(path)
    assert ret.header.la is None
    (problem,) = ret.issues.loc[ret.issues["element"] == "LEA", "problem"]
    assert problem.startswith(f"<LEA> '{'9' * 60}... (2,000,000 characters)' is not a valid la code")


# -- nothing left behind when a run is stopped ---------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-2023-24.xml"


def _start(args: list[str], tmp: Path) -> subprocess.Popen:
    """Start ``cinqa ARGS`` with its own system temporary folder ``tmp``."""
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen([CINQA, *args], env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, found, what: str, timeout: float = 400) -> None:
    stop = time.monotonic() + timeout
    while not found():
        assert proc.poll() is None, f"cinqa ended before {what}: {proc.communicate()}"
        assert time.monotonic() < stop, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _kernel_running(tmp: Path) -> bool:
    """Tell whether the report's kernel is at work: the executed notebook shows a cell it ran."""
    for notebook in tmp.glob("cinqa-run-*/cinqa-report-*/qa-report.ipynb"):
        with contextlib.suppress(OSError):
            if re.search(r'"execution_count": \d', notebook.read_text(encoding="utf-8")):
                return True
    return False


def _processes_in(folder: Path) -> list[int]:
    """List the processes (the report's kernel, say) whose TMPDIR is ``folder``, as a run sets it."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if f"TMPDIR={folder}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


def _exit_status(name: str) -> int:
    # Ctrl-C is the documented exit status 130; SIGTERM and SIGHUP end the process by that signal.
    return 130 if name == "SIGINT" else -getattr(signal, name)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_report_stopped_by_a_signal_leaves_nothing_behind(tmp_path, name):
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    out.mkdir()
    proc = _start(["report", str(SAMPLE), "-o", str(out / "report.html")], tmp)
    _wait_for(proc, lambda: _kernel_running(tmp), "running report kernel")
    (run,) = tmp.glob("cinqa-run-*")
    assert run.stat().st_mode & 0o777 == 0o700 and run.name.startswith(f"cinqa-run-{proc.pid}-")
    assert _processes_in(run), "the kernel is not found by its TMPDIR"
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == _exit_status(name), err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert list(tmp.iterdir()) == [] and list(out.iterdir()) == []
    assert _processes_in(run) == []


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])  # Ctrl-C already unwound, removing the file
def test_an_output_stopped_half_written_is_removed(tmp_path, name):
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    out.mkdir()
    proc = _start(["synth", "2023-24", "--children", "400000", "-o", str(out / "big.xml")], tmp)
    _wait_for(proc, lambda: any(p.stat().st_size > 0 for p in out.glob(".big.xml.*.part")), "half-written output")
    proc.send_signal(getattr(signal, name))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == _exit_status(name), err
    assert list(tmp.iterdir()) == [] and list(out.iterdir()) == []


@pytest.mark.timeout(900)
def test_the_next_run_removes_what_a_killed_run_left(tmp_path):
    tmp = tmp_path / "tmp"
    proc = _start(["synth", "2023-24", "--children", "400000", "-o", str(tmp_path / "big.xml")], tmp)
    _wait_for(proc, lambda: list(tmp.glob("cinqa-run-*")), "temporary folder")
    (left,) = tmp.glob("cinqa-run-*")
    (left / "openpyxl.tmp").write_text("child data")
    proc.kill()
    proc.communicate(timeout=60)
    alive = tmp / f"cinqa-run-{os.getpid()}-running"  # a run still in progress: not to be touched
    alive.mkdir()
    done = subprocess.run([CINQA, "rules", "--year", "2023-24"], env={**os.environ, "TMPDIR": str(tmp)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"cinqa: removed {left}, the temporary folder of an earlier run (process {proc.pid}) "
                           "that was killed before it could clean up\n")
    assert list(tmp.iterdir()) == [alive]
