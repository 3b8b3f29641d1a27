"""The ``cinqa`` command line: check census returns, export them and share the results safely.

A thin layer over the package: each command reads its inputs, calls one function of ``cinqa``
and writes what the user asked for, atomically, where the user asked. Bad input ends with one
line on stderr ("cinqa: <file>, line N: <problem>") and exit status 2, never a traceback.
The modules behind the reports and workbooks (openpyxl, Jupyter, matplotlib) are imported inside
the commands that use them, so that ``cinqa --help`` and the other commands start quickly.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

import cinqa
from cinqa import failures as judge
from cinqa import spec
from cinqa.errors import CinqaError
from cinqa.progress import bar
from cinqa.returns import issue_lines
from cinqa.rules import STATUS_LEGEND
from cinqa.scratch import private_run, raise_if_interrupted
from cinqa.validate import Validation
from cinqa_launch import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from cinqa.teams import TeamLookup

EXIT_BAD_INPUT = 2
_SHOWN_ISSUES = 20

_F = TypeVar("_F", bound=Callable[..., Any])


def _examples(*lines: str, note: str | None = None) -> str:
    """Format example command lines for a help epilog; ``\\b`` keeps click from rewrapping them."""
    text = "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
    return text + (f"\n\n{note}" if note else "")

app = typer.Typer(
    name="cinqa",
    help=(
        "Check English Children in Need census returns (XML) against the DfE validation rules, and "
        "produce outputs you can share: an Excel error list, CSV/Parquet tables, an HTML report.\n\n"
        "Child-level outputs can be pseudonymised with --pseudonymise --key-file K (create a key with "
        "`cinqa key new K`). Nothing is sent over the network; outputs are written only where you say."
    ),
    epilog=_examples(
        "cinqa validate cin-2023-24.xml --xlsx errors.xlsx",
        "cinqa validate returns/ --out checked/",
        "cinqa tables cin-2023-24.xml --out tables/ --format parquet",
        "cinqa report cin-2022-23.xml cin-2023-24.xml -o report.html",
        "cinqa key new ~/cinqa.key",
        "cinqa validate cin.xml --xlsx share.xlsx --pseudonymise --key-file ~/cinqa.key",
        note="Run `cinqa COMMAND --help` for each command's options.",
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    # Tracebacks with local variables would print children's data to the terminal.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
key_app = typer.Typer(help="Create the secret key that pseudonymisation uses.", no_args_is_help=True,
                      rich_markup_mode=None)
app.add_typer(key_app, name="key")
explain_app = typer.Typer(help="Keep the explanations of queries that COLLECT asks for.", no_args_is_help=True,
                          rich_markup_mode=None)
app.add_typer(explain_app, name="explain")


# -- plumbing ---------------------------------------------------------------------------------


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _stdout() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _die(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    _stderr().print(f"cinqa: {message}", markup=False)
    raise typer.Exit(code)


@dataclass
class _Quoting:
    """What the messages of a run may quote: when pseudonymising, nothing of its returns' identifiers."""

    files: Sequence[Path] = ()
    key: bytes | None = None
    scrub: Any = None

    def text(self, message: str) -> str:
        """Return ``message`` with every identifier of the run's returns replaced by its token, when pseudonymising.

        The identifiers are found in the files themselves (:func:`cinqa.pseudonymise.file_identifiers`),
        so a message about a file that could not be read is scrubbed too; only a run that prints an
        error pays for the search.
        """
        if self.key is None:
            return message
        if self.scrub is None:
            from cinqa.pseudonymise import Pseudonymiser, file_identifiers

            self.scrub = Pseudonymiser(self.key).scrubber(file_identifiers(self.files))
        return str(self.scrub.text(message))


_QUOTING: contextvars.ContextVar[_Quoting] = contextvars.ContextVar("cinqa_quoting", default=_Quoting())


def _quoting(files: Sequence[Path], key: bytes | None) -> None:
    """Have every message the run prints from here on scrubbed of the identifiers in ``files`` when ``key`` is given."""
    _QUOTING.set(_Quoting(list(files), key))


def _said(message: str) -> str:
    """Return a message that may quote a return's data as the run may print or write it (see :class:`_Quoting`)."""
    return _QUOTING.get().text(message)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Print a Python warning as one line of cinqa's, through :func:`_said` (a library may quote a value)."""
    _stderr().print(f"cinqa: warning: {_said(str(message))}", markup=False)


def _guarded(func: _F) -> _F:
    """Turn cinqa's errors into one line on stderr and an exit status, never a traceback; run the command in
    a private temporary folder that is removed however it ends (:func:`cinqa.scratch.private_run`).

    Every message that can quote the input (an error's text, an internal error's, a warning's) is
    printed through :func:`_said`, so a pseudonymising run prints no identifier of its returns.
    """

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _QUOTING.set(_Quoting())
        try:
            with private_run(), warnings.catch_warnings():
                warnings.showwarning = _show_warning
                result = func(*args, **kwargs)
                raise_if_interrupted()  # a Ctrl-C that Python dropped in a finaliser still ends the run
                return result
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except CinqaError as exc:
            _die(_said(str(exc)))
        except KeyboardInterrupt:
            # What was stopped mid-way (the report's kernel and its client) would log its death on exit.
            logging.disable(logging.CRITICAL)
            _die("interrupted; outputs are renamed into place only when complete, so none is half-written",
                 EXIT_INTERRUPTED)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _die(_said(f"{where}{exc.strerror or exc}"))
        except Exception as exc:
            if os.environ.get("CINQA_DEBUG"):
                raise
            _die(_said(f"internal error ({type(exc).__name__}: {exc}); set CINQA_DEBUG=1 to see the traceback"))
        finally:
            _QUOTING.reset(token)

    return run  # type: ignore[return-value]


@contextlib.contextmanager
def _step(description: str) -> Iterator[None]:
    """Show a step that has no parts to count as one, done when the block ends (reading and
    validating count their own bytes and rules; see :mod:`cinqa.progress`)."""
    with bar(description, 1, unit="step") as counter:
        yield
        counter.update(1)


def _check_year(value: str | None) -> str | None:
    if value is not None and value not in spec.YEARS:
        raise typer.BadParameter(f"{value!r} is not a census year; use one of {spec.YEARS[0]} .. {spec.YEARS[-1]}")
    return value


def _suffix(*allowed: str) -> Callable[[typer.CallbackParam, Path | None], Path | None]:
    """Make an option callback that refuses an output path whose extension is not one of ``allowed``.

    An Excel workbook named ``out.csv`` opens in nothing that expects a CSV: every output option
    of a fixed format names its extensions here, so the user hears it before any work is done.
    """

    def check(param: typer.CallbackParam, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in allowed:
            kinds = " or ".join(allowed)
            raise typer.BadParameter(f"{value} must end in {kinds} (it is written as {allowed[0][1:].upper()}); "
                                     f"choose a name such as {value.with_suffix(allowed[0]).name}", param=param)
        return value

    return check


def _load_key(pseudonymise: bool, key_file: Path | None) -> bytes | None:
    from cinqa.pseudonymise import load_key

    if pseudonymise and key_file is None:
        _die("--pseudonymise needs --key-file K (create a key with `cinqa key new K`)")
    if key_file is not None and not pseudonymise:
        _die("--key-file is used only with --pseudonymise; add --pseudonymise to pseudonymise the outputs")
    return load_key(key_file) if key_file is not None else None


@contextlib.contextmanager
def _writing(inputs: Sequence[Path | None], files: Sequence[Path | None] = (),
             folders: Sequence[Path | None] = ()) -> Iterator[None]:
    """Run the block with its inputs protected from every writer and its output files and folders claimed.

    An output that is an input, or that another run is writing, is refused before any work is done;
    a file the block writes inside an output folder is checked against the inputs when it is written
    (see :mod:`cinqa.files`).
    """
    from cinqa.files import inputs_protected, outputs_claimed

    given = [p for p in inputs if p is not None]
    with inputs_protected(given), outputs_claimed([p for p in files if p is not None],
                                                  [p for p in folders if p is not None]):
        yield


def _input_files(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into the census files (``*.xml``) directly inside them, in name order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".xml")
            if not found:
                _die(f"{p}: the folder holds no .xml census files")
            files.extend(found)
        else:
            files.append(p)
    return files


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cinqa {cinqa.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                          help="Show the version and exit.")] = False,
) -> None:
    """Check English Children in Need census returns and share the results safely."""


# Shared option types, so every command spells them the same way.
YearOption = Annotated[str | None, typer.Option(
    "--year", "-y", callback=_check_year, metavar="YYYY-YY",
    help="Read the returns as this census year (e.g. 2023-24) instead of the year in their header.")]
PseudonymiseOption = Annotated[bool, typer.Option(
    "--pseudonymise", help="Replace LAchildID, UPN and former UPN with keyed tokens and birth dates with the "
                           "first of their month in every output (needs --key-file).")]
KeyFileOption = Annotated[Path | None, typer.Option(
    "--key-file", "-k", metavar="K", dir_okay=False,
    help="Key file for --pseudonymise; the same key gives the same tokens in every file and year.")]
PopulationOption = Annotated[list[str] | None, typer.Option(
    "--population", metavar="N|YEAR=N",
    help="Children under 18 in the LA, for rates per 10,000 children: one number for every year "
         "(--population 61200), or one per census year, repeated (--population 2023-24=60900 "
         "--population 2024-25=61200). Never estimated: without it the rates are left out and say so.")]
HistoryOption = Annotated[Path | None, typer.Option(
    "--history", metavar="DIR", file_okay=False,
    help="Folder of the run history: each return checked is recorded there (its file's SHA-256, the counts and, "
         "per failure, rule, LAchildID, row and a digest of the values; no values), to see what changed between "
         "runs. Created if needed.")]
ExplanationsOption = Annotated[Path | None, typer.Option(
    "--explanations", metavar="FILE", dir_okay=False, callback=_suffix(".csv"),
    help="The query explanations file (default: explanations-YYYY-YY.csv of the return's census year in "
         "its folder, when it exists).")]
ComparatorsOption = Annotated[Path | None, typer.Option(
    "--comparators", metavar="FILE", dir_okay=False,
    help="CSV of other LAs' figures to compare with (columns comparator,census_year,indicator,value), "
         "shown beside England's.")]
TeamsOption = Annotated[Path | None, typer.Option(
    "--teams", metavar="FILE", dir_okay=False,
    help="The LA's CSV of children to teams (columns LAchildID, team and optionally worker): a worklist sheet per "
         "team in the Excel report, failures counted by team in the HTML report. With --pseudonymise no worker "
         "is named.")]


def _read_teams(teams: Path | None) -> TeamLookup | None:
    """Read --teams before any work, so a bad file is refused with its line; say what reading changed."""
    if teams is None:
        return None
    from cinqa.teams import read_teams

    found = read_teams(teams)
    for change in found.changes:
        _stderr().print(f"cinqa: note: {change}", markup=False)
    return found


def _out_folder(text: str) -> Any:
    """Return the ``--out DIR`` option of a command that writes a folder of outputs, with ``text`` as its help."""
    return typer.Option("--out", "-o", metavar="DIR", file_okay=False, help=text)


def _population(values: Sequence[str] | None) -> float | dict[str, float] | None:
    """Read --population: one number for every year, or YEAR=N for each year (see PopulationOption)."""
    if not values:
        return None

    def number(text: str, given: str) -> float:
        try:
            value = float(text.replace(",", "").replace("_", ""))
        except ValueError:
            _die(f"--population {given!r}: {text!r} is not a number of children")
        if not value > 0 or value == float("inf"):
            _die(f"--population {given!r}: the number of children must be above 0")
        return value

    if len(values) == 1 and "=" not in values[0]:
        return number(values[0], values[0])
    out: dict[str, float] = {}
    for given in values:
        year, sep, text = given.partition("=")
        if not sep:
            _die(f"--population {given!r}: give one number for every year, or YEAR=N for each year "
                 "(e.g. --population 2024-25=61200), not both")
        year = year.strip()
        if year not in spec.YEARS:
            _die(f"--population {given!r}: {year!r} is not a census year (spelt like 2024-25)")
        if year in out:
            _die(f"--population {given!r}: {year} is given twice")
        out[year] = number(text.strip(), given)
    return out


# -- validate ---------------------------------------------------------------------------------


@dataclass
class FileResult:
    """What checking one file found, for the combined summary."""

    path: Path
    ret: cinqa.CensusReturn | None = None
    validation: Validation | None = None
    problem: str | None = None
    outputs: list[Path] = field(default_factory=list)
    shown: cinqa.CensusReturn | None = None
    """The return as outputs may show it: pseudonymised when asked, else ``ret``."""
    run: str | None = None
    """The run this check was recorded as in the run history (``--history``)."""
    explained: Any = None
    """The queries' explanations (:class:`cinqa.explanations.Explained`)."""
    explanations_file: Path | None = None

    @property
    def verdict(self) -> judge.Verdict:
        """Judge the file: its validation's verdict, or "unreadable" when it could not be read."""
        if self.validation is None:
            return judge.unreadable(self.problem or f"{self.path}: could not be read")
        return self.validation.verdict

    def row(self) -> dict[str, Any]:
        v, ret = self.verdict, self.shown or self.ret
        read = self.validation is not None
        return {
            "file": str(self.path),
            "LA": ret.header.la if ret is not None else None,
            "year": ret.year if ret is not None else None,
            "children": len(ret.children) if ret is not None else None,
            "errors": v.error_rows if read else None,
            "queries": v.query_rows if read else None,
            "structural_issues": v.structural_issues if read else None,
            "verdict": v.status,
            "problem": self.problem,
        }


class Engine(str, Enum):
    """Where ``cinqa validate`` runs the rules."""

    pandas = "pandas"
    spark = "spark"


@app.command(epilog=_examples(
    "cinqa validate cin-2023-24.xml",
    "cinqa validate cin-2023-24.xml --xlsx errors.xlsx --csv failures.csv",
    "cinqa validate returns/ --out checked/",
    "cinqa validate la201/ la931/ --csv summary.csv",
    "cinqa validate cin.xml --xlsx share.xlsx --pseudonymise --key-file ~/cinqa.key",
    "cinqa validate cin.xml --xlsx worklists.xlsx --teams teams.csv",
    "cinqa validate cin-2025-26.xml --history runs/ --since",
    "cinqa validate store/ --engine spark --out checked/   (a store pooled by cinqa tables)",
    note="Exit status: 0 no errors (queries allowed); 1 errors found, or the return was not fully checked "
         "(structural errors, or rules that could not be evaluated); 2 unreadable input or usage error, or an output "
         "that cannot be written; 130 interrupted (Ctrl-C).",
))
@_guarded
def validate(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE_OR_FOLDER",
                                                help="Census XML files, or folders of them (*.xml).")],
    xlsx: Annotated[Path | None, typer.Option(
        "--xlsx", metavar="PATH", dir_okay=False, callback=_suffix(".xlsx"),
        help="One file: the Excel error report. Several: the combined summary as a workbook.")] = None,
    csv: Annotated[Path | None, typer.Option(
        "--csv", metavar="PATH", dir_okay=False, callback=_suffix(".csv"),
        help="One file: every failure as CSV. Several: the combined summary as CSV.")] = None,
    html: Annotated[Path | None, typer.Option(
        "--html", metavar="PATH", dir_okay=False, callback=_suffix(".html", ".htm"),
        help="An HTML quality report of the file(s).")] = None,
    out: Annotated[Path | None, _out_folder(
        "Folder for one Excel report and failures CSV per file plus summary.csv and summary.xlsx.")] = None,
    year: YearOption = None,
    pseudonymise: PseudonymiseOption = False,
    key_file: KeyFileOption = None,
    teams: TeamsOption = None,
    engine: Annotated[Engine, typer.Option(
        "--engine", help="pandas checks XML files; spark checks a pooled store (cinqa tables FILES --out STORE).")
    ] = Engine.pandas,
    master: Annotated[str, typer.Option(
        "--master", metavar="URL", help="With --engine spark: the Spark master (local[*], spark://host:7077, ...).")
    ] = "local[*]",
    history: HistoryOption = None,
    since: Annotated[bool, typer.Option(
        "--since", help="With --history: print, before the verdict, what changed since the last run of each "
                        "return (per rule: new, resolved, still open; then the totals).")] = False,
    explanations: ExplanationsOption = None,
) -> None:
    """Check returns against the DfE rules and summarise the failures.

    Prints a summary of the failing rules (one file) or one line per file (several files or a
    folder of returns from several LAs and years), and writes the outputs asked for.
    """
    if engine is Engine.spark:
        _validate_store(paths, csv, out, master, refused={"--xlsx": xlsx, "--html": html, "--year": year,
                                                         "--pseudonymise": pseudonymise or None, "--teams": teams,
                                                         "--history": history, "--since": since or None,
                                                         "--explanations": explanations})
        return
    key = _load_key(pseudonymise, key_file)
    if since and history is None:
        _die("--since compares with the last run recorded in a history; add --history DIR")
    if history is not None:
        from cinqa.history import read_index

        read_index(history)  # refuse a damaged or foreign history folder before any work
    files = _input_files(paths)
    _quoting(files, key)
    single = len(files) == 1
    if teams is not None and not ((single and xlsx is not None) or out is not None or html is not None):
        _die("--teams adds worklists to the Excel report of one file (--xlsx), to each file's report in --out, "
             "and to --html; add one of them")
    lookup = _read_teams(teams)
    results: list[FileResult] = []
    with _writing([*files, key_file, teams, explanations, *_default_explanations(files, explanations)],
                  [xlsx, csv, html], [out]):
        with bar("Checking returns", len(files), unit="file", show=False if single else None) as overall:
            for path in files:
                result = FileResult(path)
                try:
                    result.ret = cinqa.read_return(path, year=year)
                    result.validation = cinqa.validate(result.ret)
                    if history is not None:
                        from cinqa.history import record

                        result.run = record(result.validation, history)["run"]
                except CinqaError as exc:
                    if single:
                        raise
                    result.problem = _said(str(exc))
                    overall.write(f"cinqa: {result.problem}", file=sys.stderr)
                else:
                    # A bad explanations file stops the run, named with its line: it is not the return's fault.
                    result.explained, result.explanations_file = _explained(path, result.validation, explanations)
                results.append(result)
                overall.update(1)
        shareable = [_shareable(r, key, lookup) for r in results]
        with _step("Writing outputs"):
            if single:
                _write_single(shareable[0], xlsx, csv, key is not None)
            else:
                _write_combined(results, xlsx, csv)
            if out is not None:
                _write_folder(results, shareable, out, key is not None)
        if html is not None:
            from cinqa.report import render_report

            # The report shows these validations; its notebook does not read or validate again.
            checked = [r for r in results if r.validation is not None]
            render_report([r.path for r in checked], html, year=year, pseudonymise=key is not None, key=key,
                          validations=[r.validation for r in checked],
                          **({"teams": teams} if teams is not None else {}),
                          **({"history": history} if history is not None else {}),
                          **({"explanations": explanations} if explanations is not None else {}))
    console = _stdout()
    if since and history is not None:
        _print_since(console, results, history)
    if single:
        _print_single(console, results[0])
    else:
        _print_combined(console, results)
    written = [p for p in (xlsx, csv, html) if p is not None] + ([out] if out is not None else [])
    for p in written:
        console.print(f"Wrote {p}", markup=False)
    code = max(r.verdict.exit_code for r in results)
    if code:
        raise typer.Exit(code)


def _validate_store(paths: list[Path], csv: Path | None, out: Path | None, master: str,
                    refused: dict[str, Any]) -> None:
    """Validate the pooled store of ``paths`` on Spark; print and write the per-LA-year summary."""
    from cinqa.export import write_failures_csv, write_frame
    from cinqa.pool import pooled_returns

    given = [name for name, value in refused.items() if value]
    if given:
        _die(f"{', '.join(given)} cannot be used with --engine spark: it writes --csv (the summary per LA and year) "
             f"and --out (summary, failures and unevaluated rules as CSV); pseudonymise when pooling (cinqa tables)")
    if len(paths) != 1 or not paths[0].is_dir():
        _die("--engine spark checks one pooled store: a folder written by cinqa tables FILES --out STORE")
    store = paths[0]
    pooled_returns(store)
    with _writing([store], [csv], [out]):
        with _step(f"Starting Spark ({master})"):
            from cinqa.spark import session, validate_store

            spark = session(master)
        result = validate_store(store, spark=spark)
        with _step("Writing outputs"):
            if csv is not None:
                write_frame(result.summary, csv, "csv")
            if out is not None:
                write_frame(result.summary, out / "summary.csv", "csv")
                write_failures_csv(result.failures, out / "failures.csv")
                write_frame(result.errored, out / "not_evaluated.csv", "csv")
    console = _stdout()
    table = Table(title=f"{store}: {len(result.summary)} returns", title_justify="left")
    for column in result.summary.columns:
        table.add_column(column.replace("_", " "), justify="left" if column in ("census_year", "la", "status")
                         else "right")
    for row in result.summary.itertuples(index=False):
        table.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in row])
    console.print(table)
    for _, row in result.errored.drop_duplicates(["census_year", "rule"]).iterrows():
        console.print(f"{row['census_year']} rule {row['rule']} could not be evaluated: {row['error']}", markup=False)
    for p in [p for p in (csv, out) if p is not None]:
        console.print(f"Wrote {p}", markup=False)
    statuses = set(result.summary["status"])
    if statuses & {judge.ERRORS, judge.NOT_FULLY_CHECKED}:
        raise typer.Exit(1)


@dataclass
class _Shareable:
    """A file's failures, summary and return as they may be written: pseudonymised when asked."""

    result: FileResult
    failures: pd.DataFrame | None
    summary: pd.DataFrame | None
    ret: cinqa.CensusReturn | None
    teams: TeamLookup | None = None
    """The lookup of children to teams (--teams), pseudonymised with the rest."""
    explained: Any = None


def _default_explanations(files: Sequence[Path], given: Path | None) -> list[Path]:
    """List the explanations files the returns would read by default (inputs, never to be written over)."""
    if given is not None:
        return []
    from cinqa.explanations import default_path

    return [default_path(f, y) for f in files for y in spec.YEARS if default_path(f, y).exists()]


def _explained(path: Path, validation: Validation, given: Path | None) -> tuple[Any, Path]:
    """Match a validation's queries with the explanations file (``given``, else its return's default)."""
    from cinqa.explanations import default_path, explain, read_explanations

    file = given if given is not None else default_path(path, validation.year)
    # Resolved: the workbook names it for `cinqa explain import`, which may run in another folder.
    return explain(validation, read_explanations(file)), file.resolve()


def _shareable(result: FileResult, key: bytes | None, teams: TeamLookup | None = None) -> _Shareable:
    from cinqa.explanations import pseudonymise_explained
    from cinqa.pseudonymise import Pseudonymiser, pseudonymise_failures, pseudonymise_return, return_scrubber

    if result.validation is None or result.ret is None:
        return _Shareable(result, None, None, result.ret)
    failures, summary = result.validation.failures, result.validation.summary
    if key is None:
        return _Shareable(result, failures, summary, result.ret, teams, result.explained)
    from cinqa.teams import pseudonymise_teams

    p = Pseudonymiser(key)
    scrub = return_scrubber(result.ret, p)
    result.shown = pseudonymise_return(result.ret, p, scrub)
    explained = pseudonymise_explained(result.explained, p, scrub) if result.explained is not None else None
    return _Shareable(result, pseudonymise_failures(failures, p, scrub), summary, result.shown,
                      pseudonymise_teams(teams, p, scrub) if teams is not None else None, explained)


def _write_single(s: _Shareable, xlsx: Path | None, csv: Path | None, pseudonymised: bool) -> None:
    if s.failures is None:
        return
    # Imported only when asked for: openpyxl alone takes a third of a second to load.
    if xlsx is not None:
        from cinqa.excel import write_error_report

        write_error_report(xlsx, s.failures, s.ret, summary=s.summary, judged=s.result.verdict,
                           pseudonymised=pseudonymised, source=s.result.path.name, teams=s.teams, explained=s.explained,
                           explanations_file=None if pseudonymised else s.result.explanations_file)
    if csv is not None:
        from cinqa.export import write_failures_csv

        write_failures_csv(s.failures, csv)


_COUNTED = ("children", "errors", "queries", "structural_issues")
_SHOWN = ("file", "LA", "year", *_COUNTED, "verdict")
"""The combined summary's counts, and the columns the terminal shows of it."""


def _summary_frame(results: Sequence[FileResult]) -> pd.DataFrame:
    frame = pd.DataFrame([r.row() for r in results])
    for col in _COUNTED:
        frame[col] = frame[col].astype("Int64")
    return frame


def _write_combined(results: Sequence[FileResult], xlsx: Path | None, csv: Path | None) -> None:
    from cinqa.excel import write_table_workbook
    from cinqa.export import write_frame

    summary = _summary_frame(results)
    if xlsx is not None:
        write_table_workbook(xlsx, {"Returns": summary})
    if csv is not None:
        write_frame(summary, csv, "csv")


def _write_folder(results: Sequence[FileResult], shareable: Sequence[_Shareable], out: Path,
                  pseudonymised: bool) -> None:
    from cinqa.excel import write_error_report, write_table_workbook
    from cinqa.export import write_failures_csv, write_frame

    stems: set[str] = set()
    for s in shareable:
        if s.failures is None:
            continue
        stem, i = s.result.path.stem, 2
        while stem in stems or stem == "summary":
            stem, i = f"{s.result.path.stem}-{i}", i + 1
        stems.add(stem)
        s.result.outputs = [
            write_error_report(out / f"{stem}.xlsx", s.failures, s.ret, summary=s.summary, judged=s.result.verdict,
                               pseudonymised=pseudonymised, source=s.result.path.name, teams=s.teams,
                               explained=s.explained,
                               explanations_file=None if pseudonymised else s.result.explanations_file),
            write_failures_csv(s.failures, out / f"{stem}-failures.csv"),
        ]
    summary = _summary_frame(results)
    write_frame(summary, out / "summary.csv", "csv")
    write_table_workbook(out / "summary.xlsx", {"Returns": summary})


def _print_single(console: Console, r: FileResult) -> None:
    assert r.ret is not None and r.validation is not None
    ret = r.shown or r.ret
    console.print(f"{r.path.name}: LA {ret.header.la or '?'}, {ret.year}, {len(ret.children):,} children",
                  markup=False)
    issues = issue_lines(ret.issues)
    if issues:
        # First: a structural error means part of the file may not have been read, whatever follows.
        console.print(f"{judge.counted(len(issues), 'structural issue')} (lines of {r.path.name}):", markup=False)
        for line in issues[:_SHOWN_ISSUES]:
            console.print(f"  {line}", markup=False)
        if len(issues) > _SHOWN_ISSUES:
            console.print(f"  ... {len(issues) - _SHOWN_ISSUES:,} more (cinqa tables writes them all)", markup=False)
    summary = r.validation.rule_summary
    if len(summary):
        table = Table(show_lines=False, header_style="bold")
        for col, justify in (("rule", "left"), ("severity", "left"), ("status", "left"), ("children", "right"),
                             ("rows", "right"), ("message", "left")):
            table.add_column(col, justify=justify, overflow="fold")
        for row in summary.itertuples(index=False):
            table.add_row(str(row.rule), str(row.severity), str(row.status), f"{int(row.children):,}",
                          f"{int(row.rows):,}", str(row.message))
        console.print(table)
        console.print(STATUS_LEGEND, markup=False)
    v = r.verdict
    for line in v.details:
        console.print(line, markup=False)
    if r.explained is not None and (v.query_rows or r.explained.stale):
        console.print(f"Explanations: {r.explained.summary()}", markup=False)
    console.print(f"Verdict: {v}", markup=False)


def _print_since(console: Console, results: Sequence[FileResult], folder: Path) -> None:
    """Print what changed since the last run of each return recorded in the history (counts by rule only)."""
    from cinqa.history import changes

    for r in results:
        if r.run is None:
            continue
        if len(results) > 1:
            console.print(f"{r.path.name}:", markup=False)
        for line in changes(folder, r.run).describe():
            console.print(line, markup=False)


def _print_combined(console: Console, results: Sequence[FileResult]) -> None:
    summary = _summary_frame(results)
    table = Table(header_style="bold")
    for col in _SHOWN:
        numeric = col in _COUNTED
        table.add_column(col.replace("_", " "), justify="right" if numeric else "left", overflow="fold")
    names = [r.path.name for r in results]
    if len(set(names)) == len(names):
        summary["file"] = names  # the files are told apart by name; their folders are in summary.csv
    for row in summary.to_dict("records"):
        table.add_row(*("" if pd.isna(row[c]) else (f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]))
                        for c in _SHOWN))
    console.print(table)
    verdicts = summary["verdict"].value_counts().reindex(judge.STATUSES).dropna().astype(int)
    console.print(f"{len(results)} files: " + ", ".join(f"{v} {n}" for v, n in verdicts.items()), markup=False)


# -- tables -----------------------------------------------------------------------------------


class TableFormat(str, Enum):
    """File formats ``cinqa tables`` writes."""

    csv = "csv"
    parquet = "parquet"


@app.command(epilog=_examples(
    "cinqa tables cin-2023-24.xml --out tables/",
    "cinqa tables cin-2023-24.xml --out tables/ --format parquet --pseudonymise --key-file ~/cinqa.key",
    "cinqa tables returns/ --out store/ --pseudonymise --key-file ~/cinqa.key",
    note="Several files, or a folder, are pooled into one Parquet store partitioned by census year and LA "
         "(store/children/census_year=2024-25/la=931/...), which cinqa validate --engine spark checks. A file "
         "that cannot be read is named and skipped, the others are pooled, and the exit status is 1.",
))
@_guarded
def tables(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE_OR_FOLDER",
                                                help="A census XML file; or several, or folders of them, to pool.")],
    out: Annotated[Path, _out_folder("Folder to write the tables to (created if needed).")],
    fmt: Annotated[TableFormat | None, typer.Option(
        "--format", "-f", help="File format of the tables (default: csv; a pooled store is parquet).")] = None,
    year: YearOption = None,
    pseudonymise: PseudonymiseOption = False,
    key_file: KeyFileOption = None,
) -> None:
    """Write a return's tables and structural issues as CSV or Parquet, or pool many returns.

    One file per table, named after it (children.csv, episodes.csv, ..., structural_issues.csv),
    keyed by the ordinals child, episode, ... and carrying LAchildID and the XML line of each row.
    """
    from cinqa.export import ISSUES_NAME, write_tables
    from cinqa.files import output_path
    from cinqa.pseudonymise import pseudonymise_return

    key = _load_key(pseudonymise, key_file)
    if len(paths) > 1 or paths[0].is_dir():
        files = _input_files(paths)
        _quoting(files, key)
        _pool(files, out, fmt, year, key)
        return
    path, fmt = paths[0], fmt or TableFormat.csv
    _quoting([path], key)
    with _writing([path, key_file], folders=[out]):
        for name in (*spec.TABLE_KEYS, ISSUES_NAME):
            output_path(out / f"{name}.{fmt.value}")
        ret = cinqa.read_return(path, year=year)
        if key is not None:
            ret = pseudonymise_return(ret, key)
        with _step("Writing tables"):
            written = write_tables(ret, out, fmt.value)
    console = _stdout()
    console.print(f"{path.name}: LA {ret.header.la or '?'}, {ret.year}, {len(ret.children):,} children, "
                  f"{len(ret.issues):,} structural issues", markup=False)
    for p in written:
        console.print(f"Wrote {p}", markup=False)


def _pool(files: list[Path], out: Path, fmt: TableFormat | None, year: str | None, key: bytes | None) -> None:
    """Pool ``files`` into the Parquet store ``out``; name each file skipped and exit 1 if any was."""
    from cinqa.pool import pool_returns
    from cinqa.pseudonymise import pseudonymise_return

    if fmt not in (None, TableFormat.parquet):
        _die("a pooled store is written as Parquet only: leave out --format, or give --format parquet")
    with _writing(files, folders=[out]):
        with bar("Pooling returns", len(files), unit="file") as counter:
            pooled = pool_returns(files, out, year=year, tick=counter.update,
                                  prepare=None if key is None else (lambda ret: pseudonymise_return(ret, key)))
    console = _stdout()
    for census_year, la, path in pooled.written:
        again = " (replacing the one in the store)" if (census_year, la) in pooled.replaced else ""
        console.print(f"{path.name}: LA {la}, {census_year}{again}", markup=False)
    for _, problem in pooled.skipped:
        typer.echo(f"cinqa: {_said(problem)} (not pooled)", err=True)
    console.print(f"Pooled {len(pooled.written)} of {len(files)} returns into {out}", markup=False)
    if pooled.skipped:
        raise typer.Exit(1)


# -- report, compare, synth, rules ----------------------------------------------------------


@app.command(epilog=_examples(
    "cinqa report cin-2023-24.xml -o report.html",
    "cinqa report cin-2022-23.xml cin-2023-24.xml -o report.html --pseudonymise --key-file ~/cinqa.key",
))
@_guarded
def report(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE", help="Census XML files.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="PATH", dir_okay=False,
                                         callback=_suffix(".html", ".htm"), help="The HTML file to write.")],
    year: YearOption = None,
    pseudonymise: PseudonymiseOption = False,
    key_file: KeyFileOption = None,
    population: PopulationOption = None,
    comparators: ComparatorsOption = None,
    teams: TeamsOption = None,
    history: HistoryOption = None,
    explanations: ExplanationsOption = None,
) -> None:
    """Write a self-contained HTML quality report.

    The report opens offline: it has no links to the internet. Its national context section lays
    each key indicator beside England's figure (and --comparators' when given). With --history the
    return's check is recorded, and the report says what changed since the last run.
    """
    from cinqa.report import render_report

    key = _load_key(pseudonymise, key_file)
    if history is not None:
        from cinqa.history import read_index

        read_index(history)  # refuse a damaged or foreign history folder before any work
    files = _input_files(paths)
    _quoting(files, key)
    context = {k: v for k, v in (("population", _population(population)), ("comparators", comparators),
                                 ("teams", teams), ("history", history),
                                 ("explanations", explanations)) if v is not None}
    if comparators is not None:
        from cinqa.benchmarks import read_comparators

        read_comparators(comparators)  # refuse a bad file here, with its line, not inside the report's kernel
    _read_teams(teams)
    if explanations is not None:
        from cinqa.explanations import read_explanations

        read_explanations(explanations, missing_ok=False)  # a bad file is named here, not inside the report's kernel
    with _writing([*files, key_file, comparators, teams, explanations, *_default_explanations(files, explanations)],
                  [output]):
        render_report(files, output, year=year, pseudonymise=pseudonymise, key=key, **context)
    _stdout().print(f"Wrote {output}", markup=False)


@app.command(epilog=_examples(
    "cinqa compare cin-2022-23.xml cin-2023-24.xml",
    "cinqa compare returns-la931/ --out comparison/ --threshold 0.1",
    "cinqa compare returns-la931/ --out share/ --pseudonymise --key-file ~/cinqa.key",
    "cinqa compare returns-la931/ --population 2023-24=60900 --population 2024-25=61200 --comparators neighbours.csv",
))
@_guarded
def compare(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE_OR_FOLDER",
                                                help="Returns of one LA, one per census year.")],
    out: Annotated[Path | None, _out_folder("Folder to write every comparison table to as CSV.")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0.0, metavar="SHARE",
        help="Flag figures that change by more than this share between years (default 0.2 = 20%).")] = None,
    min_count: Annotated[float | None, typer.Option(
        "--min-count", min=0.0, metavar="N",
        help="Never flag a count below N in both years, however much it changes (default 20).")] = None,
    year: YearOption = None,
    pseudonymise: PseudonymiseOption = False,
    key_file: KeyFileOption = None,
    population: PopulationOption = None,
    comparators: ComparatorsOption = None,
) -> None:
    """Compare returns year on year.

    Prints headline measures side by side, the flagged changes, the continuity of children between
    consecutive years and each key indicator beside England's figure; --out writes every table
    (continuity findings child by child included) as CSV.
    """
    from cinqa.pseudonymise import Pseudonymiser, pseudonymise_table, return_scrubber

    key = _load_key(pseudonymise, key_file)
    files = _input_files(paths)
    _quoting(files, key)
    with _writing([*files, key_file, comparators], folders=[out]):
        returns = []
        with bar("Reading returns", len(files), unit="file") as overall:
            for path in files:
                returns.append(cinqa.read_return(path, year=year))
                overall.update(1)
        p = Pseudonymiser(key) if key is not None else None
        scrub = return_scrubber(returns, p) if p is not None else None
        with _step("Comparing"):
            given = {k: v for k, v in (("threshold", threshold), ("min_count", min_count),
                                       ("population", _population(population)), ("comparators", comparators))
                     if v is not None}
            result = cinqa.compare(returns, **given)
        from cinqa.benchmarks import describe_bands, readable

        shown = {**result.summary(), "National context": readable(result.national)}
        frames, notes = result.to_frames(), result.notes
        las = [r.header.la for r in returns]
        if p is not None and scrub is not None:
            shown = {n: pseudonymise_table(df, p, scrub) for n, df in shown.items()}
            frames = {n: pseudonymise_table(df, p, scrub) for n, df in frames.items()}
            notes = [scrub.text(n) for n in notes]
            las = [scrub.text(la) for la in las]
        console = _stdout()
        console.print(f"Compared {len(returns)} returns: " + ", ".join(f"{r.year} (LA {la or '?'})"
                                                                        for r, la in zip(returns, las)), markup=False)
        for note in notes:
            console.print(f"Note: {note}", markup=False)
        for name, df in shown.items():
            _print_frame(console, name, df)
        console.print(describe_bands(), markup=False)
        if out is not None:
            from cinqa.export import write_frame

            for name, df in frames.items():
                path = write_frame(df, out / f"{_file_stem(name)}.csv", "csv")
                console.print(f"Wrote {path}", markup=False)


def _print_frame(console: Console, title: str, df: pd.DataFrame, max_rows: int = 40) -> None:
    """Print ``df`` as a table whose headers never wrap: only long text columns fold to fit.

    A table of a few rows too wide for the terminal even so (many long headers) is printed turned
    on its side, one line per column.
    """
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    cells = [["" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in row]
             for row in df.head(max_rows).itertuples(index=False)]
    least = sum(max(len(str(c)), max((len(r[i]) if " " not in r[i] else min(len(r[i]), _FOLD_AT)
                                          for r in cells), default=0)) + 3 for i, c in enumerate(df.columns)) + 1
    if least > console.width and 0 < len(cells) <= _TURN_AT:
        turned = pd.DataFrame([[str(c), *(r[i] for r in cells)] for i, c in enumerate(df.columns)],
                              columns=["", *(f"row {n}" for n in range(1, len(cells) + 1))])
        _print_frame(console, title, turned, max_rows=len(turned))
        return
    for i, col in enumerate(df.columns):
        widest = max((len(row[i]) for row in cells), default=0)
        words = any(" " in row[i] for row in cells)
        # Long text (descriptions, notes) folds at its spaces; names and numbers keep one line.
        table.add_column(str(col), overflow="fold", min_width=len(str(col)), no_wrap=widest <= _FOLD_AT or not words)
    for row in cells:
        table.add_row(*row)
    console.print(table)
    if len(df) > max_rows:
        console.print(f"... {len(df) - max_rows:,} more rows (use --out to write them all)", markup=False)


_FOLD_AT = 20
_TURN_AT = 6


def _file_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_") or "table"


@app.command(epilog=_examples(
    "cinqa synth 2023-24 --children 5000 --seed 1 -o data/synthetic-2023-24.xml",
    "cinqa synth 2023-24 --children 500 --seed 2 --errors 0.05 -o with-errors.xml --truth truth.csv",
))
@_guarded
def synth(
    year: Annotated[str, typer.Argument(metavar="YEAR", help="Census year, e.g. 2023-24.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", dir_okay=False,
                                         callback=_suffix(".xml"), help="The XML file to write.")],
    children: Annotated[int, typer.Option("--children", "-n", min=1, help="Number of children.")] = 300,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed; the same seed gives the same file.")] = 0,
    la: Annotated[str, typer.Option("--la", help="Three-digit LA code for the header and UPNs.")] = "931",
    errors: Annotated[float, typer.Option("--errors", min=0.0, max=1.0, metavar="RATE",
                                          help="Share of children given a labelled rule error (e.g. 0.05).")] = 0.0,
    truth: Annotated[Path | None, typer.Option("--truth", metavar="PATH", dir_okay=False, callback=_suffix(".csv"),
                                               help="With --errors: write what was injected, one row per "
                                                    "fault, as CSV.")] = None,
) -> None:
    """Generate a synthetic return of fictional children.

    For testing and training. The same year, size, seed and LA always give the same file;
    --errors injects rule errors into a share of the children and --truth lists them.
    """
    if year not in cinqa.synth.YEARS:
        _die(f"{year!r} is not a census year synth can generate; use one of "
             f"{cinqa.synth.YEARS[0]} .. {cinqa.synth.YEARS[-1]}")
    if la not in spec.codes("la", year):
        _die(f"--la {la!r} is not a local authority code in {year}")
    if truth is not None and not errors:
        _die("--truth lists injected errors; use it with --errors RATE")
    with _writing([], [output, truth]):
        console = _stdout()
        if errors:
            from cinqa.export import write_frame

            with _step(f"Generating {children:,} children for {year}"):
                ret, faults = cinqa.synth.generate(year, children=children, seed=seed, la=la, errors=errors)
                cinqa.write_return(ret, output)
                if truth is not None:
                    write_frame(faults, truth, "csv")
            console.print(f"Wrote {output} ({len(ret.children):,} children, {len(faults):,} injected errors)",
                          markup=False)
            if truth is not None:
                console.print(f"Wrote {truth}", markup=False)
            return
        # generate_file draws its own progress bar, on a terminal only.
        written = cinqa.synth.generate_file(output, year, children=children, seed=seed, la=la)
        console.print(f"Wrote {written or output} ({children:,} children)", markup=False)


@app.command(epilog=_examples("cinqa rules --year 2023-24", "cinqa rules --year 2024-25 --guidance",
                              "cinqa rules --year 2024-25 --csv rules.csv"))
@_guarded
def rules(
    year: Annotated[str, typer.Option("--year", "-y", callback=_check_year, metavar="YYYY-YY",
                                      help="Census year whose rules to list.")] = spec.SUPPORTED_YEARS[-1],
    guidance: Annotated[bool, typer.Option("--guidance", "-g",
                                           help="Show each rule's DfE message with how to fix it, "
                                                "instead of its entity, status and notes.")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", metavar="PATH", dir_okay=False, callback=_suffix(".csv"),
                                             help="Also write the list as CSV (guidance included).")] = None,
) -> None:
    """List the validation rules of a census year."""
    from cinqa.rules import GUIDANCE_LABEL, list_rules

    frame = list_rules(year)
    console = _stdout()
    # Message and guidance are both long text: side by side they need the table to themselves.
    columns = ("rule", "severity", "message", "guidance") if guidance else (
        "rule", "severity", "entity", "status", "checkable", "message", "note")
    shown = [c for c in columns if c in frame] or list(frame.columns)
    _print_frame(console, f"Validation rules, {year}", frame[shown].rename(columns={"guidance": GUIDANCE_LABEL}),
                 max_rows=len(frame))
    console.print(f"{len(frame):,} rules in {year}. {STATUS_LEGEND}", markup=False)
    if csv is not None:
        from cinqa.export import write_frame

        with _writing([], [csv]):
            write_frame(frame, csv, "csv")
        console.print(f"Wrote {csv}", markup=False)


@app.command(epilog=_examples("cinqa notebooks ~/cin-work/"))
@_guarded
def notebooks(
    folder: Annotated[Path, typer.Argument(metavar="DIR", file_okay=False,
                                           help="Folder outside the repository for your copies (created if needed).")],
) -> None:
    """Copy the workbook's notebooks into a folder of your own to work in.

    The notebooks in the repository stay clean: outputs you save in your copies (children's data
    among them) stay in your folder. Existing files are never overwritten. Open the copies with
    `jupyter lab DIR` and set the path of your return in each notebook's parameters cell.
    """
    from cinqa.notebooks import copy_notebooks

    console = _stdout()
    for p in copy_notebooks(folder):
        console.print(f"Wrote {p}", markup=False)


@key_app.command("new", epilog=_examples("cinqa key new ~/cinqa.key"))
@_guarded
def key_new(
    path: Annotated[Path, typer.Argument(metavar="PATH", dir_okay=False, help="Where to create the key file.")],
) -> None:
    """Create a new random key file for --pseudonymise.

    An existing file is never overwritten. Keep the key apart from what you share, and use the same
    key every year so that children link up across years.
    """
    from cinqa.pseudonymise import new_key

    new_key(path)
    _stdout().print(f"Wrote {path} (readable by you only). Use the same key every year so children link up.",
                    markup=False)


# -- explanations -----------------------------------------------------------------------------


@explain_app.command("import", epilog=_examples(
    "cinqa explain import errors.xlsx",
    "cinqa explain import errors.xlsx --into returns/explanations-2025-26.csv --who 'A. Analyst'",
))
@_guarded
def explain_import(
    workbook: Annotated[Path, typer.Argument(
        metavar="WORKBOOK", dir_okay=False,
        help="An error report (cinqa validate --xlsx) with explanations typed in.")],
    into: Annotated[Path | None, typer.Option(
        "--into", metavar="FILE", dir_okay=False, callback=_suffix(".csv"),
        help="The explanations file to merge into (default: the one the workbook's About sheet names).")] = None,
    who: Annotated[str | None, typer.Option("--who", metavar="NAME",
                                            help="Who gave the explanations (default: your user name).")] = None,
) -> None:
    """Merge the explanations typed into an error report into the explanations file.

    New explanations are added and changed ones updated, with who and today's date; a cell left
    blank deletes nothing. Says what it did ("12 added, 3 updated, 1 unchanged").
    """
    import getpass

    from cinqa.excel import read_typed_explanations
    from cinqa.explanations import merge, read_explanations, write_explanations

    typed = read_typed_explanations(workbook)
    target = into if into is not None else typed.explanations_file
    if target is None:
        _die(f"{workbook}: the workbook names no explanations file; give one with --into FILE")
    target = Path(target)
    with _writing([workbook], [target]):
        current = read_explanations(target)
        years = sorted(set(current["census_year"]) - {typed.year})
        if years:
            _die(f"{target} holds explanations of census year {', '.join(years)}, and {workbook} is the error report "
                 f"of a {typed.year} return (LA {typed.la or '?'}); give the {typed.year} explanations file with "
                 "--into")
        merged = merge(current, typed.rows, year=typed.year, la=typed.la, who=who or getpass.getuser())
        write_explanations(merged.explanations, target)
    _stdout().print(f"{target}: {merged}", markup=False)


@app.command(epilog=_examples("cinqa notes cin-2025-26.xml", "cinqa notes cin-2025-26.xml --out note.txt"))
@_guarded
def notes(
    path: Annotated[Path, typer.Argument(metavar="RETURN", dir_okay=False, help="A census XML file.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", dir_okay=False, callback=_suffix(".txt"),
                                             help="Write the note to this text file instead of the screen.")] = None,
    year: YearOption = None,
    explanations: ExplanationsOption = None,
) -> None:
    """Draft the return-level note for COLLECT: each query rule with its counts and explanations.

    Checks the return, matches its queries with the explanations file and groups the explanations
    by rule ("8863Q — 14 queries, 12 explained: ...; 2 unexplained"). The note adds no child's
    identifier; the explanations are quoted as they were typed.
    """
    from cinqa.explanations import note_text

    with _writing([path, explanations, *_default_explanations([path], explanations)], [out]):
        ret = cinqa.read_return(path, year=year)
        validation = cinqa.validate(ret)
        explained, _ = _explained(path, validation, explanations)
        text = note_text(explained, source=path.name, la=ret.header.la, year=ret.year) + "\n"
        if out is not None:
            from cinqa.files import atomic_path

            with atomic_path(out) as tmp:
                tmp.write_text(text, encoding="utf-8")
    if out is None:
        sys.stdout.write(text)
    else:
        _stdout().print(f"Wrote {out}", markup=False)
