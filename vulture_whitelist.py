"""Names in cinqa that vulture sees no use of, and where each is used.

``vulture`` (no arguments: pyproject.toml's ``[tool.vulture]`` reads cinqa/ and this file at 60%
confidence, and ignores the functions that registry decorators collect: measures, fault injectors,
typer commands) then lists only code with no known use. ``python vulture_whitelist.py`` checks
that every name here still exists, so the list cannot outlive the code.
"""

import importlib

from great_expectations.data_context.data_context_variables import DataContextVariables
from openpyxl.cell.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet

from cinqa import cli, display, drill, report, returns, rules, spec, testing, views
from cinqa.checks import bounds, calendar, codes, flags, upn
from cinqa.synth import faults, params

# The package exports functions of these names, which hide the modules as its attributes.
compare = importlib.import_module("cinqa.compare")
validate = importlib.import_module("cinqa.validate")

# Great Expectations registers every Expectation and MetricProvider subclass when
# cinqa.checks.register() imports its module, and reads these class attributes itself.
for provider in (bounds.MulticolumnValuesBetweenColumns, calendar.ColumnValuesWeekdays,
                 codes.ColumnValuesPresentAndInSet, flags.ColumnValuesTrue, flags.ColumnValuesFalse,
                 upn.ColumnValuesValidUpnCheckLetter, upn.ColumnValuesWellFormedUpn, upn._ColumnValuesPass):
    provider.condition_metric_name
    provider._pandas
    provider._spark
bounds.MulticolumnValuesBetweenColumns.condition_domain_keys
bounds.MulticolumnValuesBetweenColumns.condition_value_keys
codes.ColumnValuesPresentAndInSet.condition_value_keys
codes.ColumnValuesPresentAndInSet.filter_column_isnull
flags.ColumnValuesTrue.filter_column_isnull
for expectation in (bounds.ExpectColumnValuesToBeBetweenColumns, calendar.ExpectColumnValuesToBeWeekdays,
                    codes.ExpectColumnValuesToBePresentAndInSet, flags.ExpectColumnValuesToBeTrue,
                    flags.ExpectColumnValuesToBeFalse, upn.ExpectColumnValuesToHaveValidUpnCheckLetters,
                    upn.ExpectColumnValuesToBeWellFormedUpns):
    expectation.map_metric
    expectation.success_keys
bounds.ExpectColumnValuesToBeBetweenColumns._fill_column_list  # a pydantic root validator


def _read_or_set_elsewhere(cell: Cell, sheet: Worksheet, variables: DataContextVariables,
                           between: bounds.ExpectColumnValuesToBeBetweenColumns, entry: rules.RuleEntry,
                           validation: validate.Validation) -> tuple:
    """Name the attributes that only an instance has, of objects cinqa hands to others or they to cinqa.

    cinqa sets openpyxl's cell styles and frozen panes (cinqa.excel) and GX's progress bars
    (cinqa.validate); GX reads an expectation's ``ignore_row_if``; the tests read a rule entry's
    ``position`` (no check is written twice) and a validation's ``gx_result``. Not called: it
    would need those objects.
    """
    return (cell.font, cell.alignment, cell.number_format, cell.data_type, sheet.freeze_panes,
            variables.progress_bars, between.ignore_row_if, entry.position, validation.gx_result)


_read_or_set_elsewhere


# Read by the suite lint (tests/test_suite_lint.py): the meta keys a suite may hold beside META_KEYS.
rules.OPTIONAL_META_KEYS

# Called by name: the view builder looks up "_v_" + the view's name.
B = views.ViewBuilder
B._v_header, B._v_children, B._v_disabilities, B._v_episodes, B._v_assessments, B._v_factors
B._v_cin_plans, B._v_section47, B._v_cp_plans, B._v_reviews, B._v_pre_proceedings, B._v_return

# IPython calls these to show an object; typer turns an enum member into a command-line choice.
compare.Comparison._repr_html_
drill.DrillDown._ipython_display_, drill.TableBrowser._ipython_display_, drill.YearOnYearExplorer._ipython_display_
cli.TableFormat.parquet

# Used by the notebooks (notebooks/*.ipynb), which vulture does not read.
drill.DrillDown.timeline
display.plot_comparison
report.QAReport.load
report.QAReport.structural_issues, report.QAReport.validation_summary, report.QAReport.rule_tables
report.QAReport.assessment_durations, report.QAReport.year_on_year, report.QAReport.colophon
report.QAReport.national_context, report.QAReport.national_charts
compare.describe_flags

# Reached through the command line's lazy import of cinqa.report.
report.render_report

# Public names whose only callers are outside the package: the tests, the benchmarks, docs/rules.md.
display.plot_distribution  # a single distribution of plot_distributions; tests/test_display.py
display.plot_benchmark  # a single indicator of plot_benchmarks; tests/test_benchmarks.py
compare.INFORMATION  # tests/test_compare.py
returns.CensusReturn.pre_proceedings  # one accessor per table, like the others; tests/test_read.py
rules.RuleEntry.years_status  # README "What is verified"; tests/test_rules.py
rules.view_entity  # tests/test_rules.py: every rule's entity is its view's
spec.table_parent, spec.CODESETS  # tests/test_spec.py, tests/test_read.py
faults.uninjectable_rules, faults.unexplained_rules, faults.stale_reasons  # tests/test_synth.py
params.Bands.share_at_most  # tests/test_synth.py
testing.load_cases, testing.run_case  # tests/test_rules.py runs every rule case
testing.validate_plainly  # tests/test_validate.py and bench/validate.py compare the engine with it
views.LOCATOR, views.build_views  # tests/test_views.py, tests/test_rules.py, docs/rules.md
