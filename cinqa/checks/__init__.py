"""Custom Great Expectations expectations for census rules, one module per kind of check.

:func:`register` imports them, which registers them with GX; that must happen before a suite
naming one (``expect_column_values_to_be_between_columns``) is loaded. It is kept out of the
package import so that the pure helpers (:mod:`cinqa.checks.upn_letters`) load without GX.
Each metric has a pandas form and a Spark form side by side; the Spark forms' pandas UDFs are in
:mod:`cinqa.checks._spark` (pyspark is imported only when one runs).

* ``flags``    - a pre-computed boolean view column must be true / false on every row
* ``bounds``   - a value must lie between other columns of the row, optionally shifted by an
                 offset such as ``-280D``, ``+9M`` or ``-45WD`` (census period, parent dates)
* ``codes``    - a code must be present and in a code set (the "missing or invalid" rules)
* ``calendar`` - a date must fall on a weekday
* ``upn``      - UPN check letter and well-formedness
"""

from __future__ import annotations

from importlib import import_module

MODULES = ("flags", "bounds", "codes", "calendar", "upn")


def register() -> None:
    """Import every custom expectation so that GX knows its name."""
    for name in MODULES:
        import_module(f"cinqa.checks.{name}")
