"""Pseudonymisation: keyed tokens, coarse birth dates, untouched inputs, nothing identifying left."""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

import cinqa
from cinqa.pseudonymise import (
    KeyFileError,
    Pseudonymiser,
    load_key,
    month_start,
    new_key,
    pseudonymise_failures,
    pseudonymise_issues,
    pseudonymise_return,
    return_scrubber,
)

FIXTURE = Path(__file__).parent / "fixtures" / "cin-2023-24.xml"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
IDS = ("C001", "C002", "C003")
UPNS = ("A201123456789", "A201987654321", "A201111111111")


@pytest.fixture(scope="module")
def ret() -> cinqa.CensusReturn:
    return cinqa.read_return(FIXTURE)


def _all_text(r: cinqa.CensusReturn) -> str:
    frames = [*r.tables.values(), r.issues]
    return "\n".join(df.astype("object").to_csv(index=False) for df in frames)


def test_new_key_writes_a_private_hex_key_and_never_overwrites(tmp_path: Path) -> None:
    path = new_key(tmp_path / "k.key")
    text = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == bytes.fromhex(text)
    with pytest.raises(KeyFileError, match="already exists"):
        new_key(path)
    assert path.read_text().strip() == text
    assert load_key(new_key(tmp_path / "k2.key")) != load_key(path)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "hex characters only"),
    (b"not a key\n", "hex characters only"),
    (b"abcd\n", "too short"),
])
def test_load_key_refuses_bad_key_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=problem) as info:
        load_key(path)
    assert str(path) in str(info.value)


def test_load_key_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(cinqa.CinqaError, match="no such key file"):
        load_key(tmp_path / "absent.key")


def test_tokens_have_a_pseudonym_shape_and_depend_on_the_key() -> None:
    p, q = Pseudonymiser(KEY), Pseudonymiser(OTHER_KEY)
    assert re.fullmatch(r"P[0-9a-f]{12}", p.token("LAchildID", "C001"))
    assert re.fullmatch(r"U[0-9a-f]{12}", p.token("UPN", "A201123456789"))
    assert p.token("LAchildID", "C001") == Pseudonymiser(KEY).token("LAchildID", "C001")
    assert p.token("LAchildID", "C001") != q.token("LAchildID", "C001")
    assert p.token("LAchildID", "C001") != p.token("LAchildID", "C002")
    # A former UPN matches the UPN it used to be, so children still link across years.
    assert p.token("FormerUPN", "A201111111111") == p.token("UPN", "A201111111111")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")


def test_pseudonymise_return_leaves_no_identifier_and_leaves_input_untouched(ret: cinqa.CensusReturn) -> None:
    before = {n: df.copy() for n, df in ret.tables.items()}
    out = pseudonymise_return(ret, KEY)
    for name, df in ret.tables.items():
        pd.testing.assert_frame_equal(df, before[name])
    text = _all_text(out)
    for value in (*IDS, *UPNS):
        assert value not in text
    assert out.sizes().equals(ret.sizes())
    assert out.year == ret.year and out.header == ret.header


def test_the_same_child_gets_the_same_token_in_every_table_and_year(ret: cinqa.CensusReturn) -> None:
    out = pseudonymise_return(ret, KEY)
    again = pseudonymise_return(cinqa.read_return(FIXTURE, year="2022-23"), KEY)
    token = dict(zip(out.children["child"], out.children["LAchildID"]))
    for name, df in out.tables.items():
        assert (df["LAchildID"] == df["child"].map(token)).all(), name
    assert out.children["LAchildID"].tolist() == again.children["LAchildID"].tolist()
    assert out.children["UPN"].tolist() == again.children["UPN"].tolist()


def test_birth_dates_move_to_the_first_of_the_month_and_other_dates_stay(ret: cinqa.CensusReturn) -> None:
    out = pseudonymise_return(ret, KEY)
    assert out.children["PersonBirthDate"].tolist()[::2] == [pd.Timestamp("2015-06-01"), pd.Timestamp("2009-12-01")]
    assert out.children["ExpectedPersonBirthDate"].iloc[1] == pd.Timestamp("2024-06-01")
    assert out.children["PersonBirthDate"].isna().tolist() == ret.children["PersonBirthDate"].isna().tolist()
    assert out.children["PersonBirthDate"].dtype == ret.children["PersonBirthDate"].dtype
    pd.testing.assert_series_equal(out.children["PersonDeathDate"], ret.children["PersonDeathDate"])
    pd.testing.assert_frame_equal(out.episodes.drop(columns="LAchildID"), ret.episodes.drop(columns="LAchildID"))


def test_month_start_keeps_missing_dates_missing() -> None:
    s = pd.Series(pd.to_datetime(["2024-02-29", None, "2023-12-31"])).astype("datetime64[s]")
    got = month_start(s)
    assert got.tolist()[0] == pd.Timestamp("2024-02-01") and pd.isna(got.iloc[1])
    assert got.iloc[2] == pd.Timestamp("2023-12-01") and got.dtype == s.dtype


def test_structural_issue_text_is_scrubbed(ret: cinqa.CensusReturn) -> None:
    issues = pd.DataFrame({
        "line": pd.array([21, 22, 5, 23], dtype="Int64"),
        "severity": ["error"] * 4,
        "table": ["children", None, None, None],
        "child": pd.array([1, 1, None, 1], dtype="Int64"),
        "LAchildID": ["C001", "C001", None, "C001"],
        "element": ["PersonBirthDate", "UPN", "Child", "PersonBirthDate"],
        "problem": ["<PersonBirthDate> '30/02/2015' is not a valid date (YYYY-MM-DD)",
                    "<UPN> appears more than once; the first value (A201123456789) is kept",
                    "<Child> is misplaced inside <Message>",
                    "<PersonBirthDate> appears more than once; the first value (2015-06-17) is kept"],
        "value": ["30/02/2015", "A201999999999", "C999 A201555555555 2010-01-05", "2015-06-07"],
    })
    out = pseudonymise_issues(issues, KEY, return_scrubber(ret, KEY))
    text = out.to_csv(index=False)
    for value in ("C001", "C999", "A201123456789", "A201999999999", "A201555555555", "30/02/2015",
                  "2015-06-17", "2015-06-07", "2010-01-05"):
        assert value not in text
    assert out["value"].tolist()[2:] == ["[withheld]", "2015-06-01"]
    assert "(YYYY-MM-DD)" in out["problem"].iloc[0]
    assert out["problem"].iloc[3].endswith("(2015-06-01) is kept")


def test_failures_lose_identifiers_and_keep_other_values(ret: cinqa.CensusReturn) -> None:
    failures = pd.DataFrame({
        "rule": ["8606", "1510"],
        "LAchildID": ["C001", "C003"],
        "fields": ["CINreferralDate,PersonBirthDate", "UPN"],
        "values": [{"CINreferralDate": dt.date(2015, 6, 17), "PersonBirthDate": dt.date(2015, 6, 17)},
                   {"UPN": "A201987654321", "LAchildID": "C003", "ReferralSource": "A; B=C", "FormerUPN": None}],
    })
    out = pseudonymise_failures(failures, KEY, return_scrubber(ret, KEY))
    p = Pseudonymiser(KEY)
    assert out["LAchildID"].tolist() == [p.token("LAchildID", "C001"), p.token("LAchildID", "C003")]
    assert out["values"].tolist() == [
        {"CINreferralDate": dt.date(2015, 6, 17), "PersonBirthDate": dt.date(2015, 6, 1)},
        {"UPN": p.token("UPN", "A201987654321"), "LAchildID": p.token("LAchildID", "C003"), "ReferralSource": "A; B=C",
         "FormerUPN": None},
    ]
    assert failures["values"].iloc[0]["PersonBirthDate"] == dt.date(2015, 6, 17)  # the input is left as it was
    assert failures["LAchildID"].tolist() == ["C001", "C003"]


def test_rule_results_survive_pseudonymisation_except_upn_formats(ret: cinqa.CensusReturn) -> None:
    from cinqa.validate import validate

    def results(r: cinqa.CensusReturn) -> pd.DataFrame:
        f = validate(r).failures
        upn = f["fields"].astype(str).str.contains(r"\b(?:Former)?UPN\b")
        return f.loc[~upn, ["rule", "entity", "child", "episode", "item", "line"]].reset_index(drop=True)

    pd.testing.assert_frame_equal(results(pseudonymise_return(ret, KEY)), results(ret))


def test_year_on_year_continuity_survives_pseudonymisation(ret: cinqa.CensusReturn) -> None:
    from cinqa.compare import compare

    earlier = cinqa.read_return(FIXTURE, year="2022-23")
    plain = compare([earlier, ret])
    hidden = compare([pseudonymise_return(earlier, KEY), pseudonymise_return(ret, KEY)])
    pd.testing.assert_frame_equal(hidden.continuity_summary, plain.continuity_summary)
    assert hidden.continuity_summary["matched_by_LAchildID"].tolist() == [3]
