"""Write a return's tables, a failures table and batch summaries as CSV or Parquet files.

Every file is written under a temporary name in its target folder and renamed when complete, so
an interrupted run never leaves a half-written output behind.

Text is written so that no spreadsheet takes it for a formula: :func:`formula_like` is the one place
that decides, for CSV here and for the Excel workbooks of :mod:`cinqa.excel`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cinqa.failures import for_display
from cinqa.files import atomic_path
from cinqa.returns import CensusReturn

FORMATS = ("csv", "parquet")
ISSUES_NAME = "structural_issues"
# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_like(value: object) -> bool:
    """Say whether ``value`` is text a spreadsheet would read as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def inert_text(value: object) -> object:
    """Return ``value`` with a leading apostrophe when it is text a spreadsheet would run as a formula.

    Spreadsheets show the apostrophe's text as it is; anything that is not such text passes unchanged.
    """
    return "'" + value if formula_like(value) else value


def readable_text(cell: str) -> str:
    """Undo :func:`inert_text` on a cell read back: the apostrophe that kept formula-like text inert is not the author's."""
    return cell[1:] if cell.startswith("'") and formula_like(cell[1:]) else cell


def inert_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with :func:`inert_text` applied to every text cell (a copy only when one changes)."""
    out = df
    for col in df.columns:
        s = df[col]
        if s.dtype.kind in "biufcmM" or not len(s):
            continue
        text = s.astype("object")
        hit = text.map(formula_like)
        if hit.any():
            out = df.copy() if out is df else out
            out[col] = text.where(~hit, text[hit].map(inert_text))
    return out


def write_frame(df: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``df`` to ``path`` as CSV or Parquet (from ``fmt`` or the file's suffix), atomically."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    writer = _WRITERS.get(fmt)
    if writer is None:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    with atomic_path(path) as tmp:
        writer(df, tmp)
    return path


def write_tables(ret: CensusReturn, out_dir: str | Path, fmt: str = "csv") -> list[Path]:
    """Write each table of ``ret``, and its structural issues, to ``out_dir`` as one file each.

    Files are named after the tables (``children.csv``, ``episodes.csv``, ...,
    ``structural_issues.csv``); return their paths in that order.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    frames = {**ret.tables, ISSUES_NAME: ret.issues}
    return [write_frame(df, out_dir / f"{name}.{fmt}", fmt) for name, df in frames.items()]


def write_failures_csv(failures: pd.DataFrame, path: str | Path) -> Path:
    """Write a failures table (see :mod:`cinqa.failures`) to ``path`` as CSV, its values spelt out, atomically."""
    return write_frame(for_display(failures), path, "csv")


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    # Census dates carry no time; ISO dates are what spreadsheets and other tools read back best.
    # CRLF line ends (RFC 4180) make the writer quote any value holding a carriage return, which a
    # spreadsheet would otherwise take for the end of a row, and what follows it for a new cell.
    inert_frame(df).to_csv(path, index=False, lineterminator="\r\n", date_format="%Y-%m-%d", encoding="utf-8")


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False, engine="pyarrow")


_WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {"csv": _write_csv, "parquet": _write_parquet}
