"""Replace child identifiers with keyed pseudonyms so that child-level outputs can be shared.

How it works
------------
* ``LAchildID`` becomes ``"P"`` + 12 lower-case hex characters and ``UPN``/``FormerUPN`` become
  ``"U"`` + 12 lower-case hex characters, taken from HMAC-SHA256 of the value under a secret key
  (32 random bytes kept in a key file, see :func:`new_key`). The same value gives the same token
  in every file and every year that is processed with the same key, so children still link up
  year on year, and a ``FormerUPN`` still matches the ``UPN`` the child had before. Without the
  key the tokens cannot be reversed or recomputed from a list of candidate identifiers.
  Lower-case hex never looks like a real identifier, so a token is never mistaken for one.
* ``PersonBirthDate`` and ``ExpectedPersonBirthDate`` become the first day of their month.
  Coarsening (rather than a keyed shift of days) keeps the date in its month, so a child's age in
  months, the census year it falls in and every comparison with a month-end date (the 31 March
  reference date) stay exactly as they were, and the same child keeps the same value in every file
  without needing the key.
* Rule results are computed on the original return and only their outputs are pseudonymised, so a
  pseudonymised report shows exactly the failures the original would. Re-validating a pseudonymised
  return gives the same results except the UPN format rules (the token is not a UPN) and rules that
  compare a birth date with another date to the day.

Every other string that came from the return passes one scrubbing function, :meth:`Scrubber.text`,
before any output sees it: every identifier of the return found in it, whatever field it was typed
into (a code, a header value, a structural issue, a failure's values, a comparison's note), is
replaced by its token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import html
import mmap
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cinqa import spec
from cinqa.errors import PathError
from cinqa.returns import CensusReturn, Header

KEY_BYTES = 32
ID_COLUMNS = ("LAchildID",)
UPN_COLUMNS = ("UPN", "FormerUPN")
BIRTH_COLUMNS = ("PersonBirthDate", "ExpectedPersonBirthDate")
_PREFIX = {"LAchildID": "P", "UPN": "U", "FormerUPN": "U"}
# FormerUPN shares UPN's domain so that an old UPN keeps matching the child's earlier returns.
_DOMAIN = {"LAchildID": b"LAchildID", "UPN": b"UPN", "FormerUPN": b"UPN"}
_TOKEN_HEX = 12
_DATE_TEXT = re.compile(r"\b(\d{4})-(\d{2})-\d{2}\b")
_QUOTED = re.compile(r"'[^']*'|(?<=value \()[^()]*(?=\))")
_WITHHELD = "[withheld]"
# An identifier element and its text, CDATA or not, as it stands in the file's bytes.
_ID_ELEMENT = re.compile(rb"<(LAchildID|UPN|FormerUPN)\s*>\s*(?:<!\[CDATA\[)?([^<\]]*?)\s*(?:\]\]>)?\s*</\1\s*>")

# Leaves whose raw text is safe to show: everything the format defines except identifiers and birth dates.
_PLAIN_LEAVES = frozenset(
    n.name for n in spec.nodes() if n.kind == "leaf" and n.name not in (*ID_COLUMNS, *UPN_COLUMNS, *BIRTH_COLUMNS)
)


class KeyFileError(PathError):
    """A pseudonymisation key file is missing, unreadable or malformed."""


def new_key(path: str | Path) -> Path:
    """Create a key file at ``path`` holding a fresh random key; never overwrite an existing file.

    The file holds 64 hex characters and is readable by its owner only. Keep it apart from the
    outputs you share: whoever has it can recompute every token.
    """
    path = Path(path)
    text = secrets.token_hex(KEY_BYTES) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(path, "a file already exists there; a key file is never overwritten") from None
    except OSError as exc:
        raise KeyFileError(path, f"cannot create the key file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
    return path


def load_key(path: str | Path) -> bytes:
    """Read the key held in the key file at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(path, "no such key file (create one with `cinqa key new PATH`)") from None
    except OSError as exc:
        raise KeyFileError(path, f"cannot read the key file ({exc.strerror or exc})") from None
    text = raw.strip()
    if not re.fullmatch(rb"[0-9a-fA-F]+", text or b"-"):
        raise KeyFileError(path, "not a key file: expected hex characters only")
    if len(text) < 2 * KEY_BYTES or len(text) % 2:
        raise KeyFileError(path, f"the key is too short: expected at least {2 * KEY_BYTES} hex characters")
    return bytes.fromhex(text.decode("ascii"))


class Pseudonymiser:
    """Turn identifiers into tokens under one key, remembering each token it has made."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) < KEY_BYTES:
            raise ValueError(f"a pseudonymisation key is at least {KEY_BYTES} bytes")
        self._key = bytes(key)
        self._cache: dict[tuple[str, str], str] = {}

    def token(self, column: str, value: str) -> str:
        """Return the token of ``value`` of identifier column ``column`` (LAchildID, UPN, FormerUPN)."""
        slot = (column, value)
        out = self._cache.get(slot)
        if out is None:
            mac = hmac.new(self._key, _DOMAIN[column] + b"\x00" + value.encode("utf-8"), hashlib.sha256)
            out = self._cache[slot] = _PREFIX[column] + mac.hexdigest()[:_TOKEN_HEX]
        return out

    def tokens(self, column: str, values: pd.Series) -> pd.Series:
        """Return ``values`` with every non-missing identifier replaced by its token."""
        if values.empty:
            return values.copy()
        text = values.astype("object")
        out = text.map(lambda v: self.token(column, str(v)), na_action="ignore")
        return out.astype(values.dtype if isinstance(values.dtype, pd.StringDtype) else "str")

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return a copy of ``df`` with identifier columns tokenised and birth dates coarsened."""
        out = df.copy()
        for col in (*ID_COLUMNS, *UPN_COLUMNS):
            if col in out:
                out[col] = self.tokens(col, out[col])
        for col in BIRTH_COLUMNS:
            if col in out:
                out[col] = month_start(out[col])
        return out

    def scrubber(self, ids: Iterable[tuple[str, str]]) -> "Scrubber":
        """Return a :class:`Scrubber` for ``(column, value)`` identifiers, tokenised with this key."""
        return Scrubber({v: self.token(c, v) for c, v in ids if isinstance(v, str) and v})


class Scrubber:
    """Replace whole-word occurrences of known identifiers in free text by their tokens.

    A word is a run of letters and digits, so "C001" is replaced in "child C001," but not in
    "C0012". Identifiers are looked up word by word in a dict, which stays fast with tens of
    thousands of them; the rare identifier with other characters in it gets a pattern of its own.
    """

    _WORD = re.compile(r"[A-Za-z0-9]+")

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        odd = sorted((w for w in mapping if not self._WORD.fullmatch(w)), key=len, reverse=True)
        self._odd = (
            re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, odd)) + r")(?![A-Za-z0-9])") if odd else None
        )

    def _word(self, m: re.Match[str]) -> str:
        word = m.group(0)
        return self.mapping.get(word, word)

    def text(self, value: object) -> object:
        """Return ``value`` with identifiers replaced; non-strings pass through."""
        if not self.mapping or not isinstance(value, str):
            return value
        if self._odd is not None:
            value = self._odd.sub(lambda m: self.mapping[m.group(1)], value)
        return self._WORD.sub(self._word, value)

    def series(self, values: pd.Series) -> pd.Series:
        """Return ``values`` with identifiers replaced in every string."""
        if not self.mapping or values.empty:
            return values.copy()
        if isinstance(values.dtype, pd.CategoricalDtype):
            renamed = [self.text(c) for c in values.cat.categories]
            if len(set(renamed)) == len(renamed):
                return values.cat.rename_categories(renamed)
            return values.astype("object").map(self.text, na_action="ignore")
        return values.astype("object").map(self.text, na_action="ignore").astype(values.dtype)

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return a copy of ``df`` with identifiers replaced in every text column and every label."""
        out = df.copy()
        for col in out.columns:
            if _is_text(out[col]):
                out[col] = self.series(out[col])
        return self.labels(out)

    def labels(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return ``df`` with identifiers replaced in its column and row labels (a cross-table's categories)."""
        if not self.mapping:
            return df
        return df.rename(index=self.text, columns=self.text)

    def header(self, header: Header) -> Header:
        """Return a copy of a return's header with identifiers replaced in every text value."""
        text = {f.name: self.text(getattr(header, f.name)) for f in dataclasses.fields(header)
                if isinstance(getattr(header, f.name), str)}
        extra = tuple((path, self.text(v)) for path, v in header.extra)
        return dataclasses.replace(header, **text, extra=extra)


def month_start(values: pd.Series) -> pd.Series:
    """Return dates moved to the first day of their month, keeping missing dates missing."""
    if values.empty:
        return values.copy()
    dates = pd.to_datetime(values, errors="coerce")
    unit = np.datetime_data(dates.dtype)[0] if dates.dtype.kind == "M" else "s"
    months = dates.to_numpy(dtype="datetime64[ns]").astype("datetime64[M]")
    return pd.Series(months.astype(f"datetime64[{unit}]"), index=values.index, name=values.name)


def coarsen_date_text(text: str) -> str:
    """Return ``text`` with every ISO date in it moved to the first of its month."""
    return _DATE_TEXT.sub(lambda m: f"{m.group(1)}-{m.group(2)}-01", text)


def return_identifiers(ret: CensusReturn) -> list[tuple[str, str]]:
    """List the ``(column, value)`` identifiers of ``ret``: its children's LAchildIDs, UPNs and former UPNs."""
    found: set[tuple[str, str]] = set()
    for table in ret.tables.values():
        for col in (*ID_COLUMNS, *UPN_COLUMNS):
            if col in table:
                found.update((col, str(v)) for v in table[col].dropna().unique())
    return sorted(found)


def file_identifiers(paths: Iterable[str | Path]) -> list[tuple[str, str]]:
    """List the ``(column, value)`` identifiers that the census files at ``paths`` hold, read or not.

    A message about a file that could not be read (a parser's complaint quoting what it found) has
    no return to take identifiers from, so they are found by their elements' pattern in the bytes
    themselves; a file that cannot be opened, or holds none, adds nothing.
    """
    found: set[tuple[str, str]] = set()
    for path in paths:
        try:
            with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                for m in _ID_ELEMENT.finditer(data):
                    value = html.unescape(m.group(2).decode("utf-8", "replace")).strip()
                    if value:
                        found.add((m.group(1).decode("ascii"), value))
        except (OSError, ValueError):  # missing, a folder, or empty (mmap refuses an empty file)
            continue
    return sorted(found)


def return_scrubber(rets: CensusReturn | Iterable[CensusReturn], key: bytes | Pseudonymiser) -> Scrubber:
    """Return a :class:`Scrubber` for every identifier of ``rets`` (one return, or several)."""
    rets = [rets] if isinstance(rets, CensusReturn) else list(rets)
    return _pseudonymiser(key).scrubber(sorted({i for r in rets for i in return_identifiers(r)}))


def pseudonymise_return(ret: CensusReturn, key: bytes | Pseudonymiser, scrub: Scrubber | None = None) -> CensusReturn:
    """Return a pseudonymised copy of ``ret``; ``ret`` itself is left untouched.

    Identifier columns become tokens, birth dates the first of their month, and ``scrub`` (by
    default :func:`return_scrubber` of ``ret``) clears identifiers from every other text, the
    header's included.
    """
    p = _pseudonymiser(key)
    scrub = scrub or return_scrubber(ret, p)
    tables = {name: scrub.frame(p.frame(df)) for name, df in ret.tables.items()}
    return dataclasses.replace(ret, header=scrub.header(ret.header), tables=tables,
                               issues=pseudonymise_issues(ret.issues, p, scrub))


def pseudonymise_issues(issues: pd.DataFrame, key: bytes | Pseudonymiser,
                        scrub: Scrubber | None = None) -> pd.DataFrame:
    """Return a pseudonymised copy of a structural issues table (``CensusReturn.issues``).

    An issue's ``value`` is the raw text the file held. It is kept only for elements known to
    carry no identifier; identifiers become tokens, birth dates are coarsened, and the text of
    unknown or misplaced elements (which may hold anything, a whole misplaced child even) is withheld.
    """
    p = _pseudonymiser(key)
    out = p.frame(issues)
    if not len(out) or "element" not in out:
        return out
    scrub = scrub or Scrubber({})
    element = out["element"].astype("object")
    if "value" in out:
        values = out["value"].astype("object").copy()
        for i, (name, v) in enumerate(zip(element, values)):
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                continue
            if name in _PREFIX:
                values.iat[i] = p.token(name, str(v))
            elif name in BIRTH_COLUMNS:
                values.iat[i] = _coarse_or_withheld(str(v))
            elif name not in _PLAIN_LEAVES:
                values.iat[i] = _WITHHELD
            else:
                values.iat[i] = scrub.text(v)
        out["value"] = values.astype(issues["value"].dtype)
    if "problem" in out:
        problems = scrub.series(out["problem"]).astype("object")
        births = element.isin(BIRTH_COLUMNS) & problems.notna()
        problems[births] = [_QUOTED.sub(lambda m: _coarse_or_withheld(m.group(0)), coarsen_date_text(str(t)))
                            for t in problems[births]]
        out["problem"] = problems.astype(issues["problem"].dtype)
    return out


def pseudonymise_failures(failures: pd.DataFrame, key: bytes | Pseudonymiser,
                          scrub: Scrubber | None = None) -> pd.DataFrame:
    """Return a pseudonymised copy of a failures table (see :mod:`cinqa.failures`).

    ``LAchildID`` is tokenised, and in each row's ``values`` (a dict ``{field: value}``)
    identifier fields are tokenised and birth dates coarsened; ``scrub`` (see
    :func:`return_scrubber`) replaces any other mention of the return's identifiers in text values.
    """
    p = _pseudonymiser(key)
    scrub = scrub or Scrubber({})
    out = scrub.frame(p.frame(failures))
    if "values" in out and len(out):
        out["values"] = pd.Series([_pseudonymise_values(v, p, scrub) for v in out["values"]], index=out.index,
                                  dtype=failures["values"].dtype)
    return out


def pseudonymise_table(df: pd.DataFrame, key: bytes | Pseudonymiser, scrub: Scrubber | None = None) -> pd.DataFrame:
    """Return a pseudonymised copy of any output table (a comparison's findings, say).

    Identifier and birth-date columns are handled as in a return; where a ``field`` column names
    the field that columns ending in ``value`` hold (``earlier_value``, ``later_value``), those
    values are tokenised or coarsened by that field; ``scrub`` then clears identifiers from every
    remaining text column.
    """
    p = _pseudonymiser(key)
    out = p.frame(df)
    scrub = scrub or Scrubber({})
    if not len(out):
        return scrub.labels(out)
    named = out["field"].astype("object") if "field" in out else None
    for col in out.columns:
        if col in (*ID_COLUMNS, *UPN_COLUMNS, *BIRTH_COLUMNS) or not _is_text(out[col]):
            continue
        values = scrub.series(out[col]).astype("object")
        if named is not None and str(col).endswith("value"):
            for i, (name, v) in enumerate(zip(named, values)):
                if not isinstance(v, str):
                    continue
                if name in _PREFIX:
                    values.iat[i] = p.token(name, v)
                elif name in BIRTH_COLUMNS:
                    values.iat[i] = _coarse_or_withheld(v)
        out[col] = values.astype(df[col].dtype) if not isinstance(df[col].dtype, pd.CategoricalDtype) else values
    return scrub.labels(out)


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or isinstance(s.dtype, pd.StringDtype | pd.CategoricalDtype)


def _pseudonymise_values(values: object, p: Pseudonymiser, scrub: Scrubber) -> object:
    """Return a copy of a failure's values with identifiers tokenised and birth dates coarsened."""
    if not isinstance(values, dict):
        return values
    return {name: _pseudonymise_value(name, v, p, scrub) for name, v in values.items()}


def _pseudonymise_value(name: str, value: Any, p: Pseudonymiser, scrub: Scrubber) -> Any:
    if value is None:
        return None
    if name in _PREFIX:
        return p.token(name, str(value))
    if name in BIRTH_COLUMNS:
        return value.replace(day=1) if isinstance(value, dt.date) else _coarse_or_withheld(str(value))
    return scrub.text(value)


def _coarse_or_withheld(text: str) -> str:
    """Coarsen a birth-date text; text that is not a plain date is withheld whole."""
    inner = text.strip().strip("'()")
    if inner in ("", "NaT", "<NA>", "nan", "None"):
        return text
    if _DATE_TEXT.fullmatch(inner):
        return text.replace(inner, coarsen_date_text(inner))
    return _WITHHELD


def _pseudonymiser(key: bytes | Pseudonymiser) -> Pseudonymiser:
    return key if isinstance(key, Pseudonymiser) else Pseudonymiser(key)
