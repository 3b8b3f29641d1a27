"""The UPN check letter (DfE UPN guide), without Great Expectations.

A UPN is 13 characters: a check letter, the 3-digit LA code, 8 digits, and a digit or letter
(a letter marks a temporary UPN). Characters 2-13 are weighted 2..13 (a letter at 13 counts as
its position in the check alphabet), summed, and the sum modulo 23 indexes the check alphabet
A-Z without I, O and S; that letter must be character 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHECK_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"
BODY_PATTERN = r"\d{11}[0-9ABCDEFGHJKLMNPQRTUVWXYZ]"


def checkable(upns: pd.Series) -> pd.Series:
    """Tell which values are 13 characters whose characters 2-13 can be weighted."""
    s = upns.astype("str")
    return ((s.str.len() == 13) & s.str.slice(1, 13).str.fullmatch(BODY_PATTERN).fillna(False)).astype(bool)


def check_letters(upns: pd.Series) -> pd.Series:
    """Return the check letter each UPN's characters 2-13 call for (missing where they can't)."""
    s = upns.astype("str")
    ok = checkable(s).to_numpy()
    out = pd.Series(np.full(len(s), None, dtype=object), index=s.index)
    if not ok.any():
        return out
    chars = np.array([list(b) for b in s[ok].str.slice(1, 13)])  # (n, 12)
    digits = chars[:, :11].astype("int64")
    last = np.array([int(c) if c.isdigit() else CHECK_ALPHABET.index(c) for c in chars[:, 11]], dtype="int64")
    total = (digits * np.arange(2, 13)).sum(axis=1) + last * 13
    out[ok] = [CHECK_ALPHABET[i] for i in total % 23]
    return out


def right_check_letter(upns: pd.Series) -> pd.Series:
    """Tell which UPNs have their check letter, or cannot be weighed for a reason another rule reports."""
    s = upns.astype("str")
    weighable = checkable(s)
    right = (s.str.slice(0, 1) == check_letters(s)).fillna(False).astype(bool)
    # Characters 2-13 that cannot be weighted are reported by their own rules (1540, 1550);
    # a UPN of the wrong length has no other rule and fails here.
    wrong_length = s.str.len() != 13
    return (right | (~weighable & ~wrong_length)).fillna(False).astype(bool)


def well_formed(upns: pd.Series) -> pd.Series:
    """Tell which values are complete UPNs with the right check letter."""
    s = upns.astype("str")
    return (checkable(s) & (s.str.slice(0, 1) == check_letters(s)).fillna(False)).astype(bool)


def valid_upn(n: int, la: str = "201") -> str:
    """Return a valid UPN for the number ``n`` (distinct for each ``n`` below 10**8)."""
    body = f"{la}{n:08d}0"
    return check_letters(pd.Series(["A" + body])).iloc[0] + body
