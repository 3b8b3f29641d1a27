"""The QA report: a thin notebook over :class:`QAReport`, executed and exported as one HTML file.

:func:`render_report` runs ``notebooks/qa-report.ipynb`` with papermill (parameters: the return
paths, the year, whether to pseudonymise) and converts the result with nbconvert into a single
self-contained HTML file: no code cells, plots embedded as PNG, CSS inlined, and no script or
stylesheet fetched from the network, so the file opens offline and in locked-down browsers.
Only the output file is written; the executed notebook lives in a temporary folder that is
removed afterwards, and the HTML is renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import logging
import os
import pickle
import re
import tempfile
import functools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.display import HTML

import cinqa
from cinqa import collect
from cinqa import history as run_history
from cinqa import failures as judge
from cinqa.benchmarks import benchmark, read_comparators
from cinqa.compare import compare
from cinqa.errors import CinqaError, ReadError
from cinqa.explanations import GONE, STALE, default_path, explain, pseudonymise_explained, read_explanations
from cinqa.files import atomic_path, locate_shipped, output_path
from cinqa.measures import (ALL, MEASURES, NOT_COLLECTED, PRE_PROCEEDINGS, PRE_PROCEEDINGS_YEARS, labelled,
                            measures)
from cinqa.progress import ENV as PROGRESS_ENV
from cinqa.progress import bar
from cinqa.pseudonymise import (Pseudonymiser, load_key, pseudonymise_failures, pseudonymise_issues,
                                pseudonymise_return, pseudonymise_table, return_scrubber)
from cinqa.read import read_return
from cinqa.returns import CensusReturn
from cinqa.rules import GUIDANCE_LABEL, STATUS_LEGEND, STATUS_WORDS
from cinqa.teams import NO_TEAM, TeamLookup, lookup, pseudonymise_teams, team_counts
from cinqa.validate import Validation, validate

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def read_returns(paths: str | Path | Sequence[str | Path], year: str | None = None,
                 progress: bool | None = None) -> list[CensusReturn]:
    """Read the returns a report covers; ``year`` overrides the year of the last one, the return being checked."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    last = len(paths) - 1
    return [read_return(p, year=year if i == last else None, progress=progress) for i, p in enumerate(paths)]


def by_year(rets: Sequence[CensusReturn]) -> list[CensusReturn]:
    """Order returns by census year: the last is the one a report is about, the one before it last year's."""
    return sorted(rets, key=lambda r: r.year)


def locate_notebook(package_dir: str | Path | None = None) -> Path:
    """Find the report notebook: the checkout's ``notebooks/qa-report.ipynb``, else the wheel's copy."""
    return locate_shipped("notebooks/qa-report.ipynb", "_notebooks/qa-report.ipynb", package_dir)


NOTEBOOK = locate_notebook()
KEY_ENV = "CINQA_REPORT_KEY"
RULE_ROWS = 50
RULE_COLUMNS = ["LAchildID", "entity", "episode", "item", "values", "line"]

# Offline guard: any of these in the HTML means the browser would fetch from the network.
_EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//"""
    r"""|@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//"""
    r"""|url\(\s*["']?\s*(?:https?:)?//""",
    re.IGNORECASE,
)

REPORT_CSS = """
body.jp-Notebook { max-width: 1180px; margin: 0 auto; padding: 12px 28px 48px; }
.jp-Cell { padding: 2px 0; }
.jp-InputPrompt, .jp-OutputPrompt { display: none; }
.jp-RenderedHTMLCommon h1 { font-size: 1.9em; border-bottom: 3px solid #2c6e9b; padding-bottom: 4px; }
.jp-RenderedHTMLCommon h2 { margin-top: 1.6em; border-bottom: 1px solid #ccd6e0; padding-bottom: 3px; }
.jp-RenderedHTMLCommon h3 { margin-top: 1.2em; }
.jp-RenderedHTMLCommon table.cinqa-table { font-size: 12px; margin: 4px 0 8px; }
.jp-RenderedHTMLCommon table.cinqa-table td:first-child { text-align: left; }
.jp-RenderedHTMLCommon table.cinqa-table th:first-child { text-align: left; }
.cinqa-note, .cinqa-empty { color: #555; font-size: 12px; margin: 2px 0 10px; }
.cinqa-caption { margin: 10px 0 2px; }
.cinqa-callout { font-size: 14px; line-height: 1.5; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
@media print { body.jp-Notebook { max-width: none; } h2 { page-break-after: avoid; } }
"""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">""" + REPORT_CSS + """</style>{%- endblock extra_css -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ ((output | get_metadata('alt', 'image/png')) or 'Chart') | escape_html }}">
</div>
{%- endblock data_png %}
"""


# --- the report's sections ----------------------------------------------------------------


def _show() -> Any:
    """Import the display helpers, and with them matplotlib, only when a section is drawn.

    Rendering runs in the user's process, where importing matplotlib would write its font cache
    into the home directory; the sections run in the report's kernel, whose caches live in the
    report's temporary folder.
    """
    from cinqa import display

    return display


class QAReport:
    """One return (and optionally the year before) with everything the QA report shows.

    ``validation`` is the latest return's validation (validated here when not given). Each public
    method returns one displayable object for one notebook cell. Child identifiers in every table
    are replaced by keyed tokens when ``pseudonymise`` is on. ``teams`` (the LA's lookup of
    children to teams, see :mod:`cinqa.teams`) adds the failures counted by team.
    """

    def __init__(self, rets: Sequence[CensusReturn], validation: Validation | None = None, *,
                 pseudonymise: bool = False, key: bytes | None = None, key_given: bool = False,
                 population: float | Mapping[str, float] | None = None,
                 comparators: pd.DataFrame | str | Path | None = None,
                 teams: TeamLookup | str | Path | None = None, history: str | Path | None = None,
                 history_run: str | None = None,
                 explanations: pd.DataFrame | str | Path | None = None) -> None:
        if not rets:
            raise CinqaError("the QA report needs at least one return")
        self.population = population
        self.comparators = (read_comparators(comparators) if comparators is not None
                            and not isinstance(comparators, pd.DataFrame) else comparators)
        ordered = by_year(rets)
        self.rets = ordered
        self.ret = ordered[-1]
        self.previous = ordered[-2] if len(ordered) > 1 else None
        self.validation = validation if validation is not None else validate(self.ret)
        self.generated = dt.datetime.now()
        self._p = Pseudonymiser(key or os.urandom(32)) if pseudonymise else None
        self._key_given = key_given
        # Identifiers of every return given, so an earlier year's child typed into this one is caught too.
        self._scrub = return_scrubber(ordered, self._p) if self._p else None
        self.shown = pseudonymise_return(self.ret, self._p, self._scrub) if self._p else self.ret
        self.teams = lookup(teams) if teams is not None else None
        self.history = Path(history) if history is not None else None
        self._history_run = history_run
        if explanations is None:
            given = read_explanations(default_path(self.ret.path, self.ret.year)) if self.ret.path else None
        elif isinstance(explanations, pd.DataFrame):
            given = explanations
        else:
            given = read_explanations(explanations, missing_ok=False)
        self.explained = explain(self.validation, given) if given is not None else None
        """The queries' explanations (:func:`cinqa.explanations.explain`); by default from the return's folder."""

    @classmethod
    def load(cls, paths: str | Path | Sequence[str | Path], *, year: str | None = None,
             pseudonymise: bool = False, key: bytes | None = None, checked: str | Path | None = None,
             population: float | Mapping[str, float] | None = None,
             comparators: str | Path | None = None, teams: str | Path | None = None,
             history: str | Path | None = None, history_run: str | None = None,
             explanations: str | Path | None = None) -> "QAReport":
        """Read the returns at ``paths``, validate the latest, and prepare the report.

        ``year`` overrides the census year of the last path given (the return being checked;
        earlier years' returns come first). ``checked`` is the file :func:`render_report` saves
        the returns and their validation in, so the report's kernel neither reads nor validates
        them again. With ``pseudonymise`` and no ``key`` the key is taken from the environment
        variable ``CINQA_REPORT_KEY`` (hex), else a one-off key is used. ``population`` (children
        under 18: a number, or census year -> number) gives the rates per 10,000 children and
        ``comparators`` (a CSV of other LAs' figures) joins England in the national context; see
        :func:`cinqa.benchmarks.benchmark`. ``teams`` is the LA's lookup of children to teams (CSV).
        ``history`` is a run-history folder (:mod:`cinqa.history`)
        for the section on what changed since the last run; ``history_run`` names the return's run in it
        (default: the latest run of the file the return was read from).
        ``explanations`` is the query explanations file (default:
        :func:`cinqa.explanations.default_path` of the latest return, when it exists).
        """
        if checked is not None:
            # Written by render_report into its own private temporary folder, never by anyone else.
            with open(checked, "rb") as fh:
                rets, validation = pickle.load(fh)  # noqa: S301
        else:
            rets, validation = read_returns(paths, year), None
        if key is None and os.environ.get(KEY_ENV):
            key = bytes.fromhex(os.environ[KEY_ENV])
        return cls(rets, validation, pseudonymise=pseudonymise, key=key, key_given=key is not None,
                   population=population, comparators=comparators, teams=teams, history=history,
                   history_run=history_run, explanations=explanations)

    # --- identifiers ---

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        return pseudonymise_table(df, self._p, self._scrub) if self._p else df

    @property
    def failures(self) -> pd.DataFrame:
        """The validation's failures table, pseudonymised when asked."""
        f = self.validation.failures
        return pseudonymise_failures(f, self._p, self._scrub) if self._p else f

    # --- sections ---

    def title(self) -> HTML:
        """Say which return this is, when and how the report was made."""
        r, h = self.shown, self.shown.header
        bits = [f"Local authority <b>{html.escape(str(h.la or '?'))}</b>",
                f"census year <b>{r.year}</b> ({r.census_start:%d %B %Y} to {r.reference_date:%d %B %Y})"]
        if r.path:
            bits.append(f"file <code>{html.escape(r.path.name)}</code>")
        if self.previous is not None:
            bits.append(f"compared with {self.previous.year}")
        made = f"Generated {self.generated:%d/%m/%Y %H:%M} by cinqa {cinqa.__version__}."
        if self._p:
            made += (" Child identifiers are pseudonymised (keyed tokens; birth dates shown as the first of the month)"
                     + ("." if self._key_given else " with a one-off key, so tokens match nothing outside this report."))
        return HTML(f"<p style='font-size:15px'>{' · '.join(bits)}</p><p class='cinqa-note'>{made}</p>")

    def verdict(self) -> HTML:
        """Judge readiness for submission (:func:`cinqa.failures.verdict`): errors must be zero, queries explained."""
        v = self.validation.verdict
        notes = []
        if v.structural_errors:
            notes.append("See <a href='#Structural-problems'>Structural problems</a>.")
        if v.not_evaluated:
            notes.append("See the <a href='#Validation-summary'>Validation summary</a> for the rules that could not "
                         "be evaluated.")
        return _show().verdict_banner(v, notes=notes)

    def header_facts(self) -> HTML:
        """Show the header facts of the return."""
        return _show().table(_show().header_facts(self.shown))

    def sizes(self) -> HTML:
        """Show how many rows each table of the return has."""
        return _show().table(self.ret.sizes().to_frame().rename_axis("table"))

    def structural_issues(self) -> HTML:
        """Show what the reader found wrong with the file's structure."""
        issues = self.ret.issues
        if self._p and len(issues):
            issues = pseudonymise_issues(issues, self._p, self._scrub)
        return _show().structural_issues(issues)

    def validation_summary(self) -> HTML:
        """Show errors and queries by rule, with the children and rows affected."""
        summary = self.validation.rule_summary
        parts = [_show().table(summary, max_rows=None, note=STATUS_LEGEND).data if len(summary) else
                 _show().callout("No rule failed.", "ok").data]
        errored = self._frame(self.validation.errored)
        if len(errored):
            parts.append(_show().table(errored, "Rules that could not be evaluated").data)
        return HTML("\n".join(parts))

    def explanations(self) -> HTML:
        """Show the queries explained and unexplained, rule by rule, and the explanations gone stale."""
        if self.explained is None:
            return _show().callout("The return has no file name, so no explanations file was looked for.", "info")
        e = pseudonymise_explained(self.explained, self._p, self._scrub) if self._p else self.explained
        if e.queries.empty and not e.stale:
            return _show().callout("No queries: nothing to explain.", "ok")
        level = "ok" if not e.unexplained else "warn"
        parts = [_show().callout(html.escape(e.summary()) + " COLLECT needs an explanation of every query left "
                                 "in the return-level note (<code>cinqa notes</code> drafts it).", level).data]
        if len(e.queries):
            parts.append(_show().table(e.by_rule(), "Queries by rule", max_rows=None, index=False).data)
        stale = e.explanations[e.explanations["state"] == STALE]
        if len(stale):
            shown = stale.loc[:, ["rule", "LAchildID", "row", "explanation", "who", "date", "why_stale"]].rename(
                columns={"why_stale": "stale because"})
            parts.append(_show().table(shown, f"Stale explanations ({GONE} or its values changed)", index=False).data)
        return HTML("\n".join(parts))

    def rule_tables(self, max_rows: int = RULE_ROWS) -> HTML:
        """Show, for each failing rule, its message, how to fix it and the failing rows (up to ``max_rows`` each)."""
        f = self.failures
        if not len(f):
            return _show().callout("No rule failed.", "ok")
        parts = []
        for row in self.validation.rule_summary.itertuples(index=False):
            rows = f[(f["rule"] == row.rule) & (f["severity"] == row.severity)]
            badge = "#b71c1c" if row.severity == "error" else "#b26a00"
            status = STATUS_WORDS.get(row.status, "")
            parts.append(
                f"<h3 id='rule-{html.escape(str(row.rule))}'>{html.escape(str(row.rule))} "
                f"<span style='color:{badge};font-size:0.8em'>{row.severity}</span></h3>"
                f"<p>{html.escape(str(row.message))}<br>"
                + (f"<b>{GUIDANCE_LABEL.capitalize()}:</b> {html.escape(row.guidance)}<br>" if row.guidance else "")
                + "<span class='cinqa-note'>"
                f"{judge.counted(row.rows, 'failing row')}, "
                f"{judge.counted(row.children, 'child', 'children')}"
                + (f"; status {row.status} ({html.escape(status)})" if status else "")
                + (f"<br>Note: {html.escape(row.note)}" if row.note else "") + "</span></p>")
            # The rows are a selection of the failures table: its row numbers mean nothing to the reader.
            parts.append(_show().table(judge.for_display(rows[RULE_COLUMNS]), max_rows=max_rows, index=False).data)
        return HTML("\n".join(parts))

    def by_team(self) -> HTML | None:
        """Count the failures by team from the LA's lookup (:func:`cinqa.teams.team_counts`); nothing without one."""
        if self.teams is None:
            return None
        teams = pseudonymise_teams(self.teams, self._p, self._scrub) if self._p else self.teams
        counts = team_counts(self.failures, teams)
        note = (f"Teams from {Path(self.teams.path).name}: failing rows (errors, queries) and children with a "
                f"failure, by the team the lookup gives each child. {NO_TEAM} counts the children the lookup "
                "does not list, and failures of the return as a whole.")
        notes = [_show().callout(html.escape(n), "warn").data for n in teams.changes]
        return HTML("\n".join(["<h2 id='Failures-by-team'>Failures by team</h2>", *notes,
                               _show().table(counts, max_rows=None, index=False, note=note).data]))

    def distributions(self) -> "Figure":
        """Draw the distributions that matter, as small multiples."""
        return _show().plot_distributions(self.shown)

    def assessment_durations(self) -> "Figure":
        """Draw completed assessments by working days taken."""
        return _show().plot_assessment_durations(self.shown)

    def view(self, name: str) -> HTML:
        """Show the COLLECT view ``name`` (see :data:`cinqa.collect.VIEWS`) as a table."""
        v = collect.VIEWS[name]
        df = self._frame(collect.build_view(self.ret, name))
        note = f"Modelled on COLLECT report {v.report}, '{v.title}' (DfE report specification 2019-20)."
        if v.note:
            note = f"{v.note} {note}"
        if name == "key_indicators":
            return _show().indicators(df, note=note)
        return _show().table(df, note=note)

    def pre_proceedings(self) -> HTML:
        """Show the pre-proceedings measures and outcomes (2026-27 on), naming the census facts still provisional."""
        if self.ret.year not in PRE_PROCEEDINGS_YEARS:
            return _show().callout(f"Pre-proceedings were {NOT_COLLECTED} before {min(PRE_PROCEEDINGS_YEARS)}: "
                                   f"the {self.ret.year} return has no such module.", "info")
        tidy = measures(self.ret, names=PRE_PROCEEDINGS)
        shown = labelled(tidy[tidy["breakdown"].isin([ALL, *MEASURES["pp_outcomes"].breakdowns])])
        return _show().table(shown.drop(columns="census_year"), max_rows=None, note=(
            "cinqa's definitions (see cinqa.measures.definitions()). 'provisional' names the module, items and "
            "codes not yet confirmed from DfE's specification (status I inferred or U unverified in the census "
            "format); see the README."))

    def year_on_year(self) -> HTML:
        """Compare the return with the earlier ones given: headline measures, big changes, continuity."""
        if self.previous is None:
            return _show().callout("Give the previous year's return as well to see the year-on-year comparison "
                                "(for example <code>cinqa report LAST.xml THIS.xml -o report.html</code>).", "info")
        comp = compare(self.rets)
        notes = [self._scrub.text(n) for n in comp.notes] if self._scrub else comp.notes
        parts = [_show().callout(html.escape(n), "warn").data for n in notes]
        for title, df in comp.summary().items():
            parts.append(_show().table(self._frame(df), title, max_rows=30).data)
        return HTML("\n".join(parts))

    @functools.cached_property
    def national(self) -> pd.DataFrame:
        """Each key indicator of the returns given beside England's figure, the comparators and a band."""
        return benchmark(self.rets, self.population, self.comparators)

    def national_context(self) -> HTML:
        """Show each key indicator beside England's figure for the same year, the difference and the band."""
        return _show().benchmark_table(self.national)

    def national_charts(self) -> "Figure | HTML":
        """Draw a small chart per key indicator: the LA's years against England's."""
        if self.national["la_value"].isna().all():
            return _show().callout("No key indicator has a value for these returns: there is nothing to chart.",
                                   "info")
        return _show().plot_benchmarks(self.national)

    @functools.cached_property
    def since(self) -> "run_history.Changes | None":
        """What changed between this return's run in the history and the run before it, or None without one.

        The run is the one given, else the latest recorded for this file (by its SHA-256); a return
        not read from a file, or not in the history, has none.
        """
        if self.history is None:
            return None
        run = self._history_run
        if run is None and self.ret.path is not None:
            run = run_history.run_of(self.history, self.ret.path, self.ret.year)
        return run_history.changes(self.history, run) if run is not None else None

    def since_last_run(self) -> HTML:
        """Show, under its own heading, what changed since the last run: per rule, per child (pseudonymised when
        asked), then the totals; nothing at all when the report has no run history of this return."""
        found = self.since
        if found is None:
            return HTML("")
        said = found.describe()
        parts = ["<h2 id='Since-the-last-run'>Since the last run</h2>"]
        if found.previous is None:
            return HTML("\n".join([*parts, *(f"<p>{html.escape(line)}</p>" for line in said)]))
        # The lines of the command line's text that are not one per rule; the rules are the table below.
        parts += [f"<p>{html.escape(line)}</p>" for line in said[:-1] if not line.startswith("  ")]
        parts.append(_show().table(found.by_rule(), "By rule", max_rows=None, index=False).data)
        parts.append(_show().table(self._frame(found.by_child()), "By child", max_rows=RULE_ROWS, index=False).data)
        parts.append(f"<p><b>{html.escape(said[-1])}</b></p>")
        parts.append("<p class='cinqa-note'>A failure is matched between runs by its rule, child and row; one "
                     "still open whose failing values have changed counts as still open (values_changed). "
                     "Re-runs of a file already checked are left out of the comparison and the trend.</p>")
        return HTML("\n".join(parts))

    def history_trend(self) -> "Figure | HTML":
        """Draw the errors and queries of every run of this LA's return for the year; nothing without a history."""
        found = self.since
        if found is None:
            return HTML("")
        return _show().plot_history_trend(run_history.trend(self.history, found.run["LA"], found.run["census_year"]),
                                          f"Errors and queries, run by run ({found.run['census_year']})")

    def colophon(self) -> HTML:
        """Say where the definitions come from."""
        return HTML(
            "<p class='cinqa-note'>Errors and queries follow the DfE validation rules for the census year. "
            "COLLECT views are modelled on the DfE COLLECT report specification (2019-20 edition); their "
            "definitions follow DfE's published children in need statistics where the specification text "
            "was not available, so small differences from COLLECT are possible. Working days exclude "
            "weekends and England bank holidays.</p>")


# --- rendering ----------------------------------------------------------------------------


@contextlib.contextmanager
def _log_level(logger: logging.Logger, level: int) -> Iterator[None]:
    """Set ``logger``'s level for the duration of the block."""
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


@contextlib.contextmanager
def _environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the duration of the block."""
    old = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


OPTIONAL = "optional"
"""The tag of a report cell whose section is shown only when asked for (the teams): showing nothing, it is dropped."""


def _strip_noise(nb: Any) -> None:
    """Drop what must not reach the reader: stderr, widget views (progress bars), parameter cells, and optional
    sections not asked for, so that the report without them is the report as it was before they existed."""
    nb.metadata.pop("widgets", None)
    keep = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and tags & {"parameters", "injected-parameters"}:
            continue
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                            and "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
            if OPTIONAL in tags and not cell.outputs:
                continue
        keep.append(cell)
    nb.cells = keep


def external_references(text: str) -> list[str]:
    """List the places in an HTML text that would make a browser fetch from the network."""
    return [m.group(0) for m in _EXTERNAL.finditer(text)]


def to_html(nb: Any, title: str) -> str:
    """Convert an executed report notebook to self-contained HTML without code cells."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"cinqa.html.j2": _TEMPLATE})],
                            template_file="cinqa.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    found = external_references(body)
    if found:
        raise CinqaError(f"the report would load {len(found)} resource(s) from the network, e.g. {found[0]!r}")
    return body


def _stop_kernel(kernel: Any) -> None:
    """Kill the report's kernel if it is still running: a run stopped mid-way (Ctrl-C, SIGTERM) skips
    the kernel's shutdown, and the kernel must not outlive the temporary folder it works in."""
    if kernel.has_kernel:
        process = kernel.provisioner.process
        process.kill()
        process.wait(timeout=30)


def render_report(paths: str | Path | Sequence[str | Path], out: str | Path, *, year: str | None = None,
                  pseudonymise: bool = False, key: bytes | str | Path | None = None,
                  validations: Sequence[Validation] | None = None, progress: bool | None = None,
                  population: float | Mapping[str, float] | None = None,
                  comparators: str | Path | None = None, teams: str | Path | None = None,
                  history: str | Path | None = None,
                  explanations: str | Path | None = None) -> Path:
    """Render the QA report of the returns at ``paths`` to the HTML file ``out`` and return its path.

    The latest return is reported on; an earlier year's return, if given, feeds the year-on-year
    section. ``key`` (bytes, or the path of a key file from ``cinqa.pseudonymise.new_key``) makes
    pseudonyms stable across reports; without it a one-off key is used. ``validations`` are the
    returns' validations already made (``cinqa validate --html`` passes its own): the report shows
    them as they are. Without them the returns are read and the latest validated here, before the
    notebook runs; either way the notebook's kernel reads and validates nothing. Reading,
    validating and the notebook's cells show progress where someone can see it (``progress``:
    see :func:`cinqa.progress.shown`). ``population`` and ``comparators`` feed the national
    context (see :meth:`QAReport.load`); ``teams``, the LA's lookup of children to teams (CSV),
    adds the failures by team. ``history`` is a run-history folder: the report says what
    changed since the last run of the return; the validation made here is recorded in it first
    (``validations`` given are their caller's to record, as ``cinqa validate --history`` does).
    adds the failures by team.
    ``explanations`` names the query explanations file.
    """
    import nbformat
    import papermill
    from jupyter_client.manager import AsyncKernelManager

    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = [Path(p).resolve() for p in paths]
    if not files:
        raise CinqaError("the QA report needs at least one return")
    for f in files:
        if not f.is_file():
            raise ReadError(f, "no such file")
    if not NOTEBOOK.is_file():
        raise CinqaError(f"{NOTEBOOK}: the report notebook is missing; reinstall cinqa")
    if isinstance(key, (str, Path)):
        key = load_key(key)
    out = output_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if validations is None:
        rets = read_returns(files, year, progress)
        validation = validate(by_year(rets)[-1], progress=progress)
        if history is not None:
            run_history.record(validation, history)
    else:
        rets = [v.ret for v in validations]
        validation = next(v for v in validations if v.ret is by_year(rets)[-1])
    params = {"paths": [str(f) for f in files], "year": year, "pseudonymise": bool(pseudonymise),
              "population": dict(population) if isinstance(population, Mapping) else population,
              "comparators": str(Path(comparators).resolve()) if comparators is not None else None,
              "teams": str(Path(teams).resolve()) if teams is not None else None,
              "history": str(Path(history).resolve()) if history is not None else None,
              # Found here: the return's path may be relative to this process's folder, not the kernel's.
              "history_run": (run_history.run_of(history, validation.ret.path, validation.year)
                              if history is not None and validation.ret.path is not None else None),
              "explanations": str(Path(explanations).resolve()) if explanations is not None else None}
    with tempfile.TemporaryDirectory(prefix="cinqa-report-") as tmp:
        executed = Path(tmp) / "qa-report.ipynb"
        # The kernel takes the returns and their validation from here; the folder is this user's alone.
        # GX's raw results and the views are not shown by the report and stay behind.
        params["checked"] = str(Path(tmp) / "checked.pickle")
        with open(params["checked"], "wb") as fh:
            pickle.dump((rets, dataclasses.replace(validation, gx_result={}, views={})), fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        # The key goes to the kernel through its environment so it is never written into a notebook.
        # IPython's profile, matplotlib's font cache and the kernel's connection file would otherwise
        # be written under the user's home directory: they go to the temporary folder instead.
        scratch = {name: str(Path(tmp, sub)) for name, sub in (
            ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "matplotlib"), ("JUPYTER_RUNTIME_DIR", "runtime"))}
        # The notebook's cells (and papermill's injected parameters), then the conversion to HTML.
        cells = sum(1 for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code") + 2
        # papermill's client logs a kernel stopped by Ctrl-C on the terminal; its errors are raised, not logged.
        client_log = logging.getLogger("papermill")
        kernel = AsyncKernelManager(kernel_name="python3")
        with _environ({KEY_ENV: key.hex() if key else None, PROGRESS_ENV: "0", **scratch}), \
                _log_level(client_log, logging.CRITICAL), \
                bar("Writing the report", cells, unit="step", show=progress) as counter:
            try:
                # The kernel's own log (its "running over TCP" warning, its tracebacks when Ctrl-C stops
                # it mid-message) would reach the user's terminal; what it ran reports its own errors.
                papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters=params, kernel_name="python3",
                                           progress_bar=False, log_output=False, cwd=tmp, km=kernel,
                                           extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                                           on_cell_executed=lambda **_: counter.update(1))
            except papermill.PapermillExecutionError as exc:
                raise CinqaError(f"the QA report failed: {exc.ename}: {exc.evalue}") from None
            finally:
                _stop_kernel(kernel)
            nb = nbformat.read(executed, as_version=4)
            _strip_noise(nb)
            names = ", ".join(f.name for f in files)
            text = to_html(nb, f"CIN census QA report: {names}")
            counter.update(counter.total - counter.n)
        with atomic_path(out) as part:
            part.write_text(text, encoding="utf-8")
    return out
